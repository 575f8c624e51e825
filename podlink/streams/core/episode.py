"""The POD episode: one per referral, and the pure rule that moves it on by one event.

`apply` is the whole state machine. It never does I/O and never reads a clock: the Faust
layer stores what it returns and publishes what the transitions imply.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, field_validator

from podlink.streams.core.events import (
    AdmissionEnded, AdmissionStarted, Attendee, ContactMade, CpaCoordinatorAssigned,
    CpaReviewHeld, EpisodeDischarged, Event, Location, MeasureRecorded, MedicationPrescribed,
    MeetingCancelled, MeetingHeld, MeetingScheduled, ReferralAccepted, ReferralReceived,
    ReferralRejected, ReferralWithdrawn, RiskAssessed, Staff, TypedEvent,
)

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
    """The settings the rules depend on (from the environment and the policy file)."""

    deadline_hours: float = 24.0
    deadline_starts_at: Literal["referral", "first-contact"] = "referral"
    at_risk_hours: float = 6.0
    teams: frozenset[str] | None = None  # None: every team is in scope


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
            return Step(current, "replayed", (Transition(event, rewind(current, event.data), current),))
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
    changes = _changes(episode, event.data) | {"applied": episode.applied + (event.dedup_key,)}
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


def rewind(ep: Episode, data: Any) -> Episode:
    """The episode as it was before `data`, as far as the milestones `data` reaches go."""
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
