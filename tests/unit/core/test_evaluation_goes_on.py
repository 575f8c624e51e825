"""An episode evaluated from its previous evaluation (`evaluate(..., since=...)`, as the
pipeline does for every event) has exactly the deadlines, flags, outcomes and failures that
running every rule over its whole timeline gives, and the rules are asked about each
occurrence once when events only extend the timeline."""
from __future__ import annotations

import itertools
from collections.abc import Iterator
from typing import Any

import pytest

from podlink.services.samples import SCENARIOS, pathway
from podlink.streams.core.episode import Episode, Policy, apply
from podlink.streams.core.pathway import evaluation
from podlink.streams.core.rules import Effect, Evaluation, HookInput, RaiseFlag, Rule, reacts_to, reads_episode
from tests.support.episodes import T0, accepted
from tests.unit.core.test_rules import at, ev, received


def chained(values: list[dict[str, Any]], policy: Policy) -> Iterator[tuple[Episode, Evaluation]]:
    """Each state the events lead to, evaluated from the evaluation of the state before."""
    episode: Episode | None = None
    since: Evaluation | None = None
    for value in values:
        step = apply(episode, accepted(value).event, policy)
        for transition in step.transitions:
            since = evaluation(transition.after, policy, since=since)
            yield transition.after, since
        episode = step.episode


def assert_as_if_whole(values: list[dict[str, Any]], policy: Policy) -> Evaluation:
    last = Evaluation()
    for episode, gone_on in chained(values, policy):
        assert gone_on == evaluation(episode, policy)
        last = gone_on
    return last


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_every_sample_pathway_in_every_order_of_its_first_five_events(scenario):
    values = [r.value for r in pathway("REF-T-1", T0, scenario)]
    for order in itertools.islice(itertools.permutations(values[:5]), 40):
        assert_as_if_whole([*order, *values[5:]], Policy())


def test_an_event_read_after_a_later_one_is_evaluated_in_the_order_they_happened():
    # Withdrawn at 11:00 read before the meeting held at 10:00: the meeting met the deadline
    # before the withdrawal cancelled it, so it is met, not cancelled.
    events = [received(), ev("referral-withdrawn", withdrawnAt="2026-06-01T11:00:00Z"),
              ev("meeting-held", meetingId="MTG-1", start="2026-06-01T10:00:00Z", end="2026-06-01T11:00:00Z")]
    last = assert_as_if_whole(events, Policy())
    first_meeting = [d for d in last.deadlines if d.policy == "first-meeting"]
    assert [(d.met_at, d.closed_at) for d in first_meeting] == [(at("2026-06-01T10:00:00Z"), None)]


def test_a_hook_that_reads_the_episode_sees_it_whole_for_earlier_occurrences():
    @reacts_to("referral.received")
    def met_before_anyone_asked(given: HookInput) -> Iterator[Effect]:
        # Reads the meetings (undeclared): what the episode gains later changes its answer
        # about the referral's own occurrence.
        if given.episode.held_meetings:
            yield RaiseFlag("met", "team", "info", given.occurrence.at, given.occurrence.key)

    policy = Policy(rules=(*Policy().rules, Rule("met", met_before_anyone_asked)))
    events = [received(), ev("meeting-held", meetingId="MTG-1", start="2026-06-02T10:00:00Z",
                             end="2026-06-02T11:00:00Z")]
    last = assert_as_if_whole(events, policy)
    assert [f.rule for f in last.flags] == ["met"]


def test_a_hook_declaring_the_fields_it_reads_is_asked_again_when_one_changes():
    @reacts_to("referral.received")
    @reads_episode("meetings")
    def met_before_anyone_asked(given: HookInput) -> Iterator[Effect]:
        if given.episode.held_meetings:
            yield RaiseFlag("met", "team", "info", given.occurrence.at, given.occurrence.key)

    policy = Policy(rules=(*Policy().rules, Rule("met", met_before_anyone_asked)))
    events = [received(), ev("contact-made", contactAt="2026-06-01T10:00:00Z"),
              ev("meeting-held", meetingId="MTG-1", start="2026-06-02T10:00:00Z", end="2026-06-02T11:00:00Z")]
    assert [f.rule for f in assert_as_if_whole(events, policy).flags] == ["met"]


def test_a_referral_received_again_for_another_team_moves_every_deadline_to_it():
    events = [received(), ev("contact-made", contactAt="2026-06-01T10:00:00Z"),
              received(when="2026-06-01T09:00:00Z", referredTo={"teamCode": "POD-THANET", "odsCode": "RXY"})]
    last = assert_as_if_whole(events, Policy())
    assert {d.team_code for d in last.deadlines} == {"POD-THANET"}


def counting(asked: list[str], *types: str) -> Policy:
    """The shipped rules and one that notes each occurrence it is asked about (of `types`
    alone, if given) in `asked`."""
    @reads_episode()
    def count(given: HookInput) -> Iterator[Effect]:
        asked.append(given.occurrence.type)
        return iter(())

    return Policy(rules=(*Policy().rules, Rule("counting", reacts_to(*types)(count) if types else count)))


def test_events_that_only_extend_the_timeline_ask_each_rule_about_each_occurrence_once():
    asked: list[str] = []
    policy = counting(asked)
    # 8 events; the last, a measure recorded at 17h, is read after the meetings of 39h and
    # 63h, so it does not extend the timeline in time: all 8 occurrences are asked about again.
    values = [r.value for r in pathway("REF-T-1", T0, "on-time")]
    list(chained(values, policy))  # every state in turn, each gone on from the one before
    assert len(asked) == 7 * 1 + 8
    asked.clear()
    assert_as_if_whole(values[:7], policy)  # each state gone on from, and evaluated whole
    assert len(asked) == 7 + (1 + 2 + 3 + 4 + 5 + 6 + 7)


def test_an_evaluation_of_another_history_is_not_gone_on_from():
    # The same length plus one, the new occurrence last in time, but an earlier one differs:
    # a meeting at 10:00 met the first-meeting deadline in this history, not a contact.
    contact = ev("contact-made", contactAt="2026-06-01T10:00:00Z")
    meeting = ev("meeting-held", meetingId="MTG-1", start="2026-06-01T10:00:00Z", end="2026-06-01T11:00:00Z")
    later = ev("contact-made", contactAt="2026-06-01T12:00:00Z")
    (_, other), = list(chained([received(), contact], Policy()))[-1:]
    (episode, _), = list(chained([received(), meeting, later], Policy()))[-1:]
    gone_on = evaluation(episode, Policy(), since=other)
    assert gone_on == evaluation(episode, Policy())
    assert [d.met_at for d in gone_on.deadlines if d.policy == "first-meeting"] == [at("2026-06-01T10:00:00Z")]


def test_an_occurrence_no_rule_reacts_to_is_folded_in_wherever_it_falls_in_time():
    asked: list[str] = []
    policy = counting(asked, "meeting.held")
    # The on-time pathway's last event, a measure recorded on day 2 at 02:00, is read after its
    # three meetings (the last two later in time): no rule reacts to a measure, so no meeting
    # is asked about again (each once, not six asks).
    values = [r.value for r in pathway("REF-T-1", T0, "on-time")]
    assert_as_if_whole(values, policy)
    asked.clear()
    list(chained(values, policy))
    assert asked == ["meeting.held"] * 3
