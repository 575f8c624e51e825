"""Each shipped policy and flag, with event times as the clock: what falls due when, and what meets it.

Expected times are worked out by hand from the default policy file (podlink/streams/core/
default_policies.yaml) and the event times given here.
"""
from __future__ import annotations

import copy
import itertools
from datetime import datetime, timezone
from typing import Any

import pytest

from podlink.streams.core.deadlines import Deadline
from podlink.streams.core.episode import Episode, Policy
from podlink.streams.core.pathway import evaluation
from podlink.streams.core.rules import Evaluation, HookInput, RaiseFlag, Rule, reacts_to
from tests.support.contract_examples import example
from tests.support.episodes import feed, run

REF = "REF-2026-000123"  # the contract examples' referral
_ids = itertools.count()


def at(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(timezone.utc)


def ev(name: str, **data: Any) -> dict[str, Any]:
    """The contract's example event `name` with a fresh id and `data` changed (None: left out)."""
    value = copy.deepcopy(example(name))
    value["id"] = f"{value['id']}-{next(_ids)}"
    value["data"] = {k: v for k, v in (value["data"] | data).items() if v is not None}
    return value


def received(when: str = "2026-06-01T09:00:00Z", **data: Any) -> dict[str, Any]:
    return ev("referral-received", receivedAt=when, **{"urgency": "urgent", "riskLevel": "medium",
                                                        "cpaRequired": False} | data)


def deadlines_of(events: list[dict[str, Any]], policy: Policy = Policy()) -> Evaluation:
    episode, _ = feed(events, policy)
    return evaluation(episode, policy)


def only(evaluated: Evaluation, policy: str) -> list[Deadline]:
    return [d for d in evaluated.deadlines if d.policy == policy]


def test_first_contact_applies_to_emergency_and_very_urgent_referrals_only():
    for urgency, expected in [("emergency", 1), ("very_urgent", 1), ("urgent", 0), ("routine", 0)]:
        found = only(deadlines_of([received(urgency=urgency)]), "first-contact")
        assert len(found) == expected, urgency
    d, = only(deadlines_of([received(urgency="emergency")]), "first-contact")
    assert (d.due_at, d.at_risk_from) == (at("2026-06-01T13:00:00Z"), at("2026-06-01T12:00:00Z"))


@pytest.mark.parametrize("contact, met_within", [("2026-06-01T13:00:00Z", True), ("2026-06-01T13:00:01Z", False)])
def test_first_contact_exactly_at_the_due_time_is_within_it(contact, met_within):
    d, = only(deadlines_of([received(urgency="emergency"), ev("contact-made", contactAt=contact)]), "first-contact")
    assert d.met_at == at(contact) and d.met_within is met_within


def test_risk_assessment_is_due_24_hours_after_acceptance():
    d, = only(deadlines_of([received(), ev("referral-accepted", acceptedAt="2026-06-01T10:00:00Z")]),
              "risk-assessment")
    assert d.due_at == at("2026-06-02T10:00:00Z") and d.audience == "team" and d.is_open


def test_risk_review_is_due_at_review_due_or_by_level():
    assessed = "2026-06-02T10:00:00Z"
    given = only(deadlines_of([received(), ev("risk-assessed", assessedAt=assessed, level="low",
                                                reviewDue="2026-06-20T10:00:00Z")]), "risk-review")
    assert given[0].due_at == at("2026-06-20T10:00:00Z")
    for level, due in [("high", "2026-06-09T10:00:00Z"), ("medium", "2026-06-30T10:00:00Z"),
                       ("low", "2026-08-31T10:00:00Z")]:
        d, = only(deadlines_of([received(), ev("risk-assessed", assessedAt=assessed, level=level,
                                                reviewDue=None)]), "risk-review")
        assert d.due_at == at(due), level


def test_the_next_risk_assessment_meets_the_review_and_starts_the_next():
    first, second = only(deadlines_of([
        received(),
        ev("risk-assessed", assessedAt="2026-06-02T10:00:00Z", level="high", reviewDue=None),
        ev("risk-assessed", assessedAt="2026-06-08T10:00:00Z", level="low", reviewDue=None),
    ]), "risk-review")
    assert (first.cycle, first.met_at, first.met_within) == (0, at("2026-06-08T10:00:00Z"), True)
    assert (second.cycle, second.due_at, second.is_open) == (1, at("2026-09-06T10:00:00Z"), True)


def test_an_admission_brings_the_risk_review_forward_to_72_hours():
    d, = only(deadlines_of([
        received(),
        ev("risk-assessed", assessedAt="2026-06-02T10:00:00Z", level="low", reviewDue=None),
        ev("admission-started", admittedAt="2026-06-10T12:00:00Z"),
    ]), "risk-review")
    assert d.due_at == at("2026-06-13T12:00:00Z") and d.at_risk_from == at("2026-06-12T12:00:00Z")


def test_an_old_medication_does_not_bring_the_review_forward_but_a_new_one_does():
    events = [received(), ev("risk-assessed", assessedAt="2026-06-02T10:00:00Z", level="low", reviewDue=None)]
    repeat = ev("medication-prescribed", prescribedAt="2026-06-10T12:00:00Z", isNew=False)
    new = ev("medication-prescribed", prescribedAt="2026-06-10T12:00:00Z", isNew=True)
    assert only(deadlines_of(events + [repeat]), "risk-review")[0].due_at == at("2026-08-31T10:00:00Z")
    assert only(deadlines_of(events + [new]), "risk-review")[0].due_at == at("2026-06-13T12:00:00Z")


@pytest.mark.parametrize("assigned_on_day, met_within", [(5, True), (8, False)])
def test_cpa_coordinator_is_due_7_days_after_acceptance_for_cpa_referrals(assigned_on_day, met_within):
    events = [received(cpaRequired=True), ev("referral-accepted", acceptedAt="2026-06-01T10:00:00Z"),
              ev("cpa-coordinator-assigned", assignedAt=f"2026-06-{1 + assigned_on_day:02d}T10:00:00Z")]
    d, = only(deadlines_of(events), "cpa-coordinator")
    assert d.due_at == at("2026-06-08T10:00:00Z") and d.met_within is met_within
    assert only(deadlines_of([received(cpaRequired=False), events[1]]), "cpa-coordinator") == []


def test_cpa_review_repeats_after_each_review_12_months_or_at_next_review_due():
    reviews = only(deadlines_of([
        received(cpaRequired=True),
        ev("cpa-coordinator-assigned", assignedAt="2026-06-05T10:00:00Z"),
        ev("cpa-review-held", heldAt="2027-05-01T10:00:00Z", nextReviewDue=None),
        ev("cpa-review-held", heldAt="2027-11-01T10:00:00Z", nextReviewDue="2028-02-01T10:00:00Z"),
    ]), "cpa-review")
    assert [(d.cycle, d.due_at, d.met_at) for d in reviews] == [
        (0, at("2027-06-05T10:00:00Z"), at("2027-05-01T10:00:00Z")),  # 12 months on: 11:00 BST both
        (1, at("2028-05-01T10:00:00Z"), at("2027-11-01T10:00:00Z")),
        (2, at("2028-02-01T10:00:00Z"), None),
    ]


def test_calendar_days_keep_the_london_time_across_the_clock_change_and_hours_do_not():
    # Accepted Friday 27 March 2026 09:00 GMT; the clocks go forward on Sunday 29 March.
    events = [received("2026-03-27T08:00:00Z", cpaRequired=True),
              ev("referral-accepted", acceptedAt="2026-03-27T09:00:00Z")]
    evaluated = deadlines_of(events)
    assert only(evaluated, "cpa-coordinator")[0].due_at == at("2026-04-03T08:00:00Z")  # 09:00 BST
    assert only(evaluated, "risk-assessment")[0].due_at == at("2026-03-28T09:00:00Z")  # 24 elapsed hours


@pytest.mark.parametrize("contact_after_hours, met_within", [(70, True), (73, False)])
def test_post_discharge_follow_up_is_met_by_contact_within_72_hours(contact_after_hours, met_within):
    ended = at("2026-06-10T12:00:00Z")
    contact = ended.timestamp() + contact_after_hours * 3600
    events = [received(), ev("admission-ended", endedAt="2026-06-10T12:00:00Z"),
              ev("contact-made", contactAt=datetime.fromtimestamp(contact, timezone.utc).isoformat())]
    d, = only(deadlines_of(events), "post-discharge-follow-up")
    assert d.due_at == at("2026-06-13T12:00:00Z") and d.met_within is met_within


def test_a_contact_before_the_ward_discharge_does_not_meet_the_follow_up():
    events = [received(), ev("contact-made", contactAt="2026-06-09T12:00:00Z"),
              ev("admission-ended", endedAt="2026-06-10T12:00:00Z")]
    assert only(deadlines_of(events), "post-discharge-follow-up")[0].is_open


def test_discharge_from_pod_cancels_every_policy_but_the_post_discharge_follow_up():
    events = [received(urgency="emergency", cpaRequired=True),
              ev("referral-accepted", acceptedAt="2026-06-01T10:00:00Z"),
              ev("admission-ended", endedAt="2026-06-02T12:00:00Z"),
              ev("episode-discharged", dischargedAt="2026-06-02T13:00:00Z")]
    evaluated = deadlines_of(events)
    still_open = {d.policy for d in evaluated.deadlines if d.is_open}
    assert still_open == {"post-discharge-follow-up"}
    cancelled = {d.policy: d.closed_at for d in evaluated.deadlines if d.closed_at}
    # The ward discharge opened a risk review due within 72 hours; the POD discharge cancels it.
    assert cancelled == dict.fromkeys(["cpa-coordinator", "first-contact", "first-meeting", "risk-assessment",
                                       "risk-review"], at("2026-06-02T13:00:00Z"))


def test_events_read_out_of_order_give_the_deadlines_of_the_order_they_happened_in():
    events = [received(), ev("risk-assessed", assessedAt="2026-06-02T10:00:00Z", level="high", reviewDue=None),
              ev("risk-assessed", assessedAt="2026-06-08T10:00:00Z", level="low", reviewDue=None)]
    in_order = only(deadlines_of(events), "risk-review")
    reversed_ = only(deadlines_of([events[0], events[2], events[1]]), "risk-review")
    assert in_order == reversed_


def test_a_duplicate_event_changes_nothing():
    events = [received(), ev("risk-assessed", assessedAt="2026-06-02T10:00:00Z", level="high", reviewDue=None)]
    assert deadlines_of(events + [events[1]]) == deadlines_of(events)


def _flags(events: list[dict[str, Any]]) -> list[tuple[str, str]]:
    return [(f.rule, f.audience) for f in deadlines_of(events).flags]


def test_a_high_risk_referral_is_flagged_to_on_call_at_once():
    assert _flags([received(riskLevel="high")]) == [("high-risk-referral", "on-call")]
    assert _flags([received(riskLevel="medium")]) == []


def _meetings(n: int) -> list[dict[str, Any]]:
    return [ev("meeting-held", meetingId=f"MTG-{i}", start=f"2026-06-0{i + 1}T10:00:00Z",
               end=f"2026-06-0{i + 1}T11:00:00Z") for i in range(1, n + 1)]


@pytest.mark.parametrize("meetings_before, new, override, flagged", [
    (2, True, False, True), (3, True, False, False), (4, True, False, False),
    (2, False, False, False), (2, True, True, False), (0, True, None, True),
])
def test_new_medication_before_three_meetings_flags_the_team(meetings_before, new, override, flagged):
    medication = ev("medication-prescribed", prescribedAt="2026-06-09T12:00:00Z", isNew=new,
                    urgentSafetyOverride=override)
    found = _flags([received(), *_meetings(meetings_before), medication])
    assert found == ([("medication-before-three-meetings", "team")] if flagged else [])


def test_meetings_read_after_the_prescription_but_held_before_it_count():
    medication = ev("medication-prescribed", prescribedAt="2026-06-09T12:00:00Z", isNew=True)
    assert _flags([received(), medication, *_meetings(3)]) == []


def test_outcome_events_say_met_and_missed_with_minutes_early_or_late():
    results = run([received(cpaRequired=True), ev("referral-accepted", acceptedAt="2026-06-01T10:00:00Z"),
                   ev("cpa-coordinator-assigned", assignedAt="2026-06-09T10:00:00Z")])
    outcomes = [o for r in results for o in r.outcomes if o["type"].startswith("uk.nhs.podlink.deadline.")]
    missed, = outcomes
    assert missed["type"] == "uk.nhs.podlink.deadline.missed"
    assert (missed["data"]["policy"], missed["data"]["minutesLate"]) == ("cpa-coordinator", 24 * 60)
    assert missed["data"]["dueAt"] == "2026-06-08T10:00:00Z" and missed["data"]["metAt"] == "2026-06-09T10:00:00Z"


def test_a_rule_that_raises_is_isolated_and_named():
    def broken(given: HookInput) -> list[RaiseFlag]:
        raise ZeroDivisionError("a message that might quote patient data")

    episode, _ = feed([received(riskLevel="high")])
    policy = Policy(rules=(Rule("trust-rule", broken), *Policy().rules))
    evaluated = evaluation(episode, policy)
    assert [(f.rule, f.error) for f in evaluated.failures] == [("trust-rule", "ZeroDivisionError")]
    assert [f.rule for f in evaluated.flags] == ["high-risk-referral"]  # the others still ran
    assert only(evaluated, "first-meeting")[0].is_open


def test_a_hook_that_declares_its_types_is_asked_about_those_occurrences_only():
    asked: dict[str, list[str]] = {"declared": [], "undeclared": []}

    @reacts_to("meeting.held")
    def declared(given: HookInput) -> list[RaiseFlag]:
        asked["declared"].append(given.occurrence.type)
        return [RaiseFlag("declared", "team", "info", given.now, given.occurrence.key)]

    def undeclared(given: HookInput) -> list[RaiseFlag]:
        asked["undeclared"].append(given.occurrence.type)
        return []

    episode, _ = feed([received(), *_meetings(2)])
    policy = Policy(rules=(Rule("declared", declared), Rule("undeclared", undeclared)))
    evaluated = evaluation(episode, policy)
    assert asked == {"declared": ["meeting.held", "meeting.held"],
                     "undeclared": ["referral.received", "meeting.held", "meeting.held"]}
    assert len(evaluated.flags) == 2  # one per meeting, as if asked about everything


def test_an_episode_stored_before_timelines_keeps_its_deadlines():
    episode, _ = feed([received(cpaRequired=True), ev("referral-accepted", acceptedAt="2026-06-01T10:00:00Z")])
    stored = episode.model_dump(mode="json")
    del stored["timeline"]
    loaded = Episode.model_validate(stored)
    assert evaluation(loaded, Policy()).deadlines == evaluation(episode, Policy()).deadlines
