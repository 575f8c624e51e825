"""The report's figures from small sets of outcome events, each worked out by hand."""
from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from podlink.services.report.collect import Scope
from podlink.services.report.events import parse
from podlink.services.report.figures import build_report
from tests.unit.services.report.outcome_events import (
    T0,
    accepted,
    at,
    closed,
    contact_first,
    deadline_met,
    deadline_missed,
    discharged,
    flagged,
    measure,
    medication,
    meeting_first,
    meeting_held,
    registered,
)


def report(*events: dict[str, Any] | bytes, scope: Scope = Scope()) -> dict[str, Any]:
    return build_report((parse(e if isinstance(e, bytes) else json.dumps(e)) for e in events), scope)


def test_the_attendance_table_counts_meetings_per_category_parents_by_how_many_came():
    ref = "REF-A"
    r = report(
        registered(ref),
        meeting_held(ref, "M1", network={"parent": 1}),                       # one parent
        meeting_held(ref, "M2", network={"parent": 2}),                       # both parents
        meeting_held(ref, "M3", network={"friend": 2, "sibling": 1}),         # friends and siblings
        meeting_held(ref, "M4"),                                              # service user and staff
        meeting_held(ref, "M5", network={"child": 1, "other_relative": 1, "spouse_or_partner": 1}),
        meeting_held(ref, "M6", network={"neighbour": 1, "carer": 1}),        # others, once
        meeting_held(ref, "M7", service_user=0),                              # staff only: neither
        meeting_held(ref, "M8", network={"friend": 1, "parent": 1}),          # friends, one parent
        meeting_held(ref, "M9", network={"parent": 3}),                       # three parents: both
    )
    assert (r["meetings"], r["withNetwork"], r["serviceUserOnly"]) == (9, 7, 1)
    assert r["byRelationship"] == {"spouse_or_partner": 1, "one_parent": 2, "both_parents": 2,
                                   "friends": 2, "children_or_other_relatives": 1, "siblings": 1,
                                   "others": 1}


def test_staff_by_role_counts_meetings_and_those_with_a_peer_support_worker():
    ref = "REF-A"
    r = report(registered(ref),
               meeting_held(ref, "M1", staff={"nurse": 2, "peer_support_worker": 1}),
               meeting_held(ref, "M2", staff={"nurse": 1}),
               meeting_held(ref, "M3", staff={"psychiatrist": 1, "peer_support_worker": 2}))
    assert r["staffByRole"] == {"nurse": 2, "peer_support_worker": 2, "psychiatrist": 1}
    assert r["withPeerSupportWorker"] == 2


def test_a_replayed_referral_counts_each_fact_once():
    ref = "REF-A"
    events = [registered(ref), accepted(ref),
              meeting_held(ref, "M1", network={"spouse_or_partner": 1}, adherence=3.5),
              meeting_held(ref, "M2", adherence=3.9), measure(ref, "SWEMWBS", "baseline", 17, metric=16.88)]
    r = report(*events, *events)  # a worker replaying after a crash sends every event again
    assert (r["referrals"]["registered"], r["referrals"]["accepted"]) == (1, 1)
    assert (r["meetings"], r["withNetwork"], r["byRelationship"]["spouse_or_partner"]) == (2, 1, 1)
    assert r["adherence"] == {"n": 2, "mean": 3.7, "sd": 0.28}  # sd: sqrt(0.08) = 0.2828
    assert r["measures"]["SWEMWBS"]["baseline"]["n"] == 1
    assert (r["eventsRead"], r["duplicates"]) == (10, 5)


def test_a_deadline_missed_then_met_late_is_published_twice_with_one_id_and_counted_once():
    ref = "REF-A"
    r = report(registered(ref),
               deadline_missed(ref, "first-meeting", minutes_late=0),
               deadline_missed(ref, "first-meeting", met_at=at(27), minutes_late=180),
               deadline_met("REF-A", "risk-assessment"))
    assert r["governance"]["first-meeting"] == {"met": 0, "missed": 1, "metPct": 0.0}
    assert r["duplicates"] == 1


def test_governance_per_policy_in_the_policies_order_and_flags_by_rule():
    refs = ["REF-1", "REF-2", "REF-3", "REF-4"]
    r = report(*[registered(ref) for ref in refs],
               deadline_met("REF-1", "first-meeting"), deadline_met("REF-2", "first-meeting"),
               deadline_met("REF-3", "first-meeting"), deadline_missed("REF-4", "first-meeting"),
               deadline_missed("REF-1", "cpa-review"), deadline_met("REF-1", "first-contact"),
               flagged("REF-1", "high-risk-referral"), flagged("REF-2", "high-risk-referral"),
               flagged("REF-2", "medication-before-three-meetings"))
    assert list(r["governance"]) == ["first-meeting", "first-contact", "cpa-review"]
    assert r["governance"]["first-meeting"] == {"met": 3, "missed": 1, "metPct": 75.0}
    assert r["governance"]["cpa-review"] == {"met": 0, "missed": 1, "metPct": 0.0}
    assert r["governance"]["first-contact"] == {"met": 1, "missed": 0, "metPct": 100.0}
    assert r["governanceFlags"] == {"high-risk-referral": 2, "medication-before-three-meetings": 1}


def test_outcome_measures_per_instrument_and_timepoint_with_the_paired_change():
    r = report(
        registered("REF-A"), registered("REF-B"), registered("REF-C"),
        measure("REF-A", "SWEMWBS", "baseline", 17, metric=16.88),
        measure("REF-B", "SWEMWBS", "baseline", 20, metric=18.59),
        measure("REF-C", "SWEMWBS", "baseline", 26, metric=23.21),
        measure("REF-A", "SWEMWBS", "3_months", 25, hours=2000, metric=22.35),
        measure("REF-A", "HONOS", "baseline", 14, respondent="clinician"),
        measure("REF-B", "CMHS", "6_months", 7.5, hours=4000),
        # Two carers of one person, at baseline and at six months.
        measure("REF-B", "CWS", "baseline", 30, respondent="carer", person="NET-1"),
        measure("REF-B", "CWS", "baseline", 36, respondent="carer", person="NET-2"),
        measure("REF-B", "CWS", "6_months", 40, hours=4000, respondent="carer", person="NET-1"),
        measure("REF-B", "CWS", "6_months", 44, hours=4000, respondent="carer", person="NET-2"),
    )
    m = r["measures"]
    # Raw 17, 20, 26: mean 21; squared deviations 16 + 1 + 25 = 42, / 2 = 21, sd 4.58.
    # Metric 16.88, 18.59, 23.21: mean 19.56; squared deviations 7.1824 + 0.9409 + 13.3225 = 21.4458,
    # / 2 = 10.7229, sd 3.27.
    assert m["SWEMWBS"]["baseline"] == {"n": 3, "mean": 21.0, "sd": 4.58, "metric": {"n": 3, "mean": 19.56, "sd": 3.27}}
    # One record: its mean, no sd; REF-A from 17 to 25 is a change of 8.
    assert m["SWEMWBS"]["3_months"] == {"n": 1, "mean": 25.0, "sd": None,
                                        "metric": {"n": 1, "mean": 22.35, "sd": None},
                                        "changeFromBaseline": {"n": 1, "mean": 8.0, "sd": None}}
    assert m["HONOS"] == {"baseline": {"n": 1, "mean": 14.0, "sd": None}}  # no later timepoints: absent
    assert m["CMHS"] == {"6_months": {"n": 1, "mean": 7.5, "sd": None}}  # scored by its mean
    # CWS: each carer's record counts at its timepoint; the change pairs the person, mean 33 to 42.
    assert m["CWS"]["baseline"] == {"n": 2, "mean": 33.0, "sd": 4.24}
    assert m["CWS"]["6_months"]["changeFromBaseline"] == {"n": 1, "mean": 9.0, "sd": None}
    assert list(m) == ["SWEMWBS", "HONOS", "CWS", "CMHS"]  # WSAS: no records, absent


def test_the_first_meeting_within_the_deadline_and_its_spread_in_minutes():
    refs = ["REF-1", "REF-2", "REF-3", "REF-4"]
    r = report(*[registered(ref) for ref in refs],
               meeting_first("REF-1", 30, True), meeting_first("REF-2", 600, True),
               meeting_first("REF-3", 900, True), meeting_first("REF-4", 1500, False))
    first = r["firstMeeting"]
    assert (first["n"], first["withinDeadline"], first["withinDeadlinePct"]) == (4, 3, 75.0)
    # Sorted 30, 600, 900, 1500: q1 at position 0.75 (30 + 0.75 * 570), median at 1.5, q3 at
    # 2.25 (900 + 0.25 * 600).
    assert first["minutesFromStart"] == {"median": 750, "q1": 457.5, "q3": 1050}
    assert [b["n"] for b in first["hoursFromStart"]] == [1, 1, 1, 0, 1, 0, 0]


def test_no_first_meetings_gives_zero_and_no_spread():
    r = report(registered("REF-1"))
    assert r["firstMeeting"]["n"] == 0 and r["firstMeeting"]["minutesFromStart"] is None
    assert r["firstMeeting"]["withinDeadlinePct"] is None
    assert r["adherence"] == {"n": 0, "mean": None, "sd": None}
    assert r["measures"] == {} and r["governance"] == {}


def test_first_contact_within_its_deadline_only_where_that_policy_published_deadlines():
    refs = ["REF-1", "REF-2", "REF-3"]
    base = [*[registered(ref) for ref in refs], contact_first("REF-1", 45), contact_first("REF-2", 200),
            contact_first("REF-3", 90)]
    assert report(*base)["firstContact"] == {"n": 3, "minutesFromReferral": {"median": 90, "q1": 67.5, "q3": 145}}
    with_policy = report(*base, deadline_met("REF-1", "first-contact"), deadline_met("REF-3", "first-contact"),
                         deadline_missed("REF-2", "first-contact"))
    assert (with_policy["firstContact"]["withinDeadline"], with_policy["firstContact"]["withinDeadlinePct"]) == (2, 66.7)


def test_the_cohort_counts_referrals_registered_accepted_closed_and_discharged():
    r = report(*[registered(f"REF-{i}") for i in range(5)],
               accepted("REF-0"), accepted("REF-1"), accepted("REF-2"),
               closed("REF-3", "rejected"), closed("REF-4", "withdrawn"), discharged("REF-0"))
    assert r["referrals"] == {"registered": 5, "accepted": 3, "closed": 2, "rejected": 1,
                              "withdrawn": 1, "discharged": 1}


def test_team_and_time_scope_by_the_referrals_registration_and_events_of_others_are_left_out():
    events = [registered("REF-IN", "POD-KENT", at(0)), registered("REF-EARLY", "POD-KENT", at(-1)),
              registered("REF-LATE", "POD-KENT", at(48)), registered("REF-ELSEWHERE", "POD-ESSEX", at(1)),
              # until is exclusive: received exactly then is out
              *[meeting_held(ref, "M1") for ref in ("REF-IN", "REF-EARLY", "REF-LATE", "REF-ELSEWHERE", "REF-NONE")]]
    scope = Scope(team="POD-KENT", since=T0, until=at(48))
    r = report(*events, scope=scope)
    assert r["referrals"]["registered"] == 1 and r["meetings"] == 1
    assert r["scope"] == {"team": "POD-KENT", "since": "2026-03-02T09:00:00Z", "until": "2026-03-04T09:00:00Z"}
    everything = report(*events)
    # A meeting of a referral never registered (REF-NONE) has no team or time: in no scope.
    assert everything["referrals"]["registered"] == 4 and everything["meetings"] == 4


def test_meetings_per_referral_over_the_referrals_that_had_one():
    r = report(*[registered(ref) for ref in ("REF-1", "REF-2", "REF-3", "REF-4")],
               *[meeting_held("REF-1", f"M{i}") for i in range(4)],
               meeting_held("REF-2", "M1"), meeting_held("REF-3", "M1"), meeting_held("REF-3", "M2"))
    assert r["meetingsPerReferral"] == {"referrals": 3, "mean": 2.33, "median": 2, "max": 4}


def test_fidelity_to_the_pod_principles():
    a, b, c, d = "REF-A", "REF-B", "REF-C", "REF-D"
    meetings = (
        # A: first at 2 h; on days 0 to 10 (11 days), twice on day 1; with network and a peer worker twice.
        [meeting_held(a, f"A{day}", hours=2 + 24 * day) for day in range(11)]
        + [meeting_held(a, "A1b", hours=27, network={"friend": 1}, staff={"peer_support_worker": 1}),
           meeting_held(a, "A2b", hours=50, network={"parent": 1}, staff={"peer_support_worker": 1})]
        # B: first at 30 h (day 1), then days 3 and 20: two of the first 14 days.
        + [meeting_held(b, "B1", hours=30), meeting_held(b, "B2", hours=80), meeting_held(b, "B3", hours=490)]
        # D is not accepted: its meeting at 1 h is in the meetings, not in the referral measures.
        + [meeting_held(d, "D1", hours=1)])
    r = report(*[registered(ref) for ref in (a, b, c, d)], accepted(a), accepted(b), accepted(c), *meetings,
               medication(a, True, False, 3, inbound_id="rx-1"), medication(a, True, None, 5, inbound_id="rx-2"),
               medication(b, True, False, 1, inbound_id="rx-3"), medication(b, True, True, 0, inbound_id="rx-4"),
               medication(c, False, False, 0, inbound_id="rx-5"))
    f = r["fidelity"]
    assert f["firstMeetingWithin24h"] == {"n": 3, "count": 1, "pct": 33.3}  # A only; C never met
    # Days: A 11, B 2, C 0: median 2, one with at least 10.
    assert f["meetingDaysInFirst14"] == {"n": 3, "median": 2, "atLeast10": 1, "atLeast10Pct": 33.3}
    assert r["meetings"] == 17
    assert f["meetingsWithNetwork"] == {"n": 17, "count": 2, "pct": 11.8}
    assert f["meetingsWithPeerSupportWorker"] == {"n": 17, "count": 2, "pct": 11.8}
    # New without an urgent override: rx-1 (3 before), rx-2 (5), rx-3 (1): two of three.
    assert f["medicationAfterThreeMeetings"] == {"n": 3, "count": 2, "pct": 66.7}


def test_a_meeting_exactly_24_hours_after_the_referral_is_within_and_day_14_is_not_in_the_first_two_weeks():
    r = report(registered("REF-A"), accepted("REF-A"), meeting_held("REF-A", "M1", hours=24),
               meeting_held("REF-A", "M2", hours=24 * 14))
    assert r["fidelity"]["firstMeetingWithin24h"]["count"] == 1
    assert r["fidelity"]["meetingDaysInFirst14"]["median"] == 1


def test_bad_records_are_skipped_and_counted_and_the_rest_reported():
    good = meeting_held("REF-A", "M1")
    no_team = registered("REF-B")
    del no_team["data"]["teamCode"]
    wrong_subject = meeting_held("REF-A", "M2")
    wrong_subject["data"]["referralId"] = "REF-OTHER"
    bad_count = meeting_held("REF-A", "M3")
    bad_count["data"]["attendance"]["network_member"] = "two"
    unknown = dict(good, type="uk.nhs.podlink.something.new")
    r = report(registered("REF-A"), good, b"{ not json", b"[1, 2]", no_team, wrong_subject, bad_count,
               unknown, b'{"type": "uk.nhs.podlink.meeting.held"}')
    assert r["meetings"] == 1 and r["skipped"] == 7 and r["eventsRead"] == 9
    assert r["skippedReasons"] == {
        "meeting.held: data.attendance is not valid": 1,
        "meeting.held: data.referralId is not the subject": 1,
        "meeting.held: no id or subject": 1,
        "not JSON": 1, "not a JSON object": 1, "not a podlink outcome event type": 1,
        "referral.registered: no data.teamCode": 1,
    }


def test_time_zones_in_scope_are_compared_as_moments():
    # 10:00 in London in summer is 09:00 UTC.
    received = datetime.fromisoformat("2026-06-01T09:00:00+00:00")
    r = report(registered("REF-A", received=received),
               scope=Scope(since=datetime.fromisoformat("2026-06-01T10:00:00+01:00")))
    assert r["referrals"]["registered"] == 1


def test_the_delivery_and_alert_services_events_are_podlinks_own_not_skipped_records():
    from podlink.services.report.events import OutcomeEvent, Skipped
    for kind in ("delivery.succeeded", "delivery.failed", "alert.sent", "alert.failed", "alert.acknowledged"):
        raw = json.dumps({"specversion": "1.0", "id": f"id-{kind}", "type": f"uk.nhs.podlink.{kind}",
                          "subject": "REF-1", "data": {"referralId": "REF-1"}})
        assert isinstance(parse(raw), OutcomeEvent), kind
    assert isinstance(parse(json.dumps({"id": "x", "type": "uk.nhs.podlink.alert.sneezed", "subject": "R",
                                        "data": {"referralId": "R"}})), Skipped)
