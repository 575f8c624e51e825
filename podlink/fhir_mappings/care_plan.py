"""The POD episode as one UK Core CarePlan, rebuilt whole from the episode for every message.

Status follows the referral: `draft` when only received, `active` once accepted, `revoked` when
rejected or withdrawn, `completed` at discharge. The care coordinator (CPA) is the author.

Activities are self-contained `detail`s, in a fixed order: the first-meeting deadline, the first
contact, each network meeting, CPA reviews, prescriptions and admissions (`_ACTIVITIES`: one
function per kind, each giving that kind's activities; add a kind there). Then one activity per
deadline of every policy, referencing its Task (`tasks.py`), which travels with the CarePlan. They do not reference
the meeting Encounters: a CarePlan travels in nearly every message, and references would pull
every meeting, with its people, into each of them. A meeting still planned when the episode
closes is shown cancelled, as its Encounter is.

The deadline activity (`first-network-meeting-within-24h`) is scheduled from the deadline's start
to its due time (no period while the policy's clock has not started). Its status: `not-started`
until a meeting is arranged, `scheduled` while one is, `completed` once the first meeting is held
(with `outcomeCodeableConcept` met-within-deadline or met-after-deadline), `cancelled` if the
referral is rejected or withdrawn first, `stopped` if the episode is discharged first.
"""
from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timezone

from podlink.fhir_mappings.elements import Json, compact, meta, period, reference
from podlink.fhir_mappings.errors import require_referral
from podlink.fhir_mappings.people import practitioner, staff_names, staff_reference
from podlink.fhir_mappings.resource_ids import (
    care_plan_id,
    patient_id,
    service_request_id,
)
from podlink.fhir_mappings.systems import DMD, PROFILE_CARE_PLAN, Namespace
from podlink.fhir_mappings.tasks import deadline_tasks, task_reference
from podlink.fhir_mappings.terminology import (
    MENTAL_HEALTH_CRISIS_PLAN,
    activity_code,
    deadline_outcome,
)
from podlink.streams.core.deadlines import Deadline
from podlink.streams.core.episode import Episode, Meeting

_STATUS = {
    "received": "draft",
    "accepted": "active",
    "rejected": "revoked",
    "withdrawn": "revoked",
    "discharged": "completed",
}
_MEETING_STATUS = {"planned": "scheduled", "held": "completed", "cancelled": "cancelled"}
_NEVER = datetime.max.replace(tzinfo=timezone.utc)


def care_plan(episode: Episode, deadline: Deadline | None, ns: Namespace,
              deadlines: tuple[Deadline, ...] = ()) -> list[Json]:
    """The CarePlan first, then a Task per deadline (`tasks.py`), then the coordinator's
    Practitioner when one is assigned."""
    referral = require_referral(episode)
    coordinator = episode.coordinator
    plan = compact({
        "resourceType": "CarePlan",
        "id": care_plan_id(referral.referralId),
        "meta": meta(PROFILE_CARE_PLAN),
        "status": _STATUS[episode.status],
        "intent": "plan",
        "category": [MENTAL_HEALTH_CRISIS_PLAN],
        "title": "Peer-supported Open Dialogue care plan",
        "subject": reference(patient_id(referral.patient.nhsNumber)),
        "period": period(referral.receivedAt, _ended_at(episode)),
        "author": staff_reference(staff_names(episode), coordinator.staffId) if coordinator else None,
        # R4 CarePlan.basedOn may only point at CarePlans: the referral is supporting information.
        "supportingInfo": [reference(service_request_id(referral.referralId))],
        "activity": [
            *(activity for kind in _ACTIVITIES for activity in kind(episode, deadline, ns)),
            *({"reference": task_reference(d)} for d in deadlines),
        ],
    })
    tasks = deadline_tasks(episode, deadlines, ns)
    return [plan, *tasks, practitioner(coordinator.staffId, ns)] if coordinator else [plan, *tasks]


def _ended_at(episode: Episode) -> datetime | None:
    if episode.status == "discharged" and episode.discharge:
        return episode.discharge.dischargedAt
    if episode.status == "rejected" and episode.rejection:
        return episode.rejection.rejectedAt
    if episode.status == "withdrawn" and episode.withdrawal:
        return episode.withdrawal.withdrawnAt
    return None


def _activity(
    ns: Namespace, code: str, status: str, *, kind: str | None = None,
    start: datetime | None = None, end: datetime | None = None,
    product: Json | None = None, description: str | None = None,
) -> Json:
    # Built field by field rather than through `compact`: a plan has an activity per meeting,
    # review, prescription and admission, rebuilt for every message.
    detail: Json = {"kind": kind} if kind is not None else {}
    detail["code"] = activity_code(ns, code)
    detail["status"] = status
    scheduled = period(start, end)
    if scheduled is not None:
        detail["scheduledPeriod"] = scheduled
    if product:
        detail["productCodeableConcept"] = product
    if description is not None:
        detail["description"] = description
    return {"detail": detail}


def _deadline_activity(episode: Episode, deadline: Deadline | None, ns: Namespace) -> list[Json]:
    activity = _activity(
        ns, "first-network-meeting-within-24h", _deadline_status(episode), kind="Appointment",
        start=deadline.starts_at if deadline else None, end=deadline.due_at if deadline else None,
    )
    if deadline is not None and deadline.met_within is not None:
        activity["outcomeCodeableConcept"] = [deadline_outcome(ns, deadline.met_within)]
    return [activity]


def _deadline_status(episode: Episode) -> str:
    if episode.first_meeting is not None:
        return "completed"
    if episode.is_closed:
        return "stopped" if episode.status == "discharged" else "cancelled"
    if any(m.status == "planned" for m in episode.meetings.values()):
        return "scheduled"
    return "not-started"


def _contact_activity(episode: Episode, _: Deadline | None, ns: Namespace) -> list[Json]:
    contact = episode.first_contact
    if contact is None:
        return []
    return [_activity(ns, "first-contact", "completed", start=contact.contactAt)]


def _meetings_in_order(episode: Episode) -> list[Meeting]:
    # By time, then id: the same meetings give the same order whatever order events came in.
    return sorted(
        episode.meetings.values(),
        key=lambda m: (m.start or m.scheduled_start or m.cancelled_at or _NEVER, m.meeting_id),
    )


def _meeting_activities(episode: Episode, _: Deadline | None, ns: Namespace) -> list[Json]:
    return [
        _activity(
            ns, "network-meeting", _meeting_status(episode, meeting), kind="Appointment",
            start=meeting.start or meeting.scheduled_start, end=meeting.end,
        )
        for meeting in _meetings_in_order(episode)
    ]


def _meeting_status(episode: Episode, meeting: Meeting) -> str:
    if meeting.status == "planned" and episode.is_closed:
        return "cancelled"
    return _MEETING_STATUS[meeting.status]


def _review_activities(episode: Episode, _: Deadline | None, ns: Namespace) -> list[Json]:
    review = episode.last_cpa_review
    if review is None:
        return []
    reviews = [_activity(ns, "cpa-review", "completed", start=review.heldAt)]
    if review.nextReviewDue:
        reviews.append(_activity(ns, "cpa-review", "scheduled", start=review.nextReviewDue))
    return reviews


def _medication_activities(episode: Episode, _: Deadline | None, ns: Namespace) -> list[Json]:
    prescriptions = sorted(episode.prescriptions, key=lambda p: (p.prescribedAt, p.medication.display))
    return [
        _activity(
            ns, "medication", "in-progress", kind="MedicationRequest",
            start=p.prescribedAt,
            product=compact({
                "coding": [{"system": DMD, "code": p.medication.dmdCode}] if p.medication.dmdCode else None,
                "text": p.medication.display,
            }),
        )
        for p in prescriptions
    ]


def _admission_activities(episode: Episode, _: Deadline | None, ns: Namespace) -> list[Json]:
    admissions = sorted(episode.admissions, key=lambda a: a.admitted_at)
    return [
        _activity(
            ns, "inpatient-admission", "completed" if a.ended_at else "in-progress",
            start=a.admitted_at, end=a.ended_at, description=a.ward,
        )
        for a in admissions
    ]


_ACTIVITIES: tuple[Callable[[Episode, Deadline | None, Namespace], list[Json]], ...] = (
    _deadline_activity, _contact_activity, _meeting_activities, _review_activities,
    _medication_activities, _admission_activities,
)
