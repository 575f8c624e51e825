"""Deadlines in the FHIR messages: a Task per policy and cycle, referenced by the CarePlan."""
from __future__ import annotations

from typing import Any

import pytest

from podlink.fhir_mappings.elements import full_url
from podlink.streams.core.episode import Policy
from tests.support.episodes import policy_from, run
from tests.unit.core.test_rules import ev, received

DEADLINE_POLICY = "https://podlink.example.org/fhir/CodeSystem/pod-deadline-policy"


def _last_message(events: list[dict[str, Any]], policy: Policy = Policy()) -> dict[str, Any]:
    return run(events, policy)[-1].fhir_messages[-1]


def _resources(message: dict[str, Any], kind: str) -> list[dict[str, Any]]:
    return [e["resource"] for e in message["entry"] if e["resource"]["resourceType"] == kind]


def _task(message: dict[str, Any], policy: str) -> dict[str, Any]:
    found = [t for t in _resources(message, "Task") if t["code"].get("coding", [{}])[0].get("code") == policy
             or t["code"].get("text") == policy]
    assert len(found) == 1, [t["code"] for t in _resources(message, "Task")]
    return found[0]


def _status(task: dict[str, Any]) -> tuple[str, str | None]:
    business = task.get("businessStatus", {}).get("coding", [{}])[0].get("code")
    return task["status"], business


def test_an_open_deadline_is_a_requested_task_due_at_its_restriction_end():
    message = _last_message([received("2026-06-01T09:00:00Z")])
    task = _task(message, "first-meeting")
    assert _status(task) == ("requested", None) and task["intent"] == "plan" and task["priority"] == "urgent"
    assert task["restriction"] == {"period": {"end": "2026-06-02T09:00:00Z"}}
    assert task["executionPeriod"] == {"start": "2026-06-01T09:00:00Z"}
    assert task["code"]["coding"][0]["system"] == DEADLINE_POLICY
    plan, = _resources(message, "CarePlan")
    patient, = _resources(message, "Patient")
    assert task["focus"]["reference"] == full_url(plan["id"]) and task["for"]["reference"] == full_url(patient["id"])
    assert {"reference": full_url(task["id"])} in [a.get("reference") for a in plan["activity"]]


@pytest.mark.parametrize("held, expected", [
    ("2026-06-02T09:00:00Z", ("completed", "met-within-deadline")),  # exactly at the due time
    ("2026-06-02T09:00:01Z", ("completed", "met-after-deadline")),
])
def test_a_met_deadline_is_completed_with_whether_it_was_on_time(held, expected):
    meeting = ev("meeting-held", start=held, end="2026-06-02T11:00:00Z")
    task = _task(_last_message([received("2026-06-01T09:00:00Z"), meeting]), "first-meeting")
    assert _status(task) == expected
    assert task["executionPeriod"] == {"start": "2026-06-01T09:00:00Z", "end": held.replace("+00:00", "Z")}


@pytest.mark.parametrize("withdrawn, expected", [
    ("2026-06-01T20:00:00Z", ("cancelled", "cancelled")),
    ("2026-06-02T20:00:00Z", ("failed", "missed")),  # after the due time, never met
])
def test_a_referral_closed_before_or_after_the_due_time_cancels_or_fails_the_task(withdrawn, expected):
    closing = ev("referral-withdrawn", withdrawnAt=withdrawn)
    assert _status(_task(_last_message([received("2026-06-01T09:00:00Z"), closing]), "first-meeting")) == expected


def test_each_cycle_of_a_repeating_policy_is_its_own_task_with_a_stable_id():
    events = [received(cpaRequired=True), ev("cpa-coordinator-assigned", assignedAt="2026-06-05T10:00:00Z"),
              ev("cpa-review-held", heldAt="2027-05-01T10:00:00Z", nextReviewDue=None)]
    first = run(events[:2])[-1].fhir_messages[-1]
    message = _last_message(events)
    reviews = [t for t in _resources(message, "Task") if t["code"]["coding"][0]["code"] == "cpa-review"]
    assert [_status(t) for t in reviews] == [("completed", "met-within-deadline"), ("requested", None)]
    assert reviews[0]["id"] == _task(first, "cpa-review")["id"] != reviews[1]["id"]


def test_a_trusts_own_policy_travels_as_text():
    text = """policies:
  family-call:
    starts: {event: referral.received}
    met_by: contact.made
    due: 2h
    audience: team
    severity: info
"""
    task = _task(_last_message([received()], policy_from(text)), "family-call")
    assert task["code"] == {"text": "family-call"} and task["priority"] == "routine"
