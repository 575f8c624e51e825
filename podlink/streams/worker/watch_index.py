"""Which referrals the deadline timer must look at now: an index of the deadline table by time.

A scan reads only the referrals whose next moment (an at-risk time, a due time, a flag or a
breach to resolve) has come, so its cost follows what falls due, not what is open. The index
holds, per referral, that moment and a few numbers for the gauges; the table holds the rest.
It is rebuilt from the table after each rebalance, a slice at a time, so that a worker with
100,000 referrals never holds the event loop while it reads them.
"""
from __future__ import annotations

import asyncio
import heapq
import time
from collections.abc import Iterable
from datetime import datetime, timezone

from podlink.streams.worker.codecs import DeadlineEntry
from podlink.streams.worker.metrics import Watched

# The rebuild yields to the event loop once it has held it this long: slices of 500 entries
# held it up to 180 ms at a time over 10,000 referrals (measured; 17 ms on average).
REBUILD_HOLD_SECONDS = 0.010


def moments(entry: DeadlineEntry) -> list[datetime]:
    """Every moment at which the entry may call for an alert."""
    watch = entry.watch
    found = [f.at for f in watch.flags]
    for d in watch.deadlines:
        found += [d.at_risk_from, d.due_at] if d.is_open else [d.ended_at or d.due_at]
    return found


def next_moment(entry: DeadlineEntry, after: datetime | None) -> datetime | None:
    """The first moment after `after` (any moment, if None): when to look at the entry next."""
    later = [m for m in moments(entry) if after is None or m > after]
    return min(later) if later else None


def _utc(moment: datetime) -> datetime:
    # A datetime read from JSON by pydantic holds a tzinfo object of its own, which the garbage
    # collector tracks: six per referral made each full collection walk 600,000 more objects at
    # 100,000 referrals, holding the event loop up to 170 ms (measured). datetime's own UTC is
    # one shared object that the collector does not track.
    return moment.astimezone(timezone.utc)


class WatchIndex:
    def __init__(self) -> None:
        self._heap: list[tuple[float, int, bytes]] = []
        self._wake: dict[bytes, float] = {}
        self._watched: dict[bytes, Watched] = {}
        self._serial = 0

    def __len__(self) -> int:
        return len(self._watched)

    def put(self, key: bytes, entry: DeadlineEntry, after: datetime | None = None) -> None:
        """Index `entry` (new, changed or just looked at), waking at its first moment after `after`."""
        self._watched[key] = (entry.watch.closed, tuple((_utc(d.at_risk_from), _utc(d.due_at))
                                                        for d in entry.watch.deadlines if d.is_open))
        moment = next_moment(entry, after)
        if moment is None:
            self._wake.pop(key, None)
            return
        self.wake_at(key, moment.timestamp())

    def wake_at(self, key: bytes, timestamp: float) -> None:
        self._serial += 1
        self._wake[key] = timestamp
        heapq.heappush(self._heap, (timestamp, self._serial, key))

    def forget(self, key: bytes) -> None:
        self._wake.pop(key, None)
        self._watched.pop(key, None)

    def clear(self) -> None:
        self._heap.clear()
        self._wake.clear()
        self._watched.clear()

    def due(self, now: datetime) -> list[bytes]:
        """The referrals whose moment has come; each leaves the index until `put` again."""
        limit = now.timestamp()
        found = []
        while self._heap and self._heap[0][0] <= limit:
            timestamp, _, key = heapq.heappop(self._heap)
            if self._wake.get(key) == timestamp:  # else superseded by a later put
                del self._wake[key]
                found.append(key)
        if len(self._heap) > 4 * max(len(self._wake), 1024):
            self._compact()
        return found

    def watched(self) -> Iterable[Watched]:
        return self._watched.values()

    async def rebuild(self, entries: Iterable[tuple[bytes, DeadlineEntry | None]]) -> int:
        """Index every entry, yielding to the event loop between slices; returns the count."""
        self.clear()
        count = 0
        since = time.monotonic()
        for key, entry in entries:
            if entry is not None:
                self.put(key, entry)
            count += 1
            if time.monotonic() - since >= REBUILD_HOLD_SECONDS:
                await asyncio.sleep(0)
                since = time.monotonic()
        return count

    def _compact(self) -> None:
        # Superseded heap items pile up when entries change often; drop them now and then.
        self._heap = [(t, s, k) for t, s, k in self._heap if self._wake.get(k) == t]
        heapq.heapify(self._heap)
