"""What one event does, through the pipeline as the worker calls it: a test per verdict."""
from __future__ import annotations

import pytest

from podlink.streams.core.episode import Policy
from podlink.streams.pipeline.processor import Result
from tests.support.contract_examples import load, valid_files
from tests.support.episodes import FIRST_CONTACT_START, policy_from, T0, hours, meeting_held_at, of_type, records, run

REFERRAL_POLICY = Policy()
FIRST_CONTACT_POLICY = policy_from(FIRST_CONTACT_START)


def _types(result: Result) -> list[str]:
    return [o["type"].removeprefix("uk.nhs.podlink.") for o in result.outcomes]


def _ids(result: Result) -> list[str]:
    return [m["id"] for m in result.fhir_messages] + [o["id"] for o in result.outcomes]


def _nothing_out(result: Result) -> bool:
    return (result.fhir_messages, result.outcomes, result.deadline, result.watch_changed) == ([], [], None, False)


def test_applied_a_referral_sends_its_message_and_starts_the_clock():
    [result] = run(records("on-time")[:1])
    assert result.verdict == "applied" and result.stores_episode
    assert len(result.fhir_messages) == 1 and _types(result) == ["referral.registered"]
    header = result.fhir_messages[0]["entry"][0]["resource"]
    assert header["eventCoding"]["code"] == "servicerequest-request"
    assert result.deadline.due_at == T0 + hours(24) and result.watch_changed


def test_replayed_the_last_record_again_gives_the_same_outputs_with_the_same_ids():
    rec = records("on-time")[:5]  # up to the first meeting held
    first = run(rec, offsets=range(5))
    [again] = run(rec[4:], episode=first[-1].episode, offsets=[4])
    assert again.verdict == "replayed" and not again.stores_episode and not again.watch_changed
    assert _types(again) == ["meeting.first", "meeting.held", "deadline.met"]
    assert again.fhir_messages == first[-1].fhir_messages and again.outcomes == first[-1].outcomes
    assert again.deadline == first[-1].deadline and again.episode == first[-1].episode


def test_replayed_records_keep_the_ids_of_their_first_application():
    rec = records("on-time")
    first = run(rec, offsets=range(len(rec)))
    again = run(rec, episode=first[-1].episode, offsets=range(len(rec)))
    assert {r.verdict for r in again} == {"replayed"}
    assert [_ids(r) for r in again] == [_ids(r) for r in first]


def test_duplicate_from_the_source_at_a_new_offset_sends_nothing():
    rec = records("on-time")
    first = run(rec, offsets=range(len(rec)))
    for offsets in ([100], None):
        [dup] = run(rec[3:4], episode=first[-1].episode, offsets=offsets)
        assert dup.verdict == "duplicate" and _nothing_out(dup) and not dup.stores_episode
        assert dup.episode == first[-1].episode


def test_pending_care_events_send_nothing_until_their_referral_releases_them():
    rec = records("care-first")
    waiting = run(rec[:2])
    assert [r.verdict for r in waiting] == ["pending", "pending"]
    assert all(_nothing_out(r) and r.stores_episode for r in waiting)
    [released] = run(rec[2:3], episode=waiting[-1].episode)
    # Met by the meeting released with it, the first-meeting deadline leaves nothing to watch;
    # but the referral has had a deadline, so its entry is written: an open episode to count.
    assert released.verdict == "applied" and released.watch_changed and released.watch.deadlines == ()
    assert not released.watch.closed
    codes = [m["entry"][0]["resource"]["eventCoding"]["code"] for m in released.fhir_messages]
    assert codes == ["servicerequest-request", "meeting-scheduled", "meeting-held"]
    assert _types(released) == ["referral.registered", "meeting.first", "meeting.held", "deadline.met"]
    assert released.deadline.met_at == T0 + hours(15) and released.episode.pending == ()


def test_out_of_scope_referrals_and_their_care_events_send_nothing():
    results = run(records("on-time"), Policy(teams=frozenset({"POD-ELSEWHERE"})))
    assert {r.verdict for r in results} == {"out-of-scope"}
    assert all(_nothing_out(r) and r.stores_episode for r in results)


def test_the_deadline_changes_when_the_clock_starts_and_when_a_meeting_meets_it():
    # received, accepted (an urgent referral that needs CPA: the risk-assessment and
    # cpa-coordinator clocks start), contact, scheduled, first meeting, two more, a measure
    changed = [r.watch_changed for r in run(records("on-time"), REFERRAL_POLICY)]
    assert changed == [True, True, False, False, True, False, False, False]
    changed = [r.watch_changed for r in run(records("on-time"), FIRST_CONTACT_POLICY)]
    assert changed == [False, True, True, False, True, False, False, False]
    # received, withdrawn: a closing stops the clock
    assert [r.watch_changed for r in run(records("withdrawn"))] == [True, True]


def _first_meeting_at(moment):
    results = run(records("breached") + [meeting_held_at(moment)])
    first = next(o for o in results[-1].outcomes if o["type"].endswith("meeting.first"))
    plan = next(e["resource"] for e in results[-1].fhir_messages[0]["entry"]
                if e["resource"]["resourceType"] == "CarePlan")
    outcome = plan["activity"][0]["outcomeCodeableConcept"][0]["coding"][0]["code"]
    return results[-1].deadline, first["data"]["withinDeadline"], outcome


def test_a_first_meeting_exactly_at_the_deadline_is_within_it_in_the_event_and_the_care_plan():
    deadline, within, outcome = _first_meeting_at(T0 + hours(24))
    assert deadline.due_at == T0 + hours(24) and deadline.met_within is True
    assert within is True and outcome == "met-within-deadline"


def test_a_first_meeting_one_second_after_the_deadline_is_late_in_both():
    deadline, within, outcome = _first_meeting_at(T0 + hours(24) + hours(1 / 3600))
    assert deadline.met_within is False
    assert within is False and outcome == "met-after-deadline"


def test_only_the_first_meeting_gives_a_first_meeting_event():
    results = run(records("on-time"))
    held = of_type(records("on-time"), "pod.meeting.held")
    assert len(held) == 3
    assert [_types(r) for r in results if r.outcomes and "meeting.held" in _types(r)] == [
        ["meeting.first", "meeting.held", "deadline.met"], ["meeting.held"], ["meeting.held"]]


@pytest.mark.parametrize("scenario, outcome", [("rejected", "referral.closed"), ("withdrawn", "referral.closed")])
def test_replaying_a_closing_gives_its_outcome_again(scenario, outcome):
    rec = records(scenario)
    first = run(rec, offsets=range(len(rec)))
    [again] = run(rec[-1:], episode=first[-1].episode, offsets=[len(rec) - 1])
    assert again.verdict == "replayed" and _types(again) == [outcome]
    assert again.outcomes == first[-1].outcomes and again.fhir_messages == first[-1].fhir_messages


def test_replaying_a_discharge_gives_its_outcome_again():
    main = sorted((load(p) for p in valid_files()), key=lambda r: r["time"])
    main = [r for r in main if r["subject"] == "REF-2026-000123"]
    assert main[-1]["type"] == "uk.nhs.pod.episode.discharged"
    first = run(main, offsets=range(len(main)))
    [again] = run(main[-1:], episode=first[-1].episode, offsets=[len(main) - 1])
    # The discharge also cancels the open risk review, already past its reviewDue: missed.
    assert again.verdict == "replayed" and _types(again) == ["episode.discharged", "deadline.missed"]
    assert again.outcomes == first[-1].outcomes
