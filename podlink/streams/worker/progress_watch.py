"""Are the records on the worker's partitions reaching the agent? A check for records that
Faust's consumer fetched and dropped with nothing after them to reveal the gap.

Faust drops records it has fetched when its flow stops before they are handed on (around a
rebalance, while tables recover), and its seek back to the committed offset does nothing on a
partition the group never committed (offset_trail.py). A later record on the partition
reveals the gap; with none, the records wait unhandled until one comes. `rebalance_soak` found
this (docs/performance.md, fourth round): after two quick rebalances a worker's consumer was
positioned past all eight records of a partition, its flow, partitions and fetcher active, and
none had reached the agent. Their referrals' deadlines would not be watched, their alerts
never raised.

So the worker looks (app.py): on a partition where nothing was handled for `quiet_seconds`,
it asks the broker whether a record waits at the offset the agent expects next. If one does,
the consumer is sent back to it, to fetch and hand it on again (a record still in the
consumer's hands is then given twice, and the second is a replay). If the same record still
waits `quiet_seconds` later, the consumer is not giving records at all: the worker stops
without committing, to be restarted.
"""
from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping
from typing import Generic, TypeVar

P = TypeVar("P")


class Remedy(enum.Enum):
    READ_AGAIN = "send the consumer back to the waiting record"
    STOP = "stop the worker without committing"


class ProgressWatch(Generic[P]):
    def __init__(self, quiet_seconds: float) -> None:
        self.quiet_seconds = quiet_seconds
        self._waiting: dict[P, tuple[int, float]] = {}  # partition: (offset waiting, sent back at)

    def quiet(self, held: Iterable[P], last_handled: Mapping[P, float | None], watching_since: float,
              now: float) -> list[P]:
        """The partitions held on which no record was handled for `quiet_seconds`, counting
        from `watching_since` (when the worker last became ready: after a rebalance, a
        partition has had no chance to be handled before)."""
        def since(p: P) -> float:
            handled = last_handled.get(p)
            return watching_since if handled is None else max(handled, watching_since)
        quiet = [p for p in held if now - since(p) >= self.quiet_seconds]
        self._waiting = {p: seen for p, seen in self._waiting.items() if p in quiet}
        return quiet

    def remedy(self, p: P, waiting: int | None, now: float) -> Remedy | None:
        """What to do about quiet partition `p`, where the record at offset `waiting` waits
        (None: none does)."""
        if waiting is None:
            self._waiting.pop(p, None)
            return None
        seen = self._waiting.get(p)
        if seen is None or seen[0] != waiting:
            self._waiting[p] = (waiting, now)
            return Remedy.READ_AGAIN
        return Remedy.STOP if now - seen[1] >= self.quiet_seconds else None

    def reset(self) -> None:
        """A rebalance: what was seen waiting may be another worker's to handle now."""
        self._waiting.clear()
