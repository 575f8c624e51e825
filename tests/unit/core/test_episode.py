import json
from pathlib import Path

import pytest

from podlink.services.samples import pathway
from podlink.streams.core.episode import Episode
from podlink.streams.core.events import MeetingHeld, MeetingScheduled
from podlink.streams.core.episode import Policy
from tests.support.contract_examples import example
from tests.support.episodes import T0, feed, records


def test_a_referral_opens_an_episode_and_acceptance_moves_it_on():
    episode, steps = feed(records("on-time")[:2])
    assert [s.verdict for s in steps] == ["applied", "applied"]
    assert episode.status == "accepted" and episode.team_code == "POD-CANTERBURY"


def test_the_same_event_twice_is_applied_once():
    rec = records("on-time")
    episode, steps = feed(rec + rec[:3])
    assert [s.verdict for s in steps[-3:]] == ["duplicate"] * 3
    assert len(episode.applied) == len(rec)


def test_care_events_before_their_referral_wait_and_are_applied_when_it_arrives():
    care_first = records("care-first")
    assert care_first[0].value["type"] == "uk.nhs.pod.meeting.scheduled"
    episode, steps = feed(care_first[:2])
    assert [s.verdict for s in steps] == ["pending", "pending"]
    assert episode.status == "awaiting-referral" and len(episode.pending) == 2
    episode, steps = feed(care_first[2:3], episode=episode)
    assert steps[0].verdict == "applied"
    assert [t.event.type for t in steps[0].transitions] == [
        "uk.nhs.spa.referral.received", "uk.nhs.pod.meeting.scheduled", "uk.nhs.pod.meeting.held"]
    assert episode.pending == () and episode.first_meeting.meeting_id == "MTG-1"


def test_a_waiting_event_delivered_again_is_still_a_duplicate():
    care_first = records("care-first")
    _, steps = feed([care_first[1], care_first[1]])
    assert [s.verdict for s in steps] == ["pending", "duplicate"]


def test_referrals_for_other_teams_are_out_of_scope_and_so_are_their_care_events():
    policy = Policy(teams=frozenset({"POD-ELSEWHERE"}))
    episode, steps = feed(records("on-time"), policy)
    assert episode.status == "out-of-scope"
    assert {s.verdict for s in steps} == {"out-of-scope"}
    assert episode.referral is None


def test_a_closed_referral_is_not_reopened_by_a_late_acceptance():
    rec = records("withdrawn")
    accepted = pathway("REF-T-1", T0, "on-time")[1]
    episode, _ = feed(rec + [accepted])
    assert episode.status == "withdrawn"


def test_the_first_meeting_is_the_earliest_held_whatever_the_arrival_order():
    rec = records("on-time")
    held = [r for r in rec if r.value["type"] == "uk.nhs.pod.meeting.held"]
    episode, _ = feed([rec[0], held[2], held[0], held[1]])
    assert [m.meeting_id for m in episode.held_meetings] == ["MTG-1", "MTG-2", "MTG-3"]


def test_a_cancellation_after_the_meeting_was_held_does_not_unhold_it():
    ref = example("referral-received")
    held = example("meeting-held")
    cancelled = example("meeting-cancelled")
    cancelled["data"]["meetingId"] = "MTG-1"
    episode, _ = feed([ref, held, cancelled])
    assert episode.meetings["MTG-1"].status == "held"


def test_every_contract_example_applies_to_an_episode():
    names = ["referral-received", "referral-accepted", "contact-made", "meeting-scheduled",
             "meeting-held", "meeting-cancelled", "risk-assessed", "cpa-coordinator-assigned",
             "cpa-review-held", "medication-prescribed", "measure-recorded", "admission-started",
             "admission-ended", "episode-discharged"]
    episode, steps = feed([example(n) for n in names])
    assert all(s.verdict == "applied" for s in steps)
    assert episode.status == "discharged"
    assert episode.coordinator.role == "nurse" and episode.risk.level == "medium"
    assert episode.admissions[0].ended_at is not None and len(episode.measures) == 1


def test_episode_state_round_trips_through_its_stored_json():
    episode, _ = feed(records("care-first")[:2])
    from podlink.streams.core.episode import Episode
    assert Episode.model_validate_json(episode.model_dump_json()) == episode


def _feed_at(records, offsets, episode=None):
    from podlink.streams.core.episode import Position, apply
    from podlink.streams.core.events import parse_event
    steps = []
    for record, offset in zip(records, offsets):
        step = apply(episode, parse_event(record.value), Policy(),
                     Position(record.topic, 0, offset))
        episode = step.episode
        steps.append(step)
    return episode, steps


def test_a_record_read_again_after_a_crash_is_replayed_with_its_transition():
    rec = records("on-time")
    episode, _ = _feed_at(rec, range(len(rec)))
    # The worker restarts from an older commit: the same records at the same offsets.
    _, steps = _feed_at(rec[3:5], [3, 4], episode)
    assert [s.verdict for s in steps] == ["replayed", "replayed"]
    assert all(s.episode == episode for s in steps)


def test_the_same_event_at_a_new_offset_is_a_duplicate_from_the_source():
    rec = records("on-time")
    episode, _ = _feed_at(rec, range(len(rec)))
    _, steps = _feed_at(rec[3:4], [100], episode)
    assert steps[0].verdict == "duplicate" and steps[0].transitions == ()


def test_rewinding_a_meeting_forgets_it_and_every_later_meeting():
    from podlink.streams.core.episode import rewind
    from podlink.streams.core.events import parse_event
    rec = records("on-time")
    episode, _ = feed(rec)
    first_held = next(r for r in rec if r.value["type"] == "uk.nhs.pod.meeting.held")
    before = rewind(episode, parse_event(first_held.value))
    assert before.first_meeting is None and episode.first_meeting.meeting_id == "MTG-1"


STORED_BEFORE_TYPED_PENDING = Path(__file__).with_name("episode_stored_before_typed_pending.json")


def test_an_episode_stored_with_pending_events_as_json_text_loads_and_releases_them():
    # Written by the version that kept waiting events as CloudEvent JSON strings.
    episode = Episode.model_validate_json(STORED_BEFORE_TYPED_PENDING.read_text())
    assert [type(e.data) for e in episode.pending] == [MeetingScheduled, MeetingHeld]
    referral = records("care-first", referral_id="REF-STORED-V1")[2]
    episode, steps = feed([referral], episode=episode)
    assert [t.event.type for t in steps[0].transitions] == [
        "uk.nhs.spa.referral.received", "uk.nhs.pod.meeting.scheduled", "uk.nhs.pod.meeting.held"]
    assert episode.pending == () and episode.first_meeting.meeting_id == "MTG-1"


def test_waiting_events_are_stored_as_typed_events_not_json_text():
    episode, _ = feed(records("care-first")[:2])
    stored = json.loads(episode.model_dump_json())["pending"]
    assert [e["type"] for e in stored] == ["uk.nhs.pod.meeting.scheduled", "uk.nhs.pod.meeting.held"]
    assert stored[1]["data"]["meetingId"] == "MTG-1"
    assert Episode.model_validate_json(episode.model_dump_json()).pending == episode.pending


def _at(name: str, event_id: str, **data):
    raw = example(name)
    raw["id"] = event_id
    raw["data"] |= data
    return raw


def test_contact_risk_and_cpa_review_out_of_order_end_as_if_in_order():
    # Earlier and later of each; the episode keeps the earliest contact, the latest risk
    # assessment and the latest CPA review whichever arrives first.
    earlier = [_at("contact-made", "c-1", contactAt="2026-03-29T01:10:00Z"),
               _at("risk-assessed", "r-1", assessedAt="2026-03-29T16:20:00Z", level="low"),
               _at("cpa-review-held", "p-1", heldAt="2026-06-24T23:40:00Z")]
    later = [_at("contact-made", "c-2", contactAt="2026-03-29T05:00:00Z", method="video"),
             _at("risk-assessed", "r-2", assessedAt="2026-03-30T09:00:00Z", level="high"),
             _at("cpa-review-held", "p-2", heldAt="2026-09-24T23:40:00Z")]
    ref = example("referral-received")
    in_order, _ = feed([ref, *earlier, *later])
    reversed_, _ = feed([ref, *later, *earlier])
    for episode in (in_order, reversed_):
        assert episode.first_contact.method == "phone"
        assert episode.first_contact.contactAt.isoformat() == "2026-03-29T01:10:00+00:00"
        assert episode.risk.level == "high"
        assert episode.last_cpa_review.heldAt.isoformat() == "2026-09-24T23:40:00+00:00"
    assert (in_order.first_contact, in_order.risk, in_order.last_cpa_review) == (
        reversed_.first_contact, reversed_.risk, reversed_.last_cpa_review)


@pytest.mark.parametrize("scenario", ["rejected", "withdrawn"])
def test_a_closing_event_gives_the_episode_its_status(scenario):
    episode, _ = feed(records(scenario))
    assert episode.status == scenario


def test_a_referral_sent_again_with_a_new_event_id_keeps_the_episode_status():
    rec = records("on-time")
    again = {**rec[0].value, "id": "resent-referral"}
    episode, steps = feed(rec[:2] + [again])
    assert steps[-1].verdict == "applied" and episode.status == "accepted"


def test_an_out_of_scope_episode_drops_its_waiting_events_and_reads_each_event_once():
    policy = Policy(teams=frozenset({"POD-ELSEWHERE"}))
    care_first = records("care-first")
    episode, steps = feed(care_first[:3], policy)
    assert [s.verdict for s in steps] == ["pending", "pending", "out-of-scope"]
    assert episode.pending == ()
    _, steps = feed([care_first[2], care_first[3], care_first[3]], policy, episode)
    assert [s.verdict for s in steps] == ["duplicate", "out-of-scope", "duplicate"]


def test_an_event_applied_before_and_read_on_a_partition_never_read_is_a_duplicate():
    from podlink.streams.core.episode import Position, apply
    from podlink.streams.core.events import parse_event
    referral = parse_event(records("on-time")[0].value)
    episode = apply(None, referral, Policy(), Position("spa", 0, 5)).episode
    assert apply(episode, referral, Policy(), Position("spa", 1, 0)).verdict == "duplicate"
    assert apply(episode, referral, Policy(), Position("spa", 0, 5)).verdict == "replayed"


def test_ties_keep_the_first_contact_read_and_the_last_risk_and_review_read():
    ref = example("referral-received")
    contacts = [_at("contact-made", "c-1", method="phone"), _at("contact-made", "c-2", method="video")]
    risks = [_at("risk-assessed", "r-1", level="low"), _at("risk-assessed", "r-2", level="high")]
    reviews = [_at("cpa-review-held", "p-1", nextReviewDue=None),
               _at("cpa-review-held", "p-2", nextReviewDue="2027-01-01T00:00:00Z")]
    episode, _ = feed([ref, *contacts, *risks, *reviews])
    assert episode.first_contact.method == "phone" and episode.risk.level == "high"
    assert episode.last_cpa_review.nextReviewDue is not None


def test_each_admission_end_closes_the_latest_admission_still_open():
    ref = example("referral-received")
    started = [_at("admission-started", f"a-{d}", admittedAt=f"2026-04-{d}T10:00:00Z") for d in (10, 12, 14)]
    ended = [_at("admission-ended", f"e-{d}", endedAt=f"2026-04-{d}T10:00:00Z") for d in (15, 16)]
    episode, _ = feed([ref, *started, *ended])
    assert [(a.admitted_at.day, a.ended_at.day if a.ended_at else None) for a in episode.admissions] == [
        (10, None), (12, 16), (14, 15)]


def test_the_episode_keeps_what_each_care_event_says():
    scheduled = example("meeting-scheduled")
    held = _at("meeting-held", "held-elsewhere", location="clinic")
    names = ["referral-received", "meeting-cancelled", "cpa-coordinator-assigned", "measure-recorded"]
    episode, _ = feed([scheduled, held] + [example(n) for n in names])
    meeting = episode.meetings["MTG-1"]
    assert meeting.invited_person_ids == ("NET-1", "NET-2")
    assert meeting.location == "clinic" and meeting.adherence_score == 3.65  # held where it was held
    assert episode.meetings["MTG-3"].cancelled_at.isoformat() == "2026-03-30T23:40:00+00:00"
    assert episode.coordinator_assigned_at.isoformat() == "2026-03-29T23:40:00+00:00"
    assert episode.measures[0].respondent == "service_user"
