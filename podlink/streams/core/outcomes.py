"""Outcome events for reporting and evaluation, as CloudEvents 1.0 structured JSON.

They carry the referral id and coded facts only: no names, NHS numbers, phone numbers or free
text, so downstream reporting never handles patient identifiers.
"""
from __future__ import annotations

from collections import Counter
from datetime import datetime
from typing import Any

from podlink.streams.core.deadlines import Deadline
from podlink.streams.core.encoding import utc_text
from podlink.streams.core.episode import Episode, Transition
from podlink.streams.core.events import (
    AdmissionEnded,
    AdmissionStarted,
    ContactMade,
    CpaCoordinatorAssigned,
    CpaReviewHeld,
    EpisodeDischarged,
    MeasureRecorded,
    MedicationPrescribed,
    MeetingHeld,
    ReferralAccepted,
    ReferralReceived,
    ReferralRejected,
    ReferralWithdrawn,
    RiskAssessed,
)
from podlink.streams.core.ids import once_id
from podlink.streams.core.measures import scores
from podlink.streams.core.rules import Evaluation, Flag

SOURCE = "urn:podlink:episode-processor"
PREFIX = "uk.nhs.podlink."


def cloud_event(kind: str, subject: str, time: datetime, data: dict[str, Any], *id_parts: str) -> dict[str, Any]:
    """A CloudEvents 1.0 structured-mode event with an id fixed by its kind and `id_parts`."""
    return {
        "specversion": "1.0",
        "id": once_id(kind, subject, *id_parts),  # one event's own: not worth the cache
        "source": SOURCE,
        "type": PREFIX + kind,
        "subject": subject,
        "time": utc_text(time),
        "datacontenttype": "application/json",
        "data": {"referralId": subject, **data},
    }


def outcome_events(transition: Transition, deadline: Deadline | None) -> list[dict[str, Any]]:
    """The milestones that `transition` reached (each at most once per referral), or the care
    event it applied (once per event: the id is fixed by the facts that tell two apart)."""
    before, after, data = transition.before, transition.after, transition.event.data
    ref = after.referral_id
    match data:
        case ReferralReceived() if before.referral is None:
            return [cloud_event("referral.registered", ref, data.receivedAt, {
                "teamCode": data.referredTo.teamCode,
                "odsCode": data.referredTo.odsCode,
                "source": data.source,
                "urgency": data.urgency,
                "riskLevel": data.riskLevel,
                "cpaRequired": data.cpaRequired,
                "networkSize": len(data.network),
                "receivedAt": utc_text(data.receivedAt),
                "deadline": utc_text(deadline.due_at) if deadline else None,
            })]
        case ReferralAccepted() if before.acceptance is None:
            return [cloud_event("referral.accepted", ref, data.acceptedAt, {
                "teamCode": data.teamCode,
                "acceptedAt": utc_text(data.acceptedAt),
                "allocatedRole": data.allocatedTo.role if data.allocatedTo else None,
            })]
        case ReferralRejected() | ReferralWithdrawn() if before.closure is None:
            return [_closed(ref, data)]
        case ContactMade() if before.first_contact is None:
            return [cloud_event("contact.first", ref, data.contactAt, {
                "contactAt": utc_text(data.contactAt),
                "method": data.method,
                "staffRole": data.staff.role,
                "outcome": data.outcome,
                "minutesFromReferral": minutes_between(after.referral.receivedAt, data.contactAt)
                if after.referral else None,
            })]
        case MeetingHeld() if data.meetingId not in {m.meeting_id for m in before.held_meetings}:
            events = []
            if before.first_meeting is None and deadline is not None:
                events.append(_first_meeting(ref, data, deadline))
            events.append(_meeting_held(ref, data, after.held_meetings))
            return events
        case EpisodeDischarged() if before.discharge is None:
            return [cloud_event("episode.discharged", ref, data.dischargedAt, {
                "dischargedAt": utc_text(data.dischargedAt),
                "sharedDecision": data.sharedDecision,
                "occupationAtDischarge": data.occupationAtDischarge,
                "meetingsHeld": len(after.held_meetings),
                "bedDays": _bed_days(after),
            })]
        case RiskAssessed():
            # No assessor: the staff member's name would travel with them.
            return [cloud_event("risk.assessed", ref, data.assessedAt, {
                "level": data.level,
                "assessedAt": utc_text(data.assessedAt),
                "reviewDue": utc_text(data.reviewDue) if data.reviewDue else None,
            }, utc_text(data.assessedAt))]
        case CpaCoordinatorAssigned():
            return [cloud_event("cpa.coordinator-assigned", ref, data.assignedAt, {
                "assignedAt": utc_text(data.assignedAt),
                "coordinatorRole": data.coordinator.role,
            }, utc_text(data.assignedAt))]
        case CpaReviewHeld():
            return [cloud_event("cpa.review-held", ref, data.heldAt, {
                "heldAt": utc_text(data.heldAt),
                "nextReviewDue": utc_text(data.nextReviewDue) if data.nextReviewDue else None,
            }, utc_text(data.heldAt))]
        case AdmissionStarted():
            return [cloud_event("admission.started", ref, data.admittedAt, {
                "admittedAt": utc_text(data.admittedAt),
            }, utc_text(data.admittedAt))]
        case AdmissionEnded():
            return [_admission_ended(ref, data, after)]
        case MedicationPrescribed():
            return [_medication(ref, data, transition)]
        case MeasureRecorded():
            return [_measure(ref, data)]
    return []


def _closed(ref: str, data: ReferralRejected | ReferralWithdrawn) -> dict[str, Any]:
    if isinstance(data, ReferralRejected):
        return cloud_event("referral.closed", ref, data.closed_at, {
            "outcome": "rejected", "closedAt": utc_text(data.closed_at), "redirectedTo": data.redirectedTo,
        })
    return cloud_event("referral.closed", ref, data.closed_at, {
        "outcome": "withdrawn", "closedAt": utc_text(data.closed_at),
    })


def _first_meeting(ref: str, data: MeetingHeld, deadline: Deadline) -> dict[str, Any]:
    return cloud_event("meeting.first", ref, data.start, {
        "meetingId": data.meetingId,
        "start": utc_text(data.start),
        "policy": deadline.policy,
        "deadline": utc_text(deadline.due_at),
        # The deadline's own rule, so this event and the CarePlan's outcome always agree.
        "withinDeadline": deadline.met_within,
        "minutesFromDeadlineStart": minutes_between(deadline.starts_at, data.start),
    })


def _meeting_held(ref: str, data: MeetingHeld, held: list[Any]) -> dict[str, Any]:
    kinds = Counter(a.kind for a in data.attendees)
    relationships = Counter(a.relationship for a in data.attendees if a.kind == "network_member")
    roles = Counter(a.role for a in data.attendees if a.kind == "staff")
    number = next((i for i, m in enumerate(held, 1) if m.meeting_id == data.meetingId), None)
    return cloud_event("meeting.held", ref, data.start, {
        "meetingId": data.meetingId,
        "meetingNumber": number,
        "start": utc_text(data.start),
        "end": utc_text(data.end),
        "durationMinutes": minutes_between(data.start, data.end),
        "location": data.location,
        "attendance": {k: kinds.get(k, 0) for k in ("service_user", "network_member", "staff")},
        "networkMembersByRelationship": dict(sorted(relationships.items())),
        "staffByRole": dict(sorted(roles.items())),
        "adherenceScore": data.adherenceScore,
    }, data.meetingId)


def _admission_ended(ref: str, data: AdmissionEnded, episode: Episode) -> dict[str, Any]:
    # The admission this event closed; none when podlink held no admission open for it.
    ended = next((a for a in episode.admissions if a.ended_at == data.endedAt), None)
    return cloud_event("admission.ended", ref, data.endedAt, {
        "endedAt": utc_text(data.endedAt),
        "bedDays": _nights(ended.admitted_at, data.endedAt) if ended else None,
    }, utc_text(data.endedAt))


def _medication(ref: str, data: MedicationPrescribed, transition: Transition) -> dict[str, Any]:
    # POD's principle of at least three network meetings before new medication: evaluation
    # needs the meetings held (started) before the prescription, in the episode as known then.
    before = sum(1 for m in transition.after.held_meetings
                 if m.start is not None and m.start < data.prescribedAt)
    # The inbound event's id tells two prescriptions at one moment apart. The drug's code or
    # name would too, but a name-based UUID over a short list of drugs can be reversed.
    return cloud_event("medication.prescribed", ref, data.prescribedAt, {
        "prescribedAt": utc_text(data.prescribedAt),
        "isNew": data.isNew,
        "urgentSafetyOverride": data.urgentSafetyOverride,
        "meetingsHeldBefore": before,
    }, transition.event.source, transition.event.id)


def _measure(ref: str, data: MeasureRecorded) -> dict[str, Any]:
    # The id has the FHIR Observation's parts plus the respondent's kind: a service user and a
    # clinician may score one instrument at one moment, neither with a person id.
    id_parts = (data.instrument, data.timepoint, utc_text(data.recordedAt), data.respondent or "",
                data.respondentPersonId or "")
    return cloud_event("measure.recorded", ref, data.recordedAt, {
        "instrument": data.instrument,
        "timepoint": data.timepoint,
        "respondent": data.respondent,
        "recordedAt": utc_text(data.recordedAt),
        "itemCount": len(data.items),
        **scores(data.instrument, data.items),
    }, *id_parts)


def minutes_between(start: datetime, end: datetime) -> int:
    return round((end - start).total_seconds() / 60)


def _bed_days(episode: Any) -> int:
    # Days from admission to discharge from the bed, counted as MHSDS counts bed days:
    # calendar nights occupied; an admission still open at discharge counts to discharge.
    end_default = episode.discharge.dischargedAt if episode.discharge else None
    nights = 0
    for admission in episode.admissions:
        end = admission.ended_at or end_default
        if end is not None:
            nights += _nights(admission.admitted_at, end)
    return nights


def _nights(admitted_at: datetime, ended_at: datetime) -> int:
    # Calendar nights occupied, the unit of MHSDS bed days.
    return max(0, (ended_at.date() - admitted_at.date()).days)


def deadline_outcomes(before: Evaluation, after: Evaluation) -> list[dict[str, Any]]:
    """`deadline.met` or `deadline.missed` for each deadline that `after` closed and `before`
    had open (or had not yet): met by its due time, or met late, or closed unmet after it."""
    was_open = {(d.policy, d.cycle) for d in before.deadlines if d.is_open}
    known = {(d.policy, d.cycle) for d in before.deadlines}
    events = []
    for d in after.deadlines:
        key = (d.policy, d.cycle)
        if d.is_open or (key in known and key not in was_open):
            continue
        if d.met_at is not None and d.met_at <= d.due_at:
            events.append(cloud_event("deadline.met", d.referral_id, d.met_at, {
                **_deadline_facts(d), "metAt": utc_text(d.met_at),
                "minutesEarly": minutes_between(d.met_at, d.due_at),
            }, *deadline_id_parts(d)))
        elif d.ended_at is not None and d.ended_at > d.due_at:
            events.append(missed_event(d, d.ended_at))
    return events


def missed_event(d: Deadline, known_at: datetime) -> dict[str, Any]:
    """A deadline passed unmet. Sent when it falls due and again if it is met late: the same
    id both times, so a consumer counts one missed deadline."""
    return cloud_event("deadline.missed", d.referral_id, d.due_at, {
        **_deadline_facts(d), "metAt": utc_text(d.met_at) if d.met_at else None,
        "minutesLate": max(minutes_between(d.due_at, known_at), 0),
    }, *deadline_id_parts(d))


def flag_event(flag: Flag) -> dict[str, Any]:
    """A governance flag, as an outcome event and (the same event) as an alert."""
    return cloud_event("governance.flagged", flag.referral_id, flag.at, {
        "rule": flag.rule, "audience": flag.audience, "severity": flag.severity,
        "teamCode": flag.team_code, "raisedAt": utc_text(flag.at),
    }, flag.rule, flag.cause)


def new_flags(before: Evaluation, after: Evaluation) -> list[Flag]:
    seen = {(f.rule, f.cause) for f in before.flags}
    return [f for f in after.flags if (f.rule, f.cause) not in seen]


def hook_outcomes(before: Evaluation, after: Evaluation, referral_id: str) -> list[dict[str, Any]]:
    seen = {(o.kind, o.id_parts) for o in before.outcomes}
    return [cloud_event(o.kind, referral_id, o.at, dict(o.data), *o.id_parts)
            for o in after.outcomes if (o.kind, o.id_parts) not in seen]


def deadline_id_parts(d: Deadline) -> tuple[str, ...]:
    # The first cycle's parts are the policy alone, as the first-meeting deadline's always were.
    return (d.policy,) if d.cycle == 0 else (d.policy, str(d.cycle))


def _deadline_facts(d: Deadline) -> dict[str, Any]:
    return {"policy": d.policy, "cycle": d.cycle, "teamCode": d.team_code,
            "startedAt": utc_text(d.starts_at), "dueAt": utc_text(d.due_at)}
