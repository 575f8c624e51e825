from datetime import datetime, timezone

import pytest

from podlink.streams.core.alerts import alert_event
from podlink.streams.core.deadlines import alert_due_at, due_alerts
from podlink.streams.core.pathway import first_meeting_deadline
from podlink.streams.core.episode import Policy
from tests.support.contract_examples import example
from tests.support.episodes import FIRST_CONTACT_START, policy_from, T0, feed, hours, records


def _deadline(scenario="breached", policy=Policy(), upto=None):
    episode, _ = feed(records(scenario)[:upto], policy)
    return first_meeting_deadline(episode, policy)


def test_the_deadline_is_24_hours_after_the_referral_was_received():
    d = _deadline()
    assert d.starts_at == T0 and d.due_at == T0 + hours(24) and d.at_risk_from == T0 + hours(18)


def test_across_the_clock_change_the_deadline_is_24_elapsed_hours():
    # 28 March 2026 23:40 UTC (GMT); the clocks go forward at 01:00 UTC on 29 March.
    episode, _ = feed([example("referral-received")])
    d = first_meeting_deadline(episode, Policy())
    assert d.due_at == datetime(2026, 3, 29, 23, 40, tzinfo=timezone.utc)
    assert (d.due_at - d.starts_at).total_seconds() == 24 * 3600
    event = alert_event(d, "breached", d.due_at)
    assert event["data"]["deadlineLocal"] == "2026-03-30T00:40:00+01:00"  # BST
    assert event["data"]["deadline"] == "2026-03-29T23:40:00Z"


def test_a_policy_can_start_the_deadline_at_first_contact():
    policy = policy_from(FIRST_CONTACT_START)
    assert _deadline(policy=policy, upto=2) is None
    assert _deadline(policy=policy).starts_at == T0 + hours(1)


def test_the_first_meeting_held_meets_the_deadline():
    d = _deadline("on-time")
    assert d.met_at == T0 + hours(15) and d.met_within is True and not d.is_open


def test_a_meeting_after_the_deadline_meets_it_late():
    d = _deadline("met-late")
    assert d.met_at == T0 + hours(27) and d.met_within is False


@pytest.mark.parametrize("scenario", ["rejected", "withdrawn"])
def test_a_closed_referral_cancels_the_deadline(scenario):
    d = _deadline(scenario)
    assert d.closed_at is not None and not d.is_open


def test_met_and_closed_moments_are_kept_in_utc(host_in_new_york):
    assert _deadline("on-time").model_dump(mode="json")["met_at"] == "2026-06-02T00:00:00Z"
    assert _deadline("withdrawn").model_dump(mode="json")["closed_at"] == "2026-06-01T11:00:00Z"


@pytest.mark.parametrize("now, raised, expected", [
    (hours(17), set(), []),
    (hours(18), set(), ["at-risk"]),
    (hours(20), {"at-risk"}, []),
    (hours(20), {"breached"}, []),            # no at-risk page after a breach page
    (hours(24), {"at-risk"}, ["breached"]),
    (hours(30), set(), ["breached"]),          # backdated: straight to breach, no at-risk
    (hours(31), {"breached"}, []),
])
def test_alerts_for_an_open_deadline(now, raised, expected):
    assert due_alerts(_deadline(), frozenset(raised), T0 + now) == expected


def test_each_alert_is_due_from_its_own_moment():
    d = _deadline("met-late")
    assert alert_due_at(d, "at-risk") == T0 + hours(18)
    assert alert_due_at(d, "breached") == T0 + hours(24)
    assert alert_due_at(d, "resolved") == T0 + hours(27)  # the late meeting
    assert alert_due_at(_deadline("withdrawn"), "resolved") == T0 + hours(2)  # the withdrawal


def test_a_late_meeting_resolves_a_breach_that_was_raised():
    d = _deadline("met-late")
    assert due_alerts(d, frozenset({"breached"}), T0 + hours(40)) == ["resolved"]
    assert due_alerts(d, frozenset({"breached", "resolved"}), T0 + hours(40)) == []


def test_a_deadline_missed_and_met_before_anyone_was_paged_pages_no_one():
    assert due_alerts(_deadline("met-late"), frozenset(), T0 + hours(40)) == []


def test_a_withdrawal_after_a_breach_resolves_it():
    d = _deadline("withdrawn")
    assert due_alerts(d, frozenset({"breached"}), T0 + hours(40)) == ["resolved"]


def test_an_alert_is_a_cloudevent_with_a_deterministic_id():
    d = _deadline()
    first = alert_event(d, "breached", T0 + hours(25))
    again = alert_event(d, "breached", T0 + hours(26))
    assert first["id"] == again["id"]
    other = d.model_copy(update={"referral_id": "REF-T-2"})
    assert alert_event(other, "breached", T0 + hours(25))["id"] != first["id"]
    assert first["id"] != alert_event(d, "at-risk", T0 + hours(19))["id"]
    assert first["type"] == "uk.nhs.podlink.sla.breached" and first["subject"] == "REF-T-1"
    assert first["specversion"] == "1.0" and first["data"]["policy"] == "first-meeting"
    assert first["data"]["referralId"] == "REF-T-1"
    assert first["data"]["minutesPastDeadline"] == 60


def test_met_within_counts_a_meeting_exactly_at_the_due_time_and_not_a_second_later():
    d = _deadline()
    assert d.met_within is None
    assert d.model_copy(update={"met_at": d.due_at}).met_within is True
    assert d.model_copy(update={"met_at": d.due_at + hours(1 / 3600)}).met_within is False


def test_across_the_autumn_clock_change_the_deadline_is_24_elapsed_hours(host_in_new_york):
    # Received 12:00 BST (11:00 UTC) on Saturday 24 October 2026; the clocks go back at
    # 01:00 UTC on the 25th. 24 elapsed hours later is 11:00 UTC, which is 11:00 GMT: 23 hours
    # on the wall clock, not the 12:00 a local-time sum would give.
    referral = example("referral-received")
    referral["time"] = referral["data"]["receivedAt"] = "2026-10-24T12:00:00+01:00"
    episode, _ = feed([referral])
    d = first_meeting_deadline(episode, Policy())
    assert d.starts_at == datetime(2026, 10, 24, 11, 0, tzinfo=timezone.utc)
    assert d.due_at == datetime(2026, 10, 25, 11, 0, tzinfo=timezone.utc)
    assert d.at_risk_from == datetime(2026, 10, 25, 5, 0, tzinfo=timezone.utc)
    stored = d.model_dump(mode="json")  # as the worker stores it: in UTC, whatever the host's zone
    assert (stored["starts_at"], stored["due_at"]) == ("2026-10-24T11:00:00Z", "2026-10-25T11:00:00Z")
    breached = alert_event(d, "breached", d.due_at)["data"]
    assert breached["deadline"] == "2026-10-25T11:00:00Z"
    assert breached["deadlineLocal"] == "2026-10-25T11:00:00+00:00"  # GMT
    assert breached["deadlineStart"] == "2026-10-24T11:00:00Z"
    at_risk = alert_event(d, "at-risk", d.at_risk_from)["data"]
    assert at_risk["deadlineLocal"] == "2026-10-25T11:00:00+00:00" and at_risk["minutesPastDeadline"] == -360


@pytest.mark.parametrize("kind, severity", [("at-risk", "warning"), ("breached", "critical"), ("resolved", "info")])
def test_every_alert_names_its_audience_severity_and_due_time_in_utc_and_london(kind, severity):
    d = _deadline()  # received 1 June 2026 09:00 UTC: due 2 June 09:00 UTC, 10:00 BST
    data = alert_event(d, kind, T0 + hours(30))["data"]
    assert (data["audience"], data["severity"]) == ("on-call", severity)
    assert data["dueAt"] == "2026-06-02T09:00:00Z" and data["dueAtLocal"] == "2026-06-02T10:00:00+01:00"
