import json

from podlink.streams.core.deadlines import first_meeting_deadline
from podlink.streams.core.episode import Policy
from podlink.streams.core.outcomes import outcome_events
from tests.support.episodes import feed, records


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
        "meeting.held", "meeting.held", "meeting.held"]


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
    from podlink.streams.core.episode import Position, apply
    from podlink.streams.core.events import parse_event
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
    from tests.support.contract_examples import example

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
    from tests.support.contract_examples import example

    held = example("meeting-held")
    held["data"]["attendees"] = [{"kind": "staff", "staffId": "STF-0042", "role": "peer_support_worker"}]
    _, steps = feed([example("referral-received"), held])
    meeting = next(e for e in outcome_events(steps[-1].transitions[0], None) if e["type"].endswith("meeting.held"))
    assert meeting["data"]["attendance"] == {"service_user": 0, "network_member": 0, "staff": 1}
