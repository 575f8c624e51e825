"""Each deadline of the episode (docs/policies.md) as a UK Core Task, referenced by the CarePlan.

One Task per policy and cycle, with a stable id, so an EPR upserts it as the deadline moves on:
`requested` while open; `completed` once met (its business status says whether by the due time);
`cancelled` if the referral closed before the due time; `failed` if it ended unmet after it.
The due time is `restriction.period.end`; `executionPeriod` runs from the clock's start to the
moment the deadline ended. The Task's focus is the CarePlan and it is `for` the Patient.
"""
from __future__ import annotations

from podlink.fhir_mappings.elements import Json, compact, meta, period, reference
from podlink.fhir_mappings.resource_ids import care_plan_id, patient_id, task_id
from podlink.fhir_mappings.systems import PROFILE_TASK, Namespace
from podlink.fhir_mappings.terminology import deadline_ending, deadline_policy
from podlink.streams.core.deadlines import Deadline
from podlink.streams.core.encoding import utc_text
from podlink.streams.core.episode import Episode


def deadline_tasks(episode: Episode, deadlines: tuple[Deadline, ...], ns: Namespace) -> list[Json]:
    if episode.referral is None:
        return []
    referral = episode.referral
    return [_task(d, referral.referralId, referral.patient.nhsNumber, ns) for d in deadlines]


def task_reference(deadline: Deadline) -> Json:
    return reference(task_id(deadline.referral_id, deadline.policy, deadline.cycle))


def _task(d: Deadline, referral_id: str, nhs_number: str, ns: Namespace) -> Json:
    status, ending = _status(d)
    return compact({
        "resourceType": "Task",
        "id": task_id(referral_id, d.policy, d.cycle),
        "meta": meta(PROFILE_TASK),
        "status": status,
        "businessStatus": deadline_ending(ns, ending) if ending else None,
        "intent": "plan",
        # On-call deadlines page someone when missed; team deadlines are worked in hours.
        "priority": "urgent" if d.audience == "on-call" else "routine",
        "code": deadline_policy(ns, d.policy),
        "focus": reference(care_plan_id(referral_id)),
        "for": reference(patient_id(nhs_number)),
        "authoredOn": utc_text(d.starts_at),
        "executionPeriod": period(d.starts_at, d.ended_at),
        "restriction": {"period": {"end": utc_text(d.due_at)}},
    })


def _status(d: Deadline) -> tuple[str, str | None]:
    if d.met_at is not None:
        return "completed", "met-within-deadline" if d.met_at <= d.due_at else "met-after-deadline"
    if d.closed_at is not None:
        return ("failed", "missed") if d.closed_at > d.due_at else ("cancelled", "cancelled")
    return "requested", None
