"""Each deadline of the episode (docs/policies.md) as a UK Core Task, referenced by the CarePlan.

One Task per policy and cycle, with a stable id, so an EPR upserts it as the deadline moves on:
`requested` while open; `completed` once met (its business status says whether by the due time);
`cancelled` if the referral closed before the due time; `failed` if it ended unmet after it.
The due time is `restriction.period.end`; `executionPeriod` runs from the clock's start to the
moment the deadline ended. The Task's focus is the CarePlan and it is `for` the Patient.
"""
from __future__ import annotations

import functools
from datetime import datetime

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
    return [
        _task(referral.referralId, referral.patient.nhsNumber, d.policy, d.cycle, d.audience,
              d.starts_at, d.due_at, d.met_at, d.closed_at, ns)
        for d in deadlines
    ]


def task_reference(deadline: Deadline) -> Json:
    return reference(task_id(deadline.referral_id, deadline.policy, deadline.cycle))


# Cached: every message with the CarePlan carries every deadline's Task again, most of them
# unchanged since the referral's last message. Keyed by the deadline's fields the Task shows
# rather than by the Deadline: each evaluation makes new Deadline objects, and comparing
# pydantic models cost more than building the Task. A returned Task is shared, so never
# changed in place. Sized for the referrals handled together (a batch groups a referral's
# events; a replay runs them in order): with 4,096 Tasks the garbage collector had 60,000 more
# objects to walk on every full collection (measured), for no more hits on handler_bench.
@functools.lru_cache(maxsize=256)
def _task(
    referral_id: str, nhs_number: str, policy: str, cycle: int, audience: str, starts_at: datetime,
    due_at: datetime, met_at: datetime | None, closed_at: datetime | None, ns: Namespace,
) -> Json:
    status, ending = _status(due_at, met_at, closed_at)
    return compact({
        "resourceType": "Task",
        "id": task_id(referral_id, policy, cycle),
        "meta": meta(PROFILE_TASK),
        "status": status,
        "businessStatus": deadline_ending(ns, ending) if ending else None,
        "intent": "plan",
        # On-call deadlines page someone when missed; team deadlines are worked in hours.
        "priority": "urgent" if audience == "on-call" else "routine",
        "code": deadline_policy(ns, policy),
        "focus": reference(care_plan_id(referral_id)),
        "for": reference(patient_id(nhs_number)),
        "authoredOn": utc_text(starts_at),
        "executionPeriod": period(starts_at, met_at or closed_at),
        "restriction": {"period": {"end": utc_text(due_at)}},
    })


def _status(due_at: datetime, met_at: datetime | None, closed_at: datetime | None) -> tuple[str, str | None]:
    if met_at is not None:
        return "completed", "met-within-deadline" if met_at <= due_at else "met-after-deadline"
    if closed_at is not None:
        return ("failed", "missed") if closed_at > due_at else ("cancelled", "cancelled")
    return "requested", None
