"""An episode's timeline: each applied event as the rules see it, with coded facts only.

Deadlines and flags are computed from the timeline, not from the latest state, so a changed
policy file applies to what already happened, and events read out of order are put back in
the order they happened. An occurrence keeps only times, yes/no facts and coded values (the
contract's enumerations): never names, identifiers or free text.
"""
from __future__ import annotations

import types
import typing
from datetime import datetime, timezone
from typing import Any, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict

from podlink.streams.core.events import DATA_MODELS, Event

# The contract's CloudEvent types, as a policy file names them: "referral.received".
SHORT_TYPES: dict[str, str] = {t: t.split(".", 3)[3] for t in DATA_MODELS}
EVENT_NAMES: frozenset[str] = frozenset(SHORT_TYPES.values())

# When each event happened, as a field of its payload; a scheduling happens when it is sent.
TIME_FIELDS: dict[str, str | None] = {
    "referral.received": "receivedAt", "referral.accepted": "acceptedAt",
    "referral.rejected": "rejectedAt", "referral.withdrawn": "withdrawnAt",
    "contact.made": "contactAt", "meeting.scheduled": None, "meeting.held": "start",
    "meeting.cancelled": "cancelledAt", "risk.assessed": "assessedAt",
    "cpa.coordinator-assigned": "assignedAt", "cpa.review-held": "heldAt",
    "medication.prescribed": "prescribedAt", "measure.recorded": "recordedAt",
    "admission.started": "admittedAt", "admission.ended": "endedAt",
    "episode.discharged": "dischargedAt",
}


class Occurrence(BaseModel):
    model_config = ConfigDict(frozen=True)

    key: str  # the inbound event's dedup key: which event this is, for replays
    type: str
    at: AwareDatetime
    times: dict[str, AwareDatetime] = {}
    flags: dict[str, bool] = {}
    codes: dict[str, str] = {}


def _kind(annotation: Any) -> str | None:
    """'time', 'flag' or 'code' for a payload field the timeline keeps; None for the rest."""
    options = typing.get_args(annotation) if _is_union(annotation) else (annotation,)
    options = tuple(o for o in options if o is not type(None))
    if len(options) != 1:
        return None
    option = options[0]
    if option in (datetime, AwareDatetime) or getattr(option, "__origin__", None) is AwareDatetime:
        return "time"
    if typing.get_origin(option) is typing.Annotated and typing.get_args(option)[0] is datetime:
        return "time"
    if option is bool:
        return "flag"
    if typing.get_origin(option) is Literal:
        return "code"
    return None


def _is_union(annotation: Any) -> bool:
    return typing.get_origin(annotation) in (typing.Union, types.UnionType)


KEPT_FIELDS: dict[str, dict[str, str]] = {
    SHORT_TYPES[t]: {name: kind for name, field in model.model_fields.items()
                     if (kind := _kind(field.annotation)) is not None}
    for t, model in DATA_MODELS.items()
}


def occurrence_of(event: Event) -> Occurrence:
    return occurrence_from(SHORT_TYPES[event.type], event.data, event.dedup_key, event.time)


def occurrence_from(short: str, data: Any, key: str, sent_at: datetime) -> Occurrence:
    kept = KEPT_FIELDS[short]
    values = {name: getattr(data, name) for name in kept}
    time_field = TIME_FIELDS[short]
    at = values[time_field] if time_field else sent_at
    # Built without validation (a fifth of applying an event, measured): the values are the
    # validated event's own, of the kinds KEPT_FIELDS found (aware moments, made UTC here;
    # bools; codes, every one a Literal of strings: tests/unit/core/test_timeline.py).
    return Occurrence.model_construct(
        key=key, type=short, at=at.astimezone(timezone.utc),
        times={n: v.astimezone(timezone.utc) for n, v in values.items() if kept[n] == "time" and v is not None},
        flags={n: v for n, v in values.items() if kept[n] == "flag" and v is not None},
        codes={n: v for n, v in values.items() if kept[n] == "code" and v is not None},
    )


def in_order(timeline: tuple[Occurrence, ...]) -> list[Occurrence]:
    # By when it happened; two at one moment in a fixed order, whatever order they were read.
    return sorted(timeline, key=lambda o: (o.at, o.key))
