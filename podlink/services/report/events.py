"""One record of `pod.outcomes.v1` (or one line of a file of them) as an outcome event the
report can use, or the reason it cannot: a bad record is skipped and counted, never a crash.

Only the fields the report reads are checked, each for the type it needs (docs/outcome-events.md
and the lead's deadline and governance events). The reasons are fixed texts: they never quote a
value, so nothing from a record reaches a terminal or a log.
"""
from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any, NamedTuple

import orjson

PREFIX = "uk.nhs.podlink."


class OutcomeEvent(NamedTuple):
    id: str
    kind: str  # the type without the prefix, e.g. `meeting.held`
    referral_id: str
    data: dict[str, Any]


class Skipped(NamedTuple):
    reason: str


def _text(value: Any) -> bool:
    return isinstance(value, str) and value != ""


def _whole(value: Any) -> bool:
    return type(value) is int  # not a bool, which is an int too


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _time(value: Any) -> bool:
    if not isinstance(value, str):
        return False
    try:
        return datetime.fromisoformat(value).tzinfo is not None
    except ValueError:
        return False


def _optional(check: Callable[[Any], bool]) -> Callable[[Any], bool]:
    return lambda value: value is None or check(value)


def _counts(value: Any) -> bool:
    return type(value) is dict and all(type(n) is int and n >= 0 for n in value.values())


def _attendance(value: Any) -> bool:
    return _counts(value) and all(kind in value for kind in ("service_user", "network_member", "staff"))


# The fields each kind must have for the report, and what each must be. A kind the report
# counts but reads nothing from has no fields here; a kind not here at all is skipped.
FIELDS: dict[str, dict[str, Callable[[Any], bool]]] = {
    "referral.registered": {"teamCode": _text, "receivedAt": _time},
    "referral.accepted": {},
    "referral.closed": {"outcome": lambda v: v in ("rejected", "withdrawn")},
    "contact.first": {"minutesFromReferral": _optional(_whole)},
    "meeting.first": {"withinDeadline": lambda v: isinstance(v, bool), "minutesFromDeadlineStart": _whole},
    "meeting.held": {"start": _time, "attendance": _attendance, "networkMembersByRelationship": _counts,
                     "staffByRole": _counts, "adherenceScore": _optional(_number)},
    "episode.discharged": {},
    "measure.recorded": {"instrument": _text, "timepoint": _text,
                         "totalScore": _optional(_number), "meanScore": _optional(_number),
                         "metricScore": _optional(_number)},
    "medication.prescribed": {"isNew": lambda v: isinstance(v, bool),
                              "urgentSafetyOverride": _optional(lambda v: isinstance(v, bool)),
                              "meetingsHeldBefore": _whole},
    "deadline.met": {"policy": _text},
    "deadline.missed": {"policy": _text},
    "governance.flagged": {"rule": _text},
    # Published today and valid, but not in the report's tables.
    "risk.assessed": {}, "cpa.coordinator-assigned": {}, "cpa.review-held": {},
    "admission.started": {}, "admission.ended": {},
    # The EPR delivery's and on-call dispatch's own events (docs/outcome-events.md).
    "delivery.succeeded": {}, "delivery.failed": {},
    "alert.sent": {}, "alert.failed": {}, "alert.acknowledged": {},
}
OPTIONAL = {"totalScore", "meanScore", "metricScore", "adherenceScore", "minutesFromReferral",
            "urgentSafetyOverride"}


def parse(raw: bytes | str | None) -> OutcomeEvent | Skipped:
    """The record as an outcome event, or why it is skipped."""
    if raw is None:
        return Skipped("no value")
    try:
        value = orjson.loads(raw)
    except orjson.JSONDecodeError:  # invalid UTF-8 too
        return Skipped("not JSON")
    if not isinstance(value, dict):
        return Skipped("not a JSON object")
    kind = value.get("type")
    if not isinstance(kind, str) or not kind.startswith(PREFIX) or kind[len(PREFIX):] not in FIELDS:
        return Skipped("not a podlink outcome event type")
    kind = kind[len(PREFIX):]
    event_id, subject, data = value.get("id"), value.get("subject"), value.get("data")
    if not _text(event_id) or not _text(subject):
        return Skipped(f"{kind}: no id or subject")
    if not isinstance(data, dict) or data.get("referralId") != subject:
        return Skipped(f"{kind}: data.referralId is not the subject")
    for field, check in FIELDS[kind].items():
        if field not in data and field not in OPTIONAL:
            return Skipped(f"{kind}: no data.{field}")
        if not check(data.get(field)):
            return Skipped(f"{kind}: data.{field} is not valid")
    if kind == "measure.recorded" and data.get(score_field(data["instrument"])) is None:
        return Skipped(f"measure.recorded: no data.{score_field(data['instrument'])}")
    return OutcomeEvent(event_id, kind, subject, data)


def score_field(instrument: str) -> str:
    """The score an instrument is reported by: CMHS by the mean of its items, others by total."""
    return "meanScore" if instrument == "CMHS" else "totalScore"
