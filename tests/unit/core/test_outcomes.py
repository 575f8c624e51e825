import json
import re

import pytest

from podlink.streams.core.pathway import first_meeting_deadline
from podlink.streams.core.episode import Policy, Position, apply
from podlink.streams.core.events import parse_event
from podlink.streams.core.measures import SWEMWBS_METRIC
from podlink.streams.core.outcomes import outcome_events
from tests.support.contract_examples import CONTRACTS, example
from tests.support.episodes import T0, feed, hours, of_type, records, run


def _outcomes(scenario, referral_id="REF-T-1"):
    events = []
    for step in feed(records(scenario, referral_id=referral_id))[1]:
        for t in step.transitions:
            events += outcome_events(t, first_meeting_deadline(t.after, Policy()))
    return events


def _types(events):
    return [e["type"].removeprefix("uk.nhs.podlink.") for e in events]


def test_an_on_time_pathway_reaches_each_milestone_once():
    assert _types(_outcomes("on-time")) == [
        "referral.registered", "referral.accepted", "contact.first", "meeting.first",
        "meeting.held", "meeting.held", "meeting.held", "measure.recorded"]


def test_the_first_meeting_says_whether_it_met_the_deadline():
    first = next(e for e in _outcomes("on-time") if e["type"].endswith("meeting.first"))
    assert first["data"]["withinDeadline"] is True
    assert first["data"]["minutesFromDeadlineStart"] == 15 * 60
    late = next(e for e in _outcomes("met-late") if e["type"].endswith("meeting.first"))
    assert late["data"]["withinDeadline"] is False and late["data"]["minutesFromDeadlineStart"] == 27 * 60


def test_a_meeting_held_counts_attendance_network_and_staff():
    held = next(e for e in _outcomes("on-time") if e["type"].endswith("meeting.held"))
    assert held["data"]["attendance"] == {"service_user": 1, "network_member": 1, "staff": 2}
    assert held["data"]["networkMembersByRelationship"] == {"spouse_or_partner": 1}
    assert held["data"]["staffByRole"] == {"nurse": 1, "peer_support_worker": 1}
    assert held["data"]["durationMinutes"] == 90 and held["data"]["adherenceScore"] == 3.6
    assert held["data"]["meetingNumber"] == 1


def test_closing_a_referral_says_how_it_closed():
    assert _outcomes("rejected")[-1]["data"]["outcome"] == "rejected"
    assert _outcomes("withdrawn")[-1]["data"]["outcome"] == "withdrawn"


def test_outcome_events_are_cloudevents_with_ids_fixed_by_what_happened():
    first, second = _outcomes("on-time"), _outcomes("on-time")
    assert [e["id"] for e in first] == [e["id"] for e in second]
    assert len({e["id"] for e in first}) == len(first)
    assert {e["id"] for e in first}.isdisjoint(e["id"] for e in _outcomes("on-time", "REF-T-2"))
    for e in first:
        assert e["specversion"] == "1.0" and e["subject"] == "REF-T-1"
        assert e["data"]["referralId"] == "REF-T-1" and e["time"].endswith("Z")


def test_outcome_events_carry_no_patient_identifiers_or_free_text():
    text = json.dumps([_outcomes(s) for s in ("on-time", "rejected", "withdrawn")])
    for secret in ["99900", "Sample", "Person0", "CT1 1AA", "1990-05-17", "Synthetic crisis",
                   "Routed to another service"]:
        assert secret not in text


def test_a_replayed_record_yields_the_same_outcome_events_again():
    rec = records("on-time")
    episode, first = None, []
    for offset, r in enumerate(rec):
        step = apply(episode, parse_event(r.value), Policy(), Position(r.topic, 0, offset))
        episode = step.episode
        first += [outcome_events(t, first_meeting_deadline(t.after, Policy())) for t in step.transitions]
    again = []
    for offset, r in enumerate(rec):
        step = apply(episode, parse_event(r.value), Policy(), Position(r.topic, 0, offset))
        assert step.verdict == "replayed"
        again += [outcome_events(t, first_meeting_deadline(t.after, Policy())) for t in step.transitions]
    assert [[e["id"] for e in es] for es in again] == [[e["id"] for e in es] for es in first]


def test_bed_days_count_nights_and_an_admission_open_at_discharge_counts_to_discharge():
    second = example("admission-started")
    second["id"] = "second-admission"
    second["data"]["admittedAt"] = "2026-09-30T22:00:00Z"
    names = ["referral-received", "admission-started", "admission-ended"]
    episode, steps = feed([example(n) for n in names] + [second, example("episode-discharged")])
    [discharged] = outcome_events(steps[-1].transitions[0], None)
    # 17 April 23:40 to 20 April: nights of the 17th, 18th and 19th (3); 30 September, still
    # admitted at discharge on 4 October: nights of 30 Sept, 1, 2 and 3 October (4).
    assert discharged["data"]["bedDays"] == 3 + 4
    assert discharged["data"]["meetingsHeld"] == 0


def test_attendance_counts_zero_for_a_kind_nobody_came_as():
    held = example("meeting-held")
    held["data"]["attendees"] = [{"kind": "staff", "staffId": "STF-0042", "role": "peer_support_worker"}]
    _, steps = feed([example("referral-received"), held])
    meeting = next(e for e in outcome_events(steps[-1].transitions[0], None) if e["type"].endswith("meeting.held"))
    assert meeting["data"]["attendance"] == {"service_user": 0, "network_member": 0, "staff": 1}


# Care events: one outcome event each, its data worked out by hand from the contract examples.

def _care_outcome(*events):
    """The outcome events of the last of `events`, applied after the examples' referral."""
    _, steps = feed([example("referral-received"), *events])
    return outcome_events(steps[-1].transitions[0], None)


def _example_with(name, **data):
    value = example(name)
    value["data"] |= data
    return value


def _data(event):
    return {k: v for k, v in event["data"].items() if k != "referralId"}


def test_a_risk_assessment_gives_its_level_and_review_date_without_the_assessor():
    [risk] = _care_outcome(_example_with("risk-assessed"))
    assert risk["type"] == "uk.nhs.podlink.risk.assessed" and risk["time"] == "2026-03-29T16:20:00Z"
    assert _data(risk) == {
        "level": "medium", "assessedAt": "2026-03-29T16:20:00Z", "reviewDue": "2026-04-04T23:40:00Z"}
    no_date = _example_with("risk-assessed", level="high", assessedAt="2026-03-30T10:00:00+01:00")
    del no_date["data"]["reviewDue"]
    assert _data(_care_outcome(no_date)[0]) == {
        "level": "high", "assessedAt": "2026-03-30T09:00:00Z", "reviewDue": None}


def test_a_coordinator_assignment_gives_the_role_only():
    [assigned] = _care_outcome(_example_with("cpa-coordinator-assigned"))
    assert assigned["type"] == "uk.nhs.podlink.cpa.coordinator-assigned"
    assert _data(assigned) == {"assignedAt": "2026-03-29T23:40:00Z", "coordinatorRole": "nurse"}


def test_a_cpa_review_gives_when_it_was_held_and_the_next_one_is_due():
    [review] = _care_outcome(_example_with("cpa-review-held"))
    assert review["type"] == "uk.nhs.podlink.cpa.review-held"
    assert _data(review) == {"heldAt": "2026-09-24T23:40:00Z", "nextReviewDue": "2027-09-24T23:40:00Z"}
    last = _example_with("cpa-review-held")
    del last["data"]["nextReviewDue"]
    assert _data(_care_outcome(last)[0])["nextReviewDue"] is None


def test_an_admission_gives_its_start_and_at_its_end_the_nights_in_a_bed():
    [started] = _care_outcome(_example_with("admission-started"))
    assert started["type"] == "uk.nhs.podlink.admission.started"
    assert _data(started) == {"admittedAt": "2026-04-17T23:40:00Z"}
    [ended] = _care_outcome(_example_with("admission-started"), _example_with("admission-ended"))
    assert ended["type"] == "uk.nhs.podlink.admission.ended"
    # 17 April 23:40 to 20 April 23:40: the nights of the 17th, 18th and 19th.
    assert _data(ended) == {"endedAt": "2026-04-20T23:40:00Z", "bedDays": 3}
    same_day = _example_with("admission-ended", endedAt="2026-04-17T23:55:00Z")
    assert _data(_care_outcome(_example_with("admission-started"), same_day)[0])["bedDays"] == 0


def test_an_admission_end_with_no_admission_open_has_no_length():
    [ended] = _care_outcome(_example_with("admission-ended"))
    assert _data(ended) == {"endedAt": "2026-04-20T23:40:00Z", "bedDays": None}


def _prescribed_after_on_time_meetings(at, **data):
    """A prescription `at` hours after the on-time pathway's referral (meetings start at 15, 39
    and 63 hours)."""
    rec = records("on-time")
    medication = _example_with("medication-prescribed", referralId="REF-T-1",
                          prescribedAt=(T0 + hours(at)).isoformat(), **data)
    medication["subject"] = "REF-T-1"
    meetings = of_type(rec, "spa.referral.received") + of_type(rec, "pod.meeting.held")
    _, steps = feed([r.value for r in meetings] + [medication])
    [prescribed] = outcome_events(steps[-1].transitions[0], None)
    return prescribed


def test_a_prescription_counts_the_network_meetings_that_started_before_it():
    prescribed = _prescribed_after_on_time_meetings(40)
    assert prescribed["type"] == "uk.nhs.podlink.medication.prescribed"
    assert _data(prescribed) == {
        "prescribedAt": "2026-06-03T01:00:00Z", "isNew": True, "urgentSafetyOverride": False,
        "meetingsHeldBefore": 2}
    # A meeting starting at the moment of the prescription is not before it; a prescription a
    # minute into the third meeting (decided in it) follows three meetings.
    assert _data(_prescribed_after_on_time_meetings(63))["meetingsHeldBefore"] == 2
    assert _data(_prescribed_after_on_time_meetings(63 + 1 / 60))["meetingsHeldBefore"] == 3
    assert _data(_prescribed_after_on_time_meetings(10))["meetingsHeldBefore"] == 0


def test_a_prescription_gives_the_override_as_sent():
    overridden = _data(_prescribed_after_on_time_meetings(20, isNew=False, urgentSafetyOverride=True))
    assert (overridden["isNew"], overridden["urgentSafetyOverride"]) == (False, True)
    unsaid = _example_with("medication-prescribed")
    del unsaid["data"]["urgentSafetyOverride"]
    assert _data(_care_outcome(unsaid)[0])["urgentSafetyOverride"] is None


def _measure(instrument, items, **data):
    [measure] = _care_outcome(_example_with("measure-recorded", instrument=instrument, items=items, **data))
    assert measure["type"] == "uk.nhs.podlink.measure.recorded"
    return _data(measure)


def test_a_swemwbs_measure_gives_its_raw_total_and_metric_score():
    # 2+3+2+3+2+2+3 = 17, which the published table converts to 16.88.
    assert _measure("SWEMWBS", [2, 3, 2, 3, 2, 2, 3]) == {
        "instrument": "SWEMWBS", "timepoint": "baseline", "respondent": "service_user",
        "recordedAt": "2026-03-29T16:40:00Z", "itemCount": 7, "totalScore": 17, "metricScore": 16.88}
    assert _measure("SWEMWBS", [1] * 7)["metricScore"] == 7.00
    assert _measure("SWEMWBS", [5, 5, 5, 5, 5, 2, 2])["metricScore"] == 26.02  # raw 29
    assert _measure("SWEMWBS", [5] * 7)["metricScore"] == 35.00


def test_the_other_instruments_give_their_totals_and_cmhs_its_mean():
    honos = _measure("HONOS", [0, 1, 2, 3, 4, 0, 1, 2, 3, 4, 0, 1],
                     timepoint="discharge", respondent="clinician")
    assert honos == {"instrument": "HONOS", "timepoint": "discharge", "respondent": "clinician",
                     "recordedAt": "2026-03-29T16:40:00Z", "itemCount": 12, "totalScore": 21}
    wsas = _measure("WSAS", [8, 0, 3, 4, 5])
    assert (wsas["itemCount"], wsas["totalScore"], "metricScore" in wsas) == (5, 20, False)
    cws = _measure("CWS", [2] * 16 + [3], respondent="carer", respondentPersonId="NET-1")
    assert (cws["itemCount"], cws["totalScore"], cws["respondent"]) == (17, 35, "carer")
    # CMHS is scored by its mean: 7, 8 and 10 average 25/3, to two places 8.33.
    cmhs = _measure("CMHS", [7, 8, 10])
    assert (cmhs["itemCount"], cmhs["meanScore"], "totalScore" in cmhs) == (3, 8.33, False)
    assert _measure("CMHS", [1, 2])["meanScore"] == 1.5
    no_respondent = _example_with("measure-recorded")
    del no_respondent["data"]["respondent"]
    assert _data(_care_outcome(no_respondent)[0])["respondent"] is None


def test_the_swemwbs_table_is_the_one_in_the_domain_reference():
    text = (CONTRACTS.parent / "DOMAIN.md").read_text()
    table = text[text.index("SWEMWBS raw to metric"):text.index("## 6.")]
    pairs = re.findall(r"\b(\d{1,2}) (\d{1,2}\.\d\d)\b", table)
    published = {int(raw): float(metric) for raw, metric in pairs}
    assert published == SWEMWBS_METRIC and sorted(published) == list(range(7, 36))


# Ids: fixed by the facts that tell two events of one kind apart, so a re-sent event keeps its id.

def _id(*events):
    return _care_outcome(*events)[0]["id"]


def _resent(value):
    """The same facts in a new inbound event, as a source that sends again would."""
    return value | {"id": "resent-" + value["id"]}


@pytest.mark.parametrize("name, moment", [
    ("risk-assessed", "assessedAt"), ("cpa-coordinator-assigned", "assignedAt"),
    ("cpa-review-held", "heldAt"), ("admission-started", "admittedAt"), ("admission-ended", "endedAt"),
    ("measure-recorded", "recordedAt"),
])
def test_an_event_sent_again_keeps_its_id_and_one_at_another_time_gets_another(name, moment):
    first = _example_with(name)
    assert _id(first) == _id(first) == _id(_resent(first))
    assert _id(first) != _id(_example_with(name, **{moment: "2026-10-01T09:00:00Z"}))


def test_measures_at_one_moment_by_different_people_or_instruments_get_different_ids():
    base = {"instrument": "CWS", "items": [1] * 17, "respondent": "carer"}
    ids = {
        _id(_example_with("measure-recorded", **base, respondentPersonId="NET-1")),
        _id(_example_with("measure-recorded", **base, respondentPersonId="NET-2")),
        _id(_example_with("measure-recorded")),  # the service user, no person id
        _id(_example_with("measure-recorded", respondent="clinician")),  # no person id either
        _id(_example_with("measure-recorded", timepoint="3_months")),
        _id(_example_with("measure-recorded", instrument="WSAS", items=[1] * 5)),
    }
    assert len(ids) == 6


def test_two_prescriptions_at_one_moment_get_different_ids_and_each_keeps_its_own():
    first = _example_with("medication-prescribed")
    second = _resent(first) | {"data": first["data"] | {"medication": {"display": "Another drug"}}}
    assert _id(first) == _id(first) and _id(second) == _id(second)
    assert _id(first) != _id(second)


def test_a_duplicate_care_event_sends_nothing_and_a_replayed_one_the_same_event_again():
    names = ["referral-received", "risk-assessed", "cpa-coordinator-assigned", "cpa-review-held",
             "admission-started", "admission-ended", "medication-prescribed", "measure-recorded"]
    events = [parse_event(example(n)) for n in names]
    episode, first = None, []
    for offset, event in enumerate(events):
        step = apply(episode, event, Policy(), Position("care", 0, offset))
        episode = step.episode
        first.append([o for t in step.transitions for o in outcome_events(t, None)])
    assert [len(o) for o in first] == [1] * len(names)
    for offset, event in enumerate(events):
        duplicate = apply(episode, event, Policy(), Position("care", 0, len(events) + offset))
        assert duplicate.verdict == "duplicate" and duplicate.transitions == ()
        replayed = apply(episode, event, Policy(), Position("care", 0, offset))
        assert [o for t in replayed.transitions for o in outcome_events(t, None)] == first[offset]


def test_care_outcome_events_carry_no_names_identifiers_or_free_text():
    staff = {"staffId": "STAFF-MARKER", "name": "Assessor Marker", "role": "psychiatrist"}
    events = [
        _example_with("referral-received"),
        _example_with("risk-assessed", assessor=staff),
        _example_with("cpa-coordinator-assigned", coordinator=staff | {"name": "Coordinator Marker"}),
        _example_with("cpa-review-held"),
        _example_with("admission-started", ward="Ward Marker"),
        _example_with("admission-ended"),
        _example_with("medication-prescribed", medication={"dmdCode": "987654321987", "display": "Drug Marker"},
                 prescriber=staff | {"name": "Prescriber Marker"}),
        _example_with("measure-recorded", respondent="carer", respondentPersonId="NET-1"),
        _resent(_example_with("measure-recorded", instrument="CWS", items=[1] * 17, respondent="carer",
                         respondentPersonId="PERSON-MARKER")),
    ]
    outcomes = [o for r in run(events) for o in r.outcomes]
    # One per event, and the deadlines and flags they led to (which carry no more than these).
    rules = [o for o in outcomes if o["type"].split(".")[3] in ("deadline", "governance")]
    assert len(outcomes) - len(rules) == len(events) and rules
    text = json.dumps(outcomes)
    for secret in ["Marker", "MARKER", "987654321987", "9995260182", "Jordan", "Example", "CT1 1AA",
                   "1990-05-17", "sleep loss", "07700", "NET-1", "STF-"]:
        assert secret not in text, secret
