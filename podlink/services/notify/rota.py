"""The on-call rota (`PODLINK_ROTA_FILE`): who is told, on which channels, in which order, when.

Read strictly, node by node, so every problem is refused at start as one line naming the file
and line to fix (`rota.yaml:12: tiers.on-call[1].escalate_after: '15 minutes' is not a duration
such as 15m, 1h or 90s`), never a traceback and never a guess.
"""
from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, time, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

DURATION = re.compile(r"^(\d+)(s|m|h)$")
TIME_RANGE = re.compile(r"^(\d\d):(\d\d)-(\d\d):(\d\d)$")
SHA256_HEX = re.compile(r"^[0-9a-f]{64}$")
ENV_NAME = re.compile(r"^[A-Z_][A-Z0-9_]*$")
DAY_SETS = ("weekdays", "weekends", "nights", "bank holidays")
CHANNELS = ("webhook", "pagerduty", "email", "notify_email", "sms")


class RotaError(ValueError):
    """An invalid rota: the message is `file:line: problem`, ready for stderr."""


@dataclass(frozen=True)
class TimeRange:
    """Local clock times, start included, end excluded; a range whose end is earlier wraps midnight."""

    start: time
    end: time

    def covers(self, moment: time) -> bool:
        if self.start <= self.end:
            return self.start <= moment < self.end
        return moment >= self.start or moment < self.end


@dataclass(frozen=True)
class Term:
    """One comma-separated part of a `when`: a set of days (or every day), within hours or not."""

    days: str | None  # one of DAY_SETS, or None for every day ("always", or a bare time range)
    hours: TimeRange | None


@dataclass(frozen=True)
class Webhook:
    url: str
    secret_env: str


@dataclass(frozen=True)
class Contact:
    id: str
    webhook: Webhook | None = None
    pagerduty_key_env: str | None = None
    email: str | None = None
    notify_email: str | None = None
    sms: str | None = None
    token_sha256: str | None = None

    def channels(self) -> tuple[str, ...]:
        """The channels this contact is reached on, in the rota's fixed order."""
        present = {"webhook": self.webhook, "pagerduty": self.pagerduty_key_env, "email": self.email,
                   "notify_email": self.notify_email, "sms": self.sms}
        return tuple(name for name in CHANNELS if present[name] is not None)


@dataclass(frozen=True)
class Tier:
    contacts: tuple[str, ...]
    escalate_after: timedelta | None
    when: tuple[Term, ...]


@dataclass(frozen=True)
class Smtp:
    host: str
    port: int
    username: str
    password_env: str
    sender: str
    ca_file: Path | None


@dataclass(frozen=True)
class GovukNotify:
    api_key_env: str
    base_url: str | None
    sms_template_id: str | None
    email_template_id: str | None


@dataclass(frozen=True)
class Rota:
    timezone: ZoneInfo
    contacts: Mapping[str, Contact]
    tiers: Mapping[str, tuple[Tier, ...]]
    repeat_every: timedelta
    bank_holidays: frozenset[date]
    nights: TimeRange = field(default_factory=lambda: TimeRange(time(17), time(9)))
    public_url: str | None = None
    smtp: Smtp | None = None
    notify: GovukNotify | None = None


class _Reader:
    """Walks the composed YAML nodes of one file; each problem raises RotaError at its node's line."""

    def __init__(self, path: str, environ: Mapping[str, str]) -> None:
        self.path = path
        self.environ = environ

    def fail(self, node: Node, problem: str) -> RotaError:
        return RotaError(f"{self.path}:{node.start_mark.line + 1}: {problem}")

    def mapping(self, node: Node, where: str, allowed: frozenset[str] | None,
                required: frozenset[str] = frozenset()) -> dict[str, Node]:
        """The keys and value nodes of a mapping; `allowed` None takes any key (contact ids,
        audiences: the rota writer's own names)."""
        if not isinstance(node, MappingNode):
            raise self.fail(node, f"{where} must be a mapping of keys to values")
        found: dict[str, Node] = {}
        for key, value in node.value:
            name = self.scalar(key, where)
            if name in found:
                raise self.fail(key, f"{where}: {name} is given twice")
            if allowed is not None and name not in allowed:
                raise self.fail(key, f"{where}: unknown key {name!r} (expected one of: {', '.join(sorted(allowed))})")
            found[name] = value
        missing = sorted(required - found.keys())
        if missing:
            raise self.fail(node, f"{where}: {missing[0]} is required")
        return found

    def scalar(self, node: Node, where: str) -> str:
        if not isinstance(node, ScalarNode) or node.tag == "tag:yaml.org,2002:null":
            raise self.fail(node, f"{where} must be a single value")
        return str(node.value)

    def sequence(self, node: Node, where: str) -> list[Node]:
        if not isinstance(node, SequenceNode):
            raise self.fail(node, f"{where} must be a list")
        return list(node.value)

    def duration(self, node: Node, where: str) -> timedelta:
        text = self.scalar(node, where)
        match = DURATION.match(text.strip())
        if not match or int(match[1]) == 0:
            raise self.fail(node, f"{where}: {text!r} is not a duration such as 15m, 1h or 90s")
        unit = {"s": "seconds", "m": "minutes", "h": "hours"}[match[2]]
        return timedelta(**{unit: int(match[1])})

    def time_range(self, node: Node, text: str, where: str) -> TimeRange:
        match = TIME_RANGE.match(text)
        if not match:
            raise self.fail(node, f"{where}: {text!r} is not a time range such as 09:00-17:00")
        hours = (int(match[1]), int(match[2])), (int(match[3]), int(match[4]))
        if any(h > 23 or m > 59 for h, m in hours) or hours[0] == hours[1]:
            raise self.fail(node, f"{where}: {text!r} is not a time range such as 09:00-17:00")
        return TimeRange(time(*hours[0]), time(*hours[1]))

    def env_name(self, node: Node, where: str) -> str:
        name = self.scalar(node, where)
        if not ENV_NAME.match(name):
            raise self.fail(node, f"{where}: {name!r} is not an environment variable name")
        if not self.environ.get(name):
            raise self.fail(node, f"{where}: environment variable {name} is not set")
        return name

    def when(self, node: Node, where: str) -> tuple[Term, ...]:
        text = self.scalar(node, where)
        terms = []
        for part in (p.strip().lower() for p in text.split(",")):
            if part == "always":
                terms.append(Term(None, None))
                continue
            days = next((d for d in DAY_SETS if part == d or part.startswith(d + " ")), None)
            rest = part.removeprefix(days).strip() if days else part
            if days is None and not TIME_RANGE.match(rest):
                raise self.fail(node, f"{where}: {part!r} is not one of always, {', '.join(DAY_SETS)} "
                                "or a time range such as 09:00-17:00 (optionally after a set of days)")
            terms.append(Term(days, self.time_range(node, rest, where) if rest else None))
        return tuple(terms)


def load_rota(path: Path, environ: Mapping[str, str]) -> Rota:
    """The rota in `path`; RotaError (one line, `file:line: problem`) when it is invalid.

    `environ` is where the secrets the rota names by `*_env` must be set: a rota whose secret
    is missing would fail at the first alert, so it is refused at start instead.
    """
    name = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise RotaError(f"{name}: cannot read the rota: {getattr(exc, 'strerror', None) or exc}") from None
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else 1
        raise RotaError(f"{name}:{line}: not valid YAML: {exc.problem or exc.context}") from None
    except yaml.YAMLError as exc:
        raise RotaError(f"{name}:1: not valid YAML: {exc}") from None
    if root is None:
        raise RotaError(f"{name}:1: the rota is empty")
    return _rota(_Reader(name, environ), root)


def _rota(r: _Reader, root: Node) -> Rota:
    top = r.mapping(root, "rota", frozenset({"timezone", "contacts", "tiers", "repeat_every", "bank_holidays",
                                   "nights", "public_url", "smtp", "notify"}), frozenset({"contacts", "tiers"}))
    zone_name = r.scalar(top["timezone"], "timezone") if "timezone" in top else "Europe/London"
    try:
        zone = ZoneInfo(zone_name)
    except (ZoneInfoNotFoundError, ValueError):
        raise r.fail(top["timezone"], f"timezone: {zone_name!r} is not a known time zone") from None
    smtp = _smtp(r, top["smtp"]) if "smtp" in top else None
    notify = _notify(r, top["notify"]) if "notify" in top else None
    contacts = {}
    for key, value in r.mapping(top["contacts"], "contacts", None).items():
        contacts[key] = _contact(r, key, value, smtp, notify)
    tiers = {}
    for audience, value in r.mapping(top["tiers"], "tiers", None).items():
        items = r.sequence(value, f"tiers.{audience}")
        if not items:
            raise r.fail(value, f"tiers.{audience}: needs at least one tier")
        tiers[audience] = tuple(_tier(r, f"tiers.{audience}[{i}]", item, contacts)
                                for i, item in enumerate(items))
    holidays = set()
    for item in r.sequence(top["bank_holidays"], "bank_holidays") if "bank_holidays" in top else []:
        text = r.scalar(item, "bank_holidays")
        try:
            holidays.add(date.fromisoformat(text))
        except ValueError:
            raise r.fail(item, f"bank_holidays: {text!r} is not a date such as 2026-12-25") from None
    return Rota(
        timezone=zone, contacts=contacts, tiers=tiers,
        repeat_every=(r.duration(top["repeat_every"], "repeat_every") if "repeat_every" in top
                      else timedelta(minutes=60)),
        bank_holidays=frozenset(holidays),
        nights=(r.time_range(top["nights"], r.scalar(top["nights"], "nights"), "nights")
                if "nights" in top else TimeRange(time(17), time(9))),
        public_url=r.scalar(top["public_url"], "public_url").rstrip("/") if "public_url" in top else None,
        smtp=smtp, notify=notify,
    )


def _contact(r: _Reader, key: str, node: Node, smtp: Smtp | None, notify: GovukNotify | None) -> Contact:
    where = f"contacts.{key}"
    fields = r.mapping(node, where, frozenset(CHANNELS) | {"token_sha256"})
    if not fields:
        raise r.fail(node, f"{where}: names no channel")
    webhook = None
    if "webhook" in fields:
        keys = frozenset({"url", "secret_env"})
        hook = r.mapping(fields["webhook"], f"{where}.webhook", keys, keys)
        url = r.scalar(hook["url"], f"{where}.webhook.url")
        if not url.startswith(("https://", "http://")):
            raise r.fail(hook["url"], f"{where}.webhook.url: {url!r} is not an http(s) URL")
        webhook = Webhook(url, r.env_name(hook["secret_env"], f"{where}.webhook.secret_env"))
    pagerduty = None
    if "pagerduty" in fields:
        keys = frozenset({"routing_key_env"})
        pd = r.mapping(fields["pagerduty"], f"{where}.pagerduty", keys, keys)
        pagerduty = r.env_name(pd["routing_key_env"], f"{where}.pagerduty.routing_key_env")
    if "email" in fields and smtp is None:
        raise r.fail(fields["email"], f"{where}.email: needs an smtp section in the rota")
    for channel, template in (("notify_email", "email_template_id"), ("sms", "sms_template_id")):
        if channel in fields and (notify is None or getattr(notify, template) is None):
            raise r.fail(fields[channel], f"{where}.{channel}: needs notify.{template} in the rota")
    token = r.scalar(fields["token_sha256"], f"{where}.token_sha256").lower() if "token_sha256" in fields else None
    if token is not None and not SHA256_HEX.match(token):
        raise r.fail(fields["token_sha256"], f"{where}.token_sha256: not 64 hex digits (a SHA-256)")
    return Contact(
        id=key, webhook=webhook, pagerduty_key_env=pagerduty,
        email=r.scalar(fields["email"], f"{where}.email") if "email" in fields else None,
        notify_email=r.scalar(fields["notify_email"], f"{where}.notify_email") if "notify_email" in fields else None,
        sms=r.scalar(fields["sms"], f"{where}.sms") if "sms" in fields else None,
        token_sha256=token,
    )


def _tier(r: _Reader, where: str, node: Node, contacts: Mapping[str, Contact]) -> Tier:
    fields = r.mapping(node, where, frozenset({"contacts", "escalate_after", "when"}), frozenset({"contacts"}))
    names = []
    for item in r.sequence(fields["contacts"], f"{where}.contacts"):
        name = r.scalar(item, f"{where}.contacts")
        if name not in contacts:
            raise r.fail(item, f"{where}.contacts: {name!r} is not in contacts")
        names.append(name)
    if not names:
        raise r.fail(fields["contacts"], f"{where}.contacts: names nobody")
    return Tier(
        contacts=tuple(names),
        escalate_after=r.duration(fields["escalate_after"], f"{where}.escalate_after")
        if "escalate_after" in fields else None,
        when=r.when(fields["when"], f"{where}.when") if "when" in fields else (Term(None, None),),
    )


def _smtp(r: _Reader, node: Node) -> Smtp:
    f = r.mapping(node, "smtp", frozenset({"host", "port", "username", "password_env", "from", "ca_file"}),
                  frozenset({"host", "username", "password_env", "from"}))
    port_text = r.scalar(f["port"], "smtp.port") if "port" in f else "587"
    if not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise r.fail(f["port"], f"smtp.port: {port_text!r} is not a port number")
    ca = Path(r.scalar(f["ca_file"], "smtp.ca_file")) if "ca_file" in f else None
    if ca is not None and not ca.is_file():
        raise r.fail(f["ca_file"], f"smtp.ca_file: {ca} is not a readable file")
    return Smtp(host=r.scalar(f["host"], "smtp.host"), port=int(port_text),
                username=r.scalar(f["username"], "smtp.username"),
                password_env=r.env_name(f["password_env"], "smtp.password_env"),
                sender=r.scalar(f["from"], "smtp.from"), ca_file=ca)


def _notify(r: _Reader, node: Node) -> GovukNotify:
    f = r.mapping(node, "notify", frozenset({"api_key_env", "base_url", "sms_template_id", "email_template_id"}),
                  frozenset({"api_key_env"}))
    return GovukNotify(
        api_key_env=r.env_name(f["api_key_env"], "notify.api_key_env"),
        base_url=r.scalar(f["base_url"], "notify.base_url").rstrip("/") if "base_url" in f else None,
        sms_template_id=r.scalar(f["sms_template_id"], "notify.sms_template_id") if "sms_template_id" in f else None,
        email_template_id=(r.scalar(f["email_template_id"], "notify.email_template_id")
                           if "email_template_id" in f else None),
    )
