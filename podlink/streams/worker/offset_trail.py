"""Which input records the agent has been given, per partition: so that records the consumer
never delivered are noticed.

Faust drops records it has fetched when its flow stops before they are handed on (a rebalance
beginning, records fetched while tables recover). It means to read them again by seeking
back, but does not always: the first records sent to a partition while a worker recovered
were never handled in `test_scale_out` and in a reproduction (3 of 10 rounds), and Faust's
commit then passed them. A record that arrives past the next offset expected reveals such a
gap; the worker reads the gap directly from the broker and handles it first (app.py).
"""
from __future__ import annotations

from collections.abc import Iterable

from faust.types import TP


class OffsetTrail:
    """Per partition, the offset of the next record the agent should be given."""

    def __init__(self) -> None:
        self._next: dict[TP, int] = {}

    def knows(self, tp: TP) -> bool:
        return tp in self._next

    def start(self, tp: TP, offset: int) -> None:
        """Where reading `tp` starts: the group's committed offset, or the partition's first."""
        self._next[tp] = offset

    def next(self, tp: TP) -> int | None:
        """The offset the agent should be given next on `tp` (None: not started)."""
        return self._next.get(tp)

    def missing(self, tp: TP, offset: int) -> range:
        """The offsets before `offset` that the agent was never given (empty if none): a
        record read again (a replay, a rewind) is behind the trail, not past it."""
        return range(self._next[tp], offset)

    def given(self, tp: TP, offset: int) -> None:
        self._next[tp] = max(self._next[tp], offset + 1)

    def forget(self, tps: Iterable[TP]) -> None:
        """Revoked: whoever holds a partition next starts from what was committed."""
        for tp in tps:
            self._next.pop(tp, None)
