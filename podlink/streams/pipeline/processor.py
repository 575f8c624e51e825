"""What one accepted event does: the new episode state and every record it must publish.

Pure: the Faust agent in `app.py` only loads the episode, calls `process`, stores the result
and sends the records.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from podlink.fhir_mappings import DEFAULT_BASE_URL, build_message
from podlink.streams.core.contract import Accepted
from podlink.streams.core.deadlines import FIRST_MEETING, Deadline
from podlink.streams.core.episode import Episode, Policy, Position, Verdict, apply
from podlink.streams.core.outcomes import (
    deadline_outcomes, flag_event, hook_outcomes, new_flags, outcome_events,
)
from podlink.streams.core.pathway import evaluation
from podlink.streams.core.rules import Evaluation, Flag, RuleFailure


@dataclass(frozen=True)
class Watch:
    """What the deadline timer watches for a referral: what may still call for an alert."""

    deadlines: tuple[Deadline, ...] = ()  # open, or ended after their due time (a breach to resolve)
    flags: tuple[Flag, ...] = ()
    closed: bool = False

    @classmethod
    def of(cls, episode: Episode, evaluated: Evaluation) -> Watch:
        kept = tuple(d for d in evaluated.deadlines
                     if d.is_open or (d.ended_at is not None and d.ended_at > d.due_at))
        return cls(kept, evaluated.flags, episode.is_closed)


# What the rules may read of an episode: all but where its records were read.
_ALL_BUT_POSITIONS = tuple(name for name in Episode.model_fields if name != "positions")


@dataclass(frozen=True)
class Known:
    """An episode and its evaluation, already worked out."""

    episode: Episode
    evaluation: Evaluation

    def of(self, episode: Episode) -> Evaluation | None:
        """The evaluation, if `episode` is this one but for where records were read (positions,
        which no rule reads: they are podlink's bookkeeping, not anything that happened)."""
        known = self.episode
        if episode is known:
            return self.evaluation
        for name in _ALL_BUT_POSITIONS:
            mine, theirs = getattr(known, name), getattr(episode, name)
            if mine is not theirs and mine != theirs:
                return None
        return self.evaluation


@dataclass(frozen=True)
class Result:
    episode: Episode
    verdict: Verdict
    deadline: Deadline | None = None  # the first-meeting deadline
    watch: Watch | None = None
    watch_changed: bool = False
    opened: tuple[Deadline, ...] = ()  # deadlines this event started
    fhir_messages: list[dict[str, Any]] = field(default_factory=list)
    outcomes: list[dict[str, Any]] = field(default_factory=list)
    rule_failures: tuple[RuleFailure, ...] = ()
    # The episode the last transition led to, and its evaluation: the next event's "before",
    # once its position is recorded (`known` of `process`).
    evaluated: Known | None = None

    @property
    def stores_episode(self) -> bool:
        """Whether the episode changed: a replay or a duplicate leaves the stored one as it is."""
        return self.verdict in ("applied", "pending", "out-of-scope")


def process(episode: Episode | None, accepted: Accepted, policy: Policy,
            position: Position | None = None, *, fhir_base_url: str = DEFAULT_BASE_URL,
            validate_fhir: bool = True, known: Known | None = None) -> Result:
    """`known`: the evaluation of the episode the previous event led to (`Result.evaluated`),
    so that it is not worked out again; the result is the same with or without it."""
    step = apply(episode, accepted.event, policy, position)
    if not step.transitions:
        return Result(step.episode, step.verdict)
    # A replay carries the transition it repeats: the same outputs, with the same ids, from
    # the state the replayed record led to.
    before = step.transitions[0].before
    first = (known.of(before) if known is not None else None) or evaluation(before, policy)
    previous = first
    messages: list[dict[str, Any]] = []
    outcomes: list[dict[str, Any]] = []
    failures: list[RuleFailure] = []
    for transition in step.transitions:
        current = evaluation(transition.after, policy, since=previous)
        deadline = current.deadline(FIRST_MEETING)
        messages.append(build_message(transition.event, transition.after, deadline, base_url=fhir_base_url,
                                      deadlines=current.deadlines, validate=validate_fhir))
        outcomes.extend(outcome_events(transition, deadline))
        outcomes.extend(deadline_outcomes(previous, current))
        outcomes.extend(flag_event(flag) for flag in new_flags(previous, current))
        outcomes.extend(hook_outcomes(previous, current, transition.after.referral_id))
        failures.extend(f for f in current.failures if f.cause == transition.event.dedup_key)
        previous = current
    watch = Watch.of(step.episode, previous)
    # A referral counts as open from its first deadline on, even one met as it started (care
    # events read before their referral): its entry is what the open-episodes gauge counts.
    first_deadline = not first.deadlines and bool(previous.deadlines)
    was_open = {(d.policy, d.cycle) for d in first.deadlines if d.is_open}
    return Result(
        episode=step.episode,
        verdict=step.verdict,
        deadline=previous.deadline(FIRST_MEETING),
        watch=watch,
        watch_changed=step.verdict == "applied"
        and (first_deadline or watch != Watch.of(step.transitions[0].before, first)),
        opened=tuple(d for d in previous.deadlines if d.is_open and (d.policy, d.cycle) not in was_open)
        if step.verdict == "applied" else (),
        fhir_messages=messages,
        outcomes=outcomes,
        rule_failures=tuple(failures),
        evaluated=Known(step.transitions[-1].after, previous),
    )
