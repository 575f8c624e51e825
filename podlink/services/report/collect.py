"""Each fact once, and only the referrals in scope.

podlink gives the same fact the same event id (a replay after a crash sends it again), so the
first event with an id is kept and later ones are counted as duplicates. A missed deadline is
published again with the same id when it is met late, with different data: keeping the first
counts it once, as missed.
"""
from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime

from podlink.services.report.events import OutcomeEvent


@dataclass(frozen=True)
class Scope:
    """Which referrals to report on: by the team and the `receivedAt` of `referral.registered`
    (`since` inclusive, `until` exclusive)."""
    team: str | None = None
    since: datetime | None = None
    until: datetime | None = None

    def admits(self, team: str, received_at: datetime) -> bool:
        return ((self.team is None or team == self.team)
                and (self.since is None or received_at >= self.since)
                and (self.until is None or received_at < self.until))


@dataclass
class Collected:
    """Outcome events with distinct ids, by kind, in the order read."""
    by_kind: dict[str, list[OutcomeEvent]] = field(default_factory=lambda: defaultdict(list))
    seen: set[str] = field(default_factory=set)
    duplicates: int = 0

    def add(self, event: OutcomeEvent) -> None:
        if event.id in self.seen:
            self.duplicates += 1
            return
        self.seen.add(event.id)
        self.by_kind[event.kind].append(event)


def collect(events: Iterable[OutcomeEvent]) -> Collected:
    collected = Collected()
    for event in events:
        collected.add(event)
    return collected


@dataclass(frozen=True)
class Cohort:
    """The referrals in scope (their `referral.registered` data, `receivedAt` parsed) and their
    other events by kind. A referral with no `referral.registered` is in no scope: its team and
    time are unknown."""
    received_at: dict[str, datetime]
    registered: dict[str, dict]
    events: dict[str, list[OutcomeEvent]]

    def of(self, kind: str) -> list[OutcomeEvent]:
        return self.events.get(kind, [])


def cohort(collected: Collected, scope: Scope) -> Cohort:
    received_at: dict[str, datetime] = {}
    registered: dict[str, dict] = {}
    for event in collected.by_kind.get("referral.registered", []):
        moment = datetime.fromisoformat(event.data["receivedAt"])
        if event.referral_id not in registered and scope.admits(event.data["teamCode"], moment):
            received_at[event.referral_id] = moment
            registered[event.referral_id] = event.data
    events = {kind: [e for e in listed if e.referral_id in registered]
              for kind, listed in collected.by_kind.items() if kind != "referral.registered"}
    return Cohort(received_at, registered, events)
