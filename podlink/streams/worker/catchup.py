"""Has a worker read everything that was on a partition? Decides when alerts may page people.

A worker replaying a backlog must not page anyone for a deadline that a later record in the
backlog meets or stops, so an alert waits until the worker has processed every record that was
on the referral's input partitions when it looked.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Hashable


@dataclass
class PartitionProgress:
    """What the worker knows of its progress on one input partition."""

    processed_next: int | None = None  # offset after the last record processed here
    last_read_at: float | None = None  # monotonic time of that record
    # Set once the broker answered an end offset below a record we had already processed:
    # Tansu reports the first offset of the last batch plus one, so its end offsets can't be
    # trusted and quiet time has to stand in for them.
    end_offsets_unreliable: bool = False


@dataclass
class CatchUp:
    quiet_seconds: float
    progress: dict[Hashable, PartitionProgress] = field(default_factory=dict)

    def processed(self, tp: Hashable, offset: int, at: float) -> None:
        state = self.progress.setdefault(tp, PartitionProgress())
        state.processed_next = offset + 1
        state.last_read_at = at

    def last_handled(self, tp: Hashable) -> float | None:
        """The monotonic time the last record of `tp` was processed here (None: none yet)."""
        state = self.progress.get(tp)
        return state.last_read_at if state else None

    def forget(self, tp: Hashable) -> None:
        # After a rebalance another worker may have moved the partition on.
        self.progress.pop(tp, None)

    def position(self, tp: Hashable, committed: int | None) -> int | None:
        """The next offset to process: after the last one processed, else the group's commit."""
        state = self.progress.get(tp)
        return state.processed_next if state and state.processed_next is not None else committed

    def caught_up(self, tp: Hashable, end_offset: int, committed: int | None, now: float) -> bool:
        """Whether every record before `end_offset` (the broker's answer just now) was processed."""
        state = self.progress.setdefault(tp, PartitionProgress())
        position = self.position(tp, committed)
        if position is None:
            return end_offset == 0
        if position > end_offset:
            state.end_offsets_unreliable = True
        if position < end_offset:
            return False
        if state.end_offsets_unreliable and state.last_read_at is not None:
            return now - state.last_read_at >= self.quiet_seconds
        return True
