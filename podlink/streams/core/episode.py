"""The POD episode: one per referral, and the pure rule that moves it on by one event.

`apply` is the whole state machine. It never does I/O and never reads a clock: the Faust
layer stores what it returns and publishes what the transitions imply.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, field_validator, model_validator

from podlink.streams.core.events import (
    AdmissionEnded, AdmissionStarted, Attendee, ContactMade, CpaCoordinatorAssigned,
    CpaReviewHeld, EpisodeDischarged, Event, Location, MeasureRecorded, MedicationPrescribed,
    MeetingCancelled, MeetingHeld, MeetingScheduled, ReferralAccepted, ReferralReceived,
    ReferralRejected, ReferralWithdrawn, RiskAssessed, Staff, TypedEvent,
)
from podlink.streams.core.default_rules import default_rules
from podlink.streams.core.rules import Rule
from podlink.streams.core.timeline import Occurrence, occurrence_from, occurrence_of

Status = Literal[
    "awaiting-referral", "received", "accepted", "rejected", "withdrawn", "discharged",
    "out-of-scope",
]
CLOSED: frozenset[str] = frozenset({"rejected", "withdrawn", "discharged"})


class _State(BaseModel):
    model_config = ConfigDict(frozen=True)


class Meeting(_State):
    meeting_id: str
    status: Literal["planned", "held", "cancelled"]
    location: Location | None = None
    scheduled_start: datetime | None = None
    invited_person_ids: tuple[str, ...] = ()
    start: datetime | None = None
    end: datetime | None = None
    attendees: tuple[Attendee, ...] = ()
    adherence_score: float | None = None
    cancelled_at: datetime | None = None
    cancel_reason: str | None = None


class Admission(_State):
    admitted_at: datetime
    ended_at: datetime | None = None
    ward: str | None = None


class Measure(_State):
    instrument: str
    timepoint: str
    recorded_at: datetime
    respondent: str | None
    items: tuple[int, ...]


class Episode(_State):
    referral_id: str
    status: Status = "awaiting-referral"
    referral: ReferralReceived | None = None
    acceptance: ReferralAccepted | None = None
    rejection: ReferralRejected | None = None
    withdrawal: ReferralWithdrawn | None = None
    first_contact: ContactMade | None = None
    meetings: dict[str, Meeting] = {}
    risk: RiskAssessed | None = None
    coordinator: Staff | None = None
    coordinator_assigned_at: datetime | None = None
    last_cpa_review: CpaReviewHeld | None = None
    prescriptions: tuple[MedicationPrescribed, ...] = ()
    measures: tuple[Measure, ...] = ()
    admissions: tuple[Admission, ...] = ()
    discharge: EpisodeDischarged | None = None
    applied: tuple[str, ...] = ()
    # Care events read before their referral, in the order they were read.
    pending: tuple[TypedEvent, ...] = ()
    # Highest input offset applied, by "topic/partition": a record at or below it is a replay
    # (a worker restarting from its last commit), not a new delivery from the source.
    positions: dict[str, int] = {}
    # Every event applied, as the deadline rules read it (timeline.py).
    timeline: tuple[Occurrence, ...] = ()

    @model_validator(mode="before")
    @classmethod
    def _timeline_of_stored_episode(cls, stored: Any) -> Any:
        # Episodes stored before the timeline existed: rebuilt from their state, so their open
        # deadlines carry on after an upgrade.
        if isinstance(stored, dict) and "timeline" not in stored and stored.get("referral"):
            return {**stored, "timeline": _timeline_from_state(cls.model_validate({**stored, "timeline": []}))}
        return stored

    @field_validator("pending", mode="before")
    @classmethod
    def _pending_stored_as_json(cls, pending: Any) -> Any:
        # Episodes stored before events were typed hold each waiting event as its CloudEvent JSON.
        if isinstance(pending, (list, tuple)):
            return [json.loads(p) if isinstance(p, str) else p for p in pending]
        return pending

    @property
    def team_code(self) -> str | None:
        return self.referral.referredTo.teamCode if self.referral else None

    @property
    def held_meetings(self) -> list[Meeting]:
        held = [m for m in self.meetings.values() if m.status == "held" and m.start is not None]
        return sorted(held, key=lambda m: (m.start, m.meeting_id))

    @property
    def first_meeting(self) -> Meeting | None:
        held = self.held_meetings
        return held[0] if held else None

    @property
    def closure(self) -> ReferralRejected | ReferralWithdrawn | None:
        """How the referral was closed before care began, if it was (a rejection first)."""
        return self.rejection or self.withdrawal

    @property
    def is_closed(self) -> bool:
        return self.status in CLOSED


@dataclass(frozen=True)
class Policy:
    """What the rules depend on: the teams in scope and the deadline rules (the policy file)."""

    teams: frozenset[str] | None = None  # None: every team is in scope
    rules: tuple[Rule, ...] = field(default_factory=default_rules)


@dataclass(frozen=True)
class Transition:
    """One event applied: the episode before and after it."""

    event: Event
    before: Episode
    after: Episode


Verdict = Literal["applied", "replayed", "duplicate", "pending", "out-of-scope"]


@dataclass(frozen=True)
class Position:
    """Where a record was read: its input topic, partition and offset."""

    topic: str
    partition: int
    offset: int

    @property
    def partition_key(self) -> str:
        return f"{self.topic}/{self.partition}"


@dataclass(frozen=True)
class Step:
    episode: Episode
    verdict: Verdict
    transitions: tuple[Transition, ...] = ()


def apply(episode: Episode | None, event: Event, policy: Policy,
          position: Position | None = None) -> Step:
    """Apply one validated event; a care event before its referral waits in the episode.

    An event applied before is applied once. If the record is one this episode has already
    read (a replay after a crash), the step carries the transition again so its outputs can
    be sent again with the same ids: local state can be ahead of what reached the broker.
    """
    current = episode or Episode(referral_id=event.referral_id)
    key = event.dedup_key
    if key in current.applied:
        if position is not None and current.positions.get(position.partition_key, -1) >= position.offset:
            # The rules read the timeline as it stood when the record was first applied.
            upto = _timeline_upto(current.timeline, key)
            return Step(current, "replayed", (Transition(event, rewind(current, event),
                                                         current.model_copy(update={"timeline": upto})),))
        return Step(current, "duplicate")
    if any(p.dedup_key == key for p in current.pending):
        return Step(current, "duplicate")
    if position is not None:
        seen = max(current.positions.get(position.partition_key, -1), position.offset)
        current = current.model_copy(update={"positions": current.positions | {position.partition_key: seen}})
    if current.status == "out-of-scope":
        return Step(current.model_copy(update={"applied": current.applied + (key,)}), "out-of-scope")
    if isinstance(event.data, ReferralReceived) and not _in_scope(event.data, policy):
        closed = current.model_copy(
            update={"status": "out-of-scope", "pending": (), "applied": current.applied + (key,)}
        )
        return Step(closed, "out-of-scope")
    if current.referral is None and not isinstance(event.data, ReferralReceived):
        waiting = current.model_copy(update={"pending": current.pending + (event,)})
        return Step(waiting, "pending")

    transitions = [_transition(current, event)]
    if isinstance(event.data, ReferralReceived) and current.pending:
        state = transitions[0].after.model_copy(update={"pending": ()})
        transitions[0] = Transition(event, current, state)
        released = sorted(current.pending, key=lambda e: e.time)
        for waiting_event in released:
            transitions.append(_transition(transitions[-1].after, waiting_event))
    return Step(transitions[-1].after, "applied", tuple(transitions))


def _transition(episode: Episode, event: Event) -> Transition:
    changes = _changes(episode, event.data) | {
        "applied": episode.applied + (event.dedup_key,),
        "timeline": episode.timeline + (occurrence_of(event),),
    }
    return Transition(event, episode, episode.model_copy(update=changes))


def _changes(ep: Episode, data: Any) -> dict[str, Any]:
    match data:
        case ReferralReceived():
            status = ep.status if ep.referral is not None else "received"
            return {"referral": data, "status": status}
        case ReferralAccepted():
            return {"acceptance": data, "status": _open_or(ep, "accepted")}
        case ReferralRejected():
            return {"rejection": data, "status": _open_or(ep, "rejected")}
        case ReferralWithdrawn():
            return {"withdrawal": data, "status": _open_or(ep, "withdrawn")}
        case ContactMade():
            first = ep.first_contact
            if first is None or data.contactAt < first.contactAt:
                first = data
            return {"first_contact": first}
        case MeetingScheduled():
            meeting = _meeting(ep, data.meetingId, data.location).model_copy(update={
                "scheduled_start": data.scheduledStart,
                "invited_person_ids": data.invitedPersonIds,
            })
            return {"meetings": ep.meetings | {data.meetingId: meeting}}
        case MeetingHeld():
            meeting = _meeting(ep, data.meetingId, data.location).model_copy(update={
                "status": "held", "location": data.location, "start": data.start,
                "end": data.end, "attendees": data.attendees,
                "adherence_score": data.adherenceScore,
            })
            return {"meetings": ep.meetings | {data.meetingId: meeting}}
        case MeetingCancelled():
            meeting = _meeting(ep, data.meetingId, None)
            if meeting.status == "held":
                return {}
            cancelled = meeting.model_copy(update={
                "status": "cancelled", "cancelled_at": data.cancelledAt,
                "cancel_reason": data.reason,
            })
            return {"meetings": ep.meetings | {data.meetingId: cancelled}}
        case RiskAssessed():
            if ep.risk is not None and ep.risk.assessedAt > data.assessedAt:
                return {}
            return {"risk": data}
        case CpaCoordinatorAssigned():
            return {"coordinator": data.coordinator, "coordinator_assigned_at": data.assignedAt}
        case CpaReviewHeld():
            last = ep.last_cpa_review
            return {"last_cpa_review": data if last is None or data.heldAt >= last.heldAt else last}
        case MedicationPrescribed():
            return {"prescriptions": ep.prescriptions + (data,)}
        case MeasureRecorded():
            measure = Measure(
                instrument=data.instrument, timepoint=data.timepoint,
                recorded_at=data.recordedAt, respondent=data.respondent, items=data.items,
            )
            return {"measures": ep.measures + (measure,)}
        case AdmissionStarted():
            return {"admissions": ep.admissions + (Admission(admitted_at=data.admittedAt, ward=data.ward),)}
        case AdmissionEnded():
            return {"admissions": _end_admission(ep.admissions, data.endedAt)}
        case EpisodeDischarged():
            return {"discharge": data, "status": "discharged"}
    raise TypeError(f"no rule for {type(data).__name__}")


def rewind(ep: Episode, event: Event) -> Episode:
    """The episode as it was before `event`, as far as its milestones and the timeline go."""
    upto = _timeline_upto(ep.timeline, event.dedup_key)
    ep = ep.model_copy(update={"timeline": upto[:-1] if upto and upto[-1].key == event.dedup_key else upto})
    data = event.data
    match data:
        case ReferralReceived() if ep.referral == data:
            return ep.model_copy(update={"referral": None})
        case ReferralAccepted() if ep.acceptance == data:
            return ep.model_copy(update={"acceptance": None})
        case ReferralRejected() if ep.rejection == data:
            return ep.model_copy(update={"rejection": None})
        case ReferralWithdrawn() if ep.withdrawal == data:
            return ep.model_copy(update={"withdrawal": None})
        case ContactMade() if ep.first_contact == data:
            return ep.model_copy(update={"first_contact": None})
        case MeetingHeld():
            # Meetings held at or after this one had not happened yet.
            earlier = {k: m for k, m in ep.meetings.items()
                       if m.status != "held" or (m.start is not None and m.start < data.start)}
            return ep.model_copy(update={"meetings": earlier})
        case EpisodeDischarged() if ep.discharge == data:
            return ep.model_copy(update={"discharge": None})
    return ep


def _timeline_upto(timeline: tuple[Occurrence, ...], key: str) -> tuple[Occurrence, ...]:
    """The timeline as it was once the event with `key` was applied (all of it, if not found)."""
    for i, occurrence in enumerate(timeline):
        if occurrence.key == key:
            return timeline[:i + 1]
    return timeline


def _open_or(ep: Episode, status: Status) -> Status:
    # A closed episode stays closed: a late acceptance does not reopen a withdrawn referral.
    return ep.status if ep.is_closed else status


def _meeting(ep: Episode, meeting_id: str, location: Location | None) -> Meeting:
    return ep.meetings.get(meeting_id) or Meeting(meeting_id=meeting_id, status="planned", location=location)


def _end_admission(admissions: tuple[Admission, ...], ended_at: datetime) -> tuple[Admission, ...]:
    for i in range(len(admissions) - 1, -1, -1):
        if admissions[i].ended_at is None:
            ended = admissions[i].model_copy(update={"ended_at": ended_at})
            return admissions[:i] + (ended,) + admissions[i + 1:]
    return admissions


def _in_scope(referral: ReferralReceived, policy: Policy) -> bool:
    return policy.teams is None or referral.referredTo.teamCode in policy.teams


def _timeline_from_state(ep: Episode) -> tuple[Occurrence, ...]:
    """What an episode stored before timelines can tell of its events (the latest risk
    assessment and CPA review only; first contact only), under keys of their own."""
    found: list[tuple[str, Any, datetime | None]] = [
        ("referral.received", ep.referral, None), ("referral.accepted", ep.acceptance, None),
        ("referral.rejected", ep.rejection, None), ("referral.withdrawn", ep.withdrawal, None),
        ("contact.made", ep.first_contact, None), ("risk.assessed", ep.risk, None),
        ("cpa.review-held", ep.last_cpa_review, None), ("episode.discharged", ep.discharge, None),
    ]
    found += [("meeting.held", m, None) for m in ep.held_meetings]
    found += [("medication.prescribed", p, None) for p in ep.prescriptions]
    if ep.coordinator is not None and ep.coordinator_assigned_at is not None:
        found.append(("cpa.coordinator-assigned", None, ep.coordinator_assigned_at))
    for admission in ep.admissions:
        found.append(("admission.started", None, admission.admitted_at))
        if admission.ended_at is not None:
            found.append(("admission.ended", None, admission.ended_at))
    timeline = []
    for i, (short, data, at) in enumerate(found):
        if data is None and at is None:
            continue
        data = _Fields(short, data, at)
        timeline.append(occurrence_from(short, data, f"stored-before-timeline/{i}", data.sent_at))
    return tuple(timeline)


class _Fields:
    """An episode's stored state in the shape `occurrence_from` reads an event's payload."""

    def __init__(self, short: str, data: Any, at: datetime | None) -> None:
        self._data = data
        self._at = at
        self.sent_at = at or _first_time(data)

    def __getattr__(self, name: str) -> Any:
        if self._data is None:
            return self._at if name in ("assignedAt", "admittedAt", "endedAt") else None
        if isinstance(self._data, Meeting):
            return {"start": self._data.start, "end": self._data.end, "location": self._data.location}.get(name)
        return getattr(self._data, name, None)


def _first_time(data: Any) -> datetime:
    if isinstance(data, Meeting):
        assert data.start is not None  # held meetings only
        return data.start
    return next(v for v in data.model_dump().values() if isinstance(v, datetime))
