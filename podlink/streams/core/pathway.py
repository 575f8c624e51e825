"""An episode's deadlines and flags under the rules in force (the policy file and hooks)."""
from __future__ import annotations

from podlink.streams.core.deadlines import FIRST_MEETING, Deadline
from podlink.streams.core.episode import Episode, Policy
from podlink.streams.core.rules import Evaluation, evaluate


def evaluation(episode: Episode, policy: Policy, since: Evaluation | None = None) -> Evaluation:
    """`since`: the evaluation of an earlier state of the episode, if known (`evaluate`)."""
    return evaluate(episode, policy.rules, since)


def first_meeting_deadline(episode: Episode, policy: Policy) -> Deadline | None:
    """The first network meeting's deadline, or None while its clock has not started."""
    return evaluation(episode, policy).deadline(FIRST_MEETING)
