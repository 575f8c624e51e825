"""Building episodes from contract-shaped events, for the unit tests of the pure core and the
pipeline."""
from __future__ import annotations

import copy
from collections.abc import Sequence
from datetime import datetime, timedelta, timezone
from typing import Any

from podlink.services.samples import Record, pathway
from podlink.streams.core.contract import Accepted, read_record
from podlink.streams.core.encoding import json_bytes, utc_text
from podlink.streams.core.episode import Episode, Policy, Position, Step, apply
from podlink.streams.core.events import parse_event
from podlink.streams.pipeline.processor import Result, process

T0 = datetime(2026, 6, 1, 9, 0, tzinfo=timezone.utc)


def feed(records: list[Record] | list[dict[str, Any]], policy: Policy = Policy(),
         episode: Episode | None = None) -> tuple[Episode, list[Step]]:
    steps = []
    for record in records:
        raw = record.value if isinstance(record, Record) else record
        step = apply(episode, parse_event(raw), policy)
        episode = step.episode
        steps.append(step)
    assert episode is not None
    return episode, steps


def accepted(value: dict[str, Any]) -> Accepted:
    """An event as the worker reads it: its bytes through the contract."""
    read = read_record(value["subject"].encode(), json_bytes(value))
    assert isinstance(read, Accepted), read
    return read


def run(records: Sequence[Record | dict[str, Any]], policy: Policy = Policy(), episode: Episode | None = None,
        offsets: Sequence[int] | None = None) -> list[Result]:
    """Every record through the pipeline in turn; `offsets` places them on their input topic."""
    results = []
    for i, record in enumerate(records):
        value = record.value if isinstance(record, Record) else record
        topic = record.topic if isinstance(record, Record) else "input"
        position = Position(topic, 0, offsets[i]) if offsets is not None else None
        result = process(episode, accepted(value), policy, position)
        episode = result.episode
        results.append(result)
    return results


def records(scenario: str, received_at: datetime = T0, referral_id: str = "REF-T-1") -> list[Record]:
    return pathway(referral_id, received_at, scenario)  # type: ignore[arg-type]


def of_type(recs: list[Record], event_type: str) -> list[Record]:
    return [r for r in recs if r.value["type"] == f"uk.nhs.{event_type}"]


def meeting_held_at(start: datetime, referral_id: str = "REF-T-1") -> dict[str, Any]:
    """The sample pathway's first meeting, held at `start` for 90 minutes."""
    value = copy.deepcopy(of_type(records("on-time", referral_id=referral_id), "pod.meeting.held")[0].value)
    value["data"] |= {"start": utc_text(start), "end": utc_text(start + timedelta(minutes=90))}
    return value


def hours(n: float) -> timedelta:
    return timedelta(hours=n)


def policy_from(text: str, teams: frozenset[str] | None = None) -> Policy:
    """The rules of a policy file's text, with podlink's own hooks."""
    from podlink.streams.core.default_rules import BUILTIN_HOOKS, rules_of
    from podlink.streams.core.policy_file import parse_policy_file
    return Policy(teams=teams, rules=rules_of(parse_policy_file(text, "test-policies.yaml"), BUILTIN_HOOKS))


def default_policy_text_with(old: str, new: str) -> str:
    from podlink.streams.core.policy_file import default_policy_text
    text = default_policy_text()
    assert old in text, old
    return text.replace(old, new, 1)


# The first-meeting deadline counted from the first contact, as a trust's policy file may say.
FIRST_CONTACT_START = default_policy_text_with(
    "starts: {event: referral.received, at: receivedAt}\n    met_by: meeting.held",
    "starts: {event: contact.made, at: contactAt}\n    met_by: meeting.held")
