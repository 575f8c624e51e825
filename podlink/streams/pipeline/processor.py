"""What one accepted event does: the new episode state and every record it must publish.

Pure: the Faust agent in `app.py` only loads the episode, calls `process`, stores the result
and sends the records.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from podlink.fhir_mappings import DEFAULT_BASE_URL, build_message
from podlink.streams.core.contract import Accepted
from podlink.streams.core.deadlines import Deadline, first_meeting_deadline
from podlink.streams.core.episode import Episode, Policy, Position, Verdict, apply
from podlink.streams.core.outcomes import outcome_events


@dataclass(frozen=True)
class Result:
    episode: Episode
    verdict: Verdict
    deadline: Deadline | None = None
    deadline_changed: bool = False
    fhir_messages: list[dict[str, Any]] = field(default_factory=list)
    outcomes: list[dict[str, Any]] = field(default_factory=list)

    @property
    def stores_episode(self) -> bool:
        """Whether the episode changed: a replay or a duplicate leaves the stored one as it is."""
        return self.verdict in ("applied", "pending", "out-of-scope")


def process(episode: Episode | None, accepted: Accepted, policy: Policy,
            position: Position | None = None, *, fhir_base_url: str = DEFAULT_BASE_URL) -> Result:
    step = apply(episode, accepted.event, policy, position)
    if not step.transitions:
        return Result(step.episode, step.verdict)
    # A replay carries the transition it repeats: the same outputs, with the same ids, from
    # the state the replayed record led to.
    deadline: Deadline | None = None
    messages: list[dict[str, Any]] = []
    outcomes: list[dict[str, Any]] = []
    for transition in step.transitions:
        deadline = first_meeting_deadline(transition.after, policy)
        messages.append(build_message(transition.event, transition.after, deadline, base_url=fhir_base_url))
        outcomes.extend(outcome_events(transition, deadline))
    before = first_meeting_deadline(step.transitions[0].before, policy)
    return Result(
        episode=step.episode,
        verdict=step.verdict,
        deadline=deadline,
        deadline_changed=step.verdict == "applied" and deadline != before,
        fhir_messages=messages,
        outcomes=outcomes,
    )
