"""The alert records `podlink notify` reads from `pod.sla-alerts.v1`, checked field by field.

A record that is not an alert podlink can route raises Unreadable with a reason naming the
field, never its value: the reason goes to logs, metrics and an `alert.failed` event.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from podlink.streams.core.outcomes import PREFIX

Kind = Literal["at-risk", "breached", "resolved", "flagged"]
KINDS: dict[str, Kind] = {
    PREFIX + "sla.at-risk": "at-risk",
    PREFIX + "sla.breached": "breached",
    PREFIX + "sla.resolved": "resolved",
    PREFIX + "governance.flagged": "flagged",
}
SEVERITIES = ("critical", "error", "warning", "info")


class Unreadable(ValueError):
    """The record is not an alert notify can route; the message names the field, not its value."""


@dataclass(frozen=True)
class Alert:
    id: str
    kind: Kind
    referral_id: str
    topic: str  # the SLA policy (first-meeting, ...) or the governance rule
    audience: str
    severity: str
    team_code: str | None
    raised_at: datetime
    due_at: datetime | None
    resolved_by: str | None = None
    cycle: int = 0  # a repeating deadline's round (risk and CPA reviews); 0 for the first and for flags

    @property
    def key(self) -> str:
        """PagerDuty's dedup_key: the referral and the policy (or rule)."""
        return f"{self.referral_id}:{self.topic}"

    @property
    def deadline(self) -> tuple[str, str, int]:
        """The deadline an alert is about: what ties a resolution or a breach to earlier alerts."""
        return self.referral_id, self.topic, self.cycle


def _text(data: dict[str, Any], name: str, required: bool = True) -> str | None:
    value = data.get(name)
    if value is None and not required:
        return None
    if not isinstance(value, str) or not value:
        raise Unreadable(f"data.{name} is missing or not text")
    return value


def _moment(data: dict[str, Any], name: str, required: bool = True) -> datetime | None:
    text = _text(data, name, required)
    if text is None:
        return None
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise Unreadable(f"data.{name} is not an ISO 8601 time") from None
    if moment.tzinfo is None:
        raise Unreadable(f"data.{name} has no time zone")
    return moment


def parse_alert(value: bytes | None) -> Alert:
    """The alert in a record's value (a CloudEvents 1.0 structured JSON event)."""
    if value is None:
        raise Unreadable("the record has no value")
    try:
        event = json.loads(value)
    except (ValueError, UnicodeDecodeError):
        raise Unreadable("the value is not JSON") from None
    if not isinstance(event, dict) or event.get("specversion") != "1.0":
        raise Unreadable("the value is not a CloudEvents 1.0 event")
    kind = KINDS.get(event.get("type"))  # type: ignore[arg-type]
    if kind is None:
        raise Unreadable("type is not an alert type notify knows")
    if not isinstance(event.get("id"), str) or not event["id"]:
        raise Unreadable("id is missing")
    data = event.get("data")
    if not isinstance(data, dict):
        raise Unreadable("data is missing")
    severity = _text(data, "severity")
    if severity not in SEVERITIES:
        raise Unreadable("data.severity is not critical, error, warning or info")
    return Alert(
        id=event["id"], kind=kind,
        referral_id=_text(data, "referralId"),  # type: ignore[arg-type]
        topic=_text(data, "rule" if kind == "flagged" else "policy"),  # type: ignore[arg-type]
        audience=_text(data, "audience"),  # type: ignore[arg-type]
        severity=severity,
        team_code=_text(data, "teamCode", required=False),
        raised_at=_moment(data, "raisedAt"),  # type: ignore[arg-type]
        due_at=_moment(data, "dueAt", required=kind != "flagged"),
        resolved_by=_text(data, "resolvedBy", required=False) if kind == "resolved" else None,
        cycle=_cycle(data),
    )


def _cycle(data: dict[str, Any]) -> int:
    cycle = data.get("cycle", 0)
    if not isinstance(cycle, int) or isinstance(cycle, bool) or cycle < 0:
        raise Unreadable("data.cycle is not a whole number of 0 or more")
    return cycle
