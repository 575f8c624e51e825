"""The policy file: deadline policies and hooks, read strictly.

Every mistake is refused with the line it is on: an unknown key, a misspelled event or field,
a value of the wrong kind, a duplicate, a warning that would come after the deadline. A policy
file that is accepted is the policy in force; nothing falls back to a default in silence.
"""
from __future__ import annotations

import re
import typing
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import resources
from typing import Any, Literal, TypeVar

import yaml

from podlink.streams.core.deadlines import Audience, Severity
from podlink.streams.core.events import DATA_MODELS
from podlink.streams.core.policies import DeadlinePolicy, Due, Duration, Trigger
from podlink.streams.core.timeline import EVENT_NAMES, KEPT_FIELDS, SHORT_TYPES

DEFAULT_POLICY_FILE = "default_policies.yaml"
AUDIENCES: tuple[str, ...] = typing.get_args(Audience)
SEVERITIES: tuple[str, ...] = typing.get_args(Severity)
CLOSING_EVENTS = ("referral.rejected", "referral.withdrawn", "episode.discharged")
_DURATION = re.compile(r"^(\d+)(mo|m|h|d|w)$")
_NAME = re.compile(r"^[a-z][a-z0-9]*(-[a-z0-9]+)*$")
T = TypeVar("T")


class PolicyFileError(ValueError):
    """One problem, with the file and line it is on: `file:line: problem`."""

    def __init__(self, source: str, line: int, problem: str) -> None:
        super().__init__(f"{source}:{line}: {problem}")
        self.line = line


@dataclass(frozen=True)
class HookSetting:
    name: str
    line: int  # so the worker can say where a hook that no package provides was named
    audience: Audience | None = None
    severity: Severity | None = None


@dataclass(frozen=True)
class PolicyFile:
    source: str
    policies: tuple[DeadlinePolicy, ...]
    hooks: tuple[HookSetting, ...]


def default_policy_text() -> str:
    return resources.files("podlink.streams.core").joinpath(DEFAULT_POLICY_FILE).read_text(encoding="utf-8")


def parse_policy_file(text: str, source: str) -> PolicyFile:
    try:
        root = yaml.compose(text)
    except RecursionError:
        raise PolicyFileError(source, 1, "nested too deeply to be a policy file") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        problem = getattr(exc, "problem", None) or "not valid YAML"
        raise PolicyFileError(source, mark.line + 1 if mark else 1, f"not valid YAML: {problem}") from None
    reader = _Reader(source)
    if root is None:
        raise PolicyFileError(source, 1, "the file is empty: it needs a 'policies' mapping")
    top = reader.mapping(root, "the policy file", required=("policies",), optional=("version", "hooks"))
    if "version" in top and reader.scalar(top["version"], int, "version") != 1:
        raise reader.error(top["version"], "version must be 1")
    policies = tuple(reader.policy(name, node) for name, node in reader.named(top["policies"], "policies"))
    hooks = tuple(reader.hook(name, node) for name, node in reader.named(top["hooks"], "hooks")) \
        if "hooks" in top else ()
    return PolicyFile(source, tuple(p for p in policies if p is not None), tuple(h for h in hooks if h is not None))


class _Reader:
    def __init__(self, source: str) -> None:
        self.source = source
        self._loader = yaml.SafeLoader("")

    def error(self, node: yaml.Node, problem: str) -> PolicyFileError:
        return PolicyFileError(self.source, node.start_mark.line + 1, problem)

    def mapping(self, node: yaml.Node, what: str, required: tuple[str, ...] = (),
                optional: tuple[str, ...] = ()) -> dict[str, yaml.Node]:
        if not isinstance(node, yaml.MappingNode):
            raise self.error(node, f"{what} must be a mapping")
        found: dict[str, yaml.Node] = {}
        for key_node, value in node.value:
            key = self._loader.construct_object(key_node)
            if not isinstance(key, str):
                raise self.error(key_node, f"{what}: keys must be text, not {key!r}")
            if key in found:
                raise self.error(key_node, f"{what}: '{key}' is given twice")
            if required or optional:
                if key not in required and key not in optional:
                    allowed = ", ".join(sorted(required + optional))
                    raise self.error(key_node, f"{what}: unknown key '{key}' (allowed: {allowed})")
            found[key] = value
        missing = [k for k in required if k not in found]
        if missing:
            raise self.error(node, f"{what}: missing '{missing[0]}'")
        return found

    def named(self, node: yaml.Node, what: str) -> list[tuple[str, yaml.Node]]:
        entries = self.mapping(node, what)
        for name, value in entries.items():
            if not _NAME.match(name):
                raise self.error(value, f"{what}: '{name}' is not a name of lower-case words joined by '-'")
        return list(entries.items())

    def scalar(self, node: yaml.Node, kind: type[T], what: str) -> T:
        value = self._loader.construct_object(node) if isinstance(node, yaml.ScalarNode) else None
        if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            raise self.error(node, f"{what} must be {_KIND_NAMES.get(kind, kind.__name__)}, not {_shown(node)}")
        return value

    def choice(self, node: yaml.Node, options: tuple[str, ...], what: str) -> Any:
        value = self.scalar(node, str, what)
        if value not in options:
            raise self.error(node, f"{what} must be one of {', '.join(options)}, not '{value}'")
        return value

    def text_list(self, node: yaml.Node, what: str) -> list[tuple[str, yaml.Node]]:
        items = node.value if isinstance(node, yaml.SequenceNode) else [node]
        return [(self.scalar(item, str, what), item) for item in items]

    def duration(self, node: yaml.Node, what: str) -> Duration:
        value = self.scalar(node, str, what) if not isinstance(self._loader.construct_object(node), int) else None
        match = _DURATION.match(value or "")
        if match is None:
            raise self.error(node, f"{what} must be a duration such as 90m, 24h, 7d, 2w or 12mo, not {_shown(node)}")
        if int(match.group(1)) == 0 and what != "warn_before":
            raise self.error(node, f"{what} must be longer than 0")
        return Duration(int(match.group(1)), match.group(2))  # type: ignore[arg-type]

    def event(self, node: yaml.Node, what: str) -> str:
        name = self.scalar(node, str, what)
        if name not in EVENT_NAMES:
            close = [e for e in sorted(EVENT_NAMES) if e.split(".")[0] == name.split(".")[0]]
            hint = f" (did you mean one of {', '.join(close)}?)" if close else ""
            raise self.error(node, f"{what}: '{name}' is not an event of the contract{hint}")
        return name

    def conditions(self, node: yaml.Node, event: str, what: str) -> dict[str, frozenset[object]]:
        allowed_fields = {n: k for n, k in KEPT_FIELDS[event].items() if k in ("flag", "code")}
        conditions: dict[str, frozenset[object]] = {}
        for name, value in self.mapping(node, what).items():
            if name not in allowed_fields:
                raise self.error(value, f"{what}: '{name}' is not a coded or yes/no field of {event} "
                                        f"(fields: {', '.join(sorted(allowed_fields))})")
            options = _field_values(event, name)
            items = value.value if isinstance(value, yaml.SequenceNode) else [value]
            values = set()
            for item in items:
                v = self._loader.construct_object(item)
                if v not in options:
                    shown = ", ".join(str(o).lower() if isinstance(o, bool) else str(o) for o in options)
                    raise self.error(item, f"{what}: {name} is never {_shown(item)} (it is one of {shown})")
                values.add(v)
            conditions[name] = frozenset(values)
        return conditions

    def trigger(self, node: yaml.Node, what: str, within: bool = False) -> Trigger:
        keys = ("at", "when") + (("within",) if within else ())
        fields = self.mapping(node, what, required=("event",) + (("within",) if within else ()), optional=keys)
        event = self.event(fields["event"], f"{what}: event")
        at = None
        if "at" in fields:
            at = self.scalar(fields["at"], str, f"{what}: at")
            times = [n for n, k in KEPT_FIELDS[event].items() if k == "time"]
            if at not in times:
                raise self.error(fields["at"], f"{what}: '{at}' is not a time field of {event} "
                                               f"(time fields: {', '.join(times)})")
        when = self.conditions(fields["when"], event, f"{what}: when") if "when" in fields else {}
        span = self.duration(fields["within"], f"{what}: within") if within else None
        return Trigger(event, at, when, span)

    def due(self, node: yaml.Node, starts: list[Trigger], what: str) -> Due:
        if isinstance(node, yaml.ScalarNode):
            return Due(after=self.duration(node, what))
        fields = self.mapping(node, what, optional=("after", "field", "by", "durations"))
        after = self.duration(fields["after"], f"{what}: after") if "after" in fields else None
        date_field = by = None
        durations: dict[str, Duration] = {}
        if "field" in fields:
            date_field = self.scalar(fields["field"], str, f"{what}: field")
            if not any(KEPT_FIELDS[t.event].get(date_field) == "time" for t in starts):
                events = " or ".join(t.event for t in starts)
                raise self.error(fields["field"], f"{what}: {events} has no time field '{date_field}'")
        if ("by" in fields) != ("durations" in fields):
            raise self.error(node, f"{what}: 'by' and 'durations' go together")
        if "by" in fields:
            by = self.scalar(fields["by"], str, f"{what}: by")
            for trigger in starts:
                if KEPT_FIELDS[trigger.event].get(by) != "code":
                    raise self.error(fields["by"], f"{what}: {trigger.event} has no coded field '{by}'")
            options = _field_values(starts[0].event, by)
            for code, value in self.mapping(fields["durations"], f"{what}: durations").items():
                if code not in options:
                    raise self.error(value, f"{what}: durations: {by} is never '{code}' "
                                            f"(it is one of {', '.join(map(str, options))})")
                durations[code] = self.duration(value, f"{what}: durations: {code}")
            missing = [str(o) for o in options if o not in durations]
            if missing and after is None:
                raise self.error(fields["durations"], f"{what}: no duration for {by} {', '.join(missing)} "
                                                      "and no 'after' to fall back on")
        if after is None and by is None:
            raise self.error(node, f"{what}: needs 'after' (or 'by' with 'durations'), "
                                   "for a start that carries no date" if date_field else f"{what}: needs 'after'")
        return Due(after, date_field, by, durations)

    def policy(self, name: str, node: yaml.Node) -> DeadlinePolicy | None:
        what = f"policy '{name}'"
        fields = self.mapping(node, what, required=("starts", "met_by", "due", "audience", "severity"),
                              optional=("cancelled_by", "warn_before", "repeats", "when",
                                        "brought_forward_by", "enabled"))
        if "enabled" in fields and not self.scalar(fields["enabled"], bool, f"{what}: enabled"):
            return None
        start_nodes = fields["starts"].value if isinstance(fields["starts"], yaml.SequenceNode) else [fields["starts"]]
        starts = [self.trigger(n, f"{what}: starts") for n in start_nodes]
        if not starts:
            raise self.error(fields["starts"], f"{what}: starts: needs at least one event")
        met_by = {self.event(n, f"{what}: met_by"): n for _, n in self.text_list(fields["met_by"], "met_by")}
        cancel_nodes = self.text_list(fields["cancelled_by"], "cancelled_by") if "cancelled_by" in fields else []
        cancelled_by = {self.event(n, f"{what}: cancelled_by"): n for _, n in cancel_nodes} \
            if "cancelled_by" in fields else dict.fromkeys(CLOSING_EVENTS, node)
        for event, event_node in met_by.items():
            if event in cancelled_by:
                raise self.error(event_node, f"{what}: {event} cannot both meet and cancel the deadline")
        due = self.due(fields["due"], starts, f"{what}: due")
        warn = self.duration(fields["warn_before"], f"{what}: warn_before") if "warn_before" in fields \
            else Duration(0, "m")
        shortest = min([d.elapsed() for d in (due.after, *due.after_by.values()) if d is not None])
        if warn.elapsed() >= shortest:
            raise self.error(fields["warn_before"], f"{what}: warn_before ({warn}) must be shorter than "
                                                    "the time the deadline allows")
        repeats = self.scalar(fields["repeats"], bool, f"{what}: repeats") if "repeats" in fields else False
        if repeats and not any(t.event in met_by for t in starts):
            raise self.error(fields["repeats"], f"{what}: a repeating policy must start again on an event "
                                                "that meets it (as a review meets one cycle and starts the next)")
        when = self.conditions(fields["when"], "referral.received", f"{what}: when") if "when" in fields else {}
        forward_nodes = fields["brought_forward_by"].value if "brought_forward_by" in fields else []
        if "brought_forward_by" in fields and not isinstance(fields["brought_forward_by"], yaml.SequenceNode):
            raise self.error(fields["brought_forward_by"], f"{what}: brought_forward_by must be a list")
        forward = tuple(self.trigger(n, f"{what}: brought_forward_by", within=True) for n in forward_nodes)
        for trigger, trigger_node in zip(forward, forward_nodes):
            if trigger.within is not None and trigger.within.elapsed() <= warn.elapsed():
                raise self.error(trigger_node, f"{what}: brought_forward_by {trigger.event}: within "
                                               f"({trigger.within}) must be longer than warn_before ({warn})")
        return DeadlinePolicy(
            name=name, starts=tuple(starts), met_by=frozenset(met_by), cancelled_by=frozenset(cancelled_by),
            due=due, warn_before=warn,
            audience=self.choice(fields["audience"], AUDIENCES, f"{what}: audience"),
            severity=self.choice(fields["severity"], SEVERITIES, f"{what}: severity"),
            repeats=repeats, when=when, brought_forward_by=forward,
        )

    def hook(self, name: str, node: yaml.Node) -> HookSetting | None:
        what = f"hook '{name}'"
        if isinstance(node, yaml.ScalarNode) and self._loader.construct_object(node) is None:
            return HookSetting(name, node.start_mark.line + 1)
        fields = self.mapping(node, what, optional=("audience", "severity", "enabled"))
        if "enabled" in fields and not self.scalar(fields["enabled"], bool, f"{what}: enabled"):
            return None
        return HookSetting(
            name, node.start_mark.line + 1,
            self.choice(fields["audience"], AUDIENCES, f"{what}: audience") if "audience" in fields else None,
            self.choice(fields["severity"], SEVERITIES, f"{what}: severity") if "severity" in fields else None,
        )


_KIND_NAMES: Mapping[type, str] = {str: "text", int: "a whole number", bool: "true or false"}


def _shown(node: yaml.Node) -> str:
    if isinstance(node, yaml.ScalarNode):
        return f"'{node.value}'"
    return "a list" if isinstance(node, yaml.SequenceNode) else "a mapping"


def _field_values(event: str, name: str) -> tuple[object, ...]:
    model = DATA_MODELS[next(t for t, short in SHORT_TYPES.items() if short == event)]
    annotation = model.model_fields[name].annotation
    options = [a for a in typing.get_args(annotation) if a is not type(None)] or [annotation]
    if options[0] is bool:
        return (True, False)
    return tuple(typing.get_args(options[0]) if typing.get_origin(options[0]) is Literal else options)

