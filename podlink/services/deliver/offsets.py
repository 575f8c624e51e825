"""Which offsets may be committed: only below the first message not yet delivered or
dead-lettered, per partition, so a restart re-reads everything unfinished and loses nothing.

Messages of different referrals in one partition finish out of order (a stuck referral does
not hold the others up), so the committed offset can trail what was sent: a restart then
re-sends some delivered messages, with the same X-Request-Id, which the EPR de-duplicates.
"""
from __future__ import annotations

from collections.abc import Hashable


class OffsetTracker:
    def __init__(self) -> None:
        self._open: dict[Hashable, set[int]] = {}
        self._next: dict[Hashable, int] = {}

    def fetched(self, partition: Hashable, offset: int) -> None:
        self._open.setdefault(partition, set()).add(offset)
        self._next[partition] = max(self._next.get(partition, 0), offset + 1)

    def finished(self, partition: Hashable, offset: int) -> None:
        self._open.get(partition, set()).discard(offset)

    def committable(self) -> dict[Hashable, int]:
        """Per partition: the offset to commit (the next record to read after a restart)."""
        return {p: min(self._open[p]) if self._open.get(p) else nxt for p, nxt in self._next.items()}

    def forget(self, partition: Hashable) -> None:
        """The partition went to another consumer: its messages are no longer ours."""
        self._open.pop(partition, None)
        self._next.pop(partition, None)

    def waiting(self) -> int:
        return sum(len(offsets) for offsets in self._open.values())
