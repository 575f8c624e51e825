"""Building episodes from contract-shaped events, for the unit tests of the pure core."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

from podlink.services.samples import Record, pathway
from podlink.streams.core.episode import Episode, Policy, Step, apply
from podlink.streams.core.events import parse_event

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


def records(scenario: str, received_at: datetime = T0, referral_id: str = "REF-T-1") -> list[Record]:
    return pathway(referral_id, received_at, scenario)  # type: ignore[arg-type]


def hours(n: float) -> timedelta:
    return timedelta(hours=n)
