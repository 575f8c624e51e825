"""Which referrals the deadline timer must look at now: an index of the deadline table by time.

A scan reads only the referrals whose next moment (an at-risk time, a due time, a flag or a
breach to resolve) has come, so its cost follows what falls due, not what is open. The index
holds, per referral, that moment and its open deadlines' at-risk and due times (as numbers: a
datetime parsed by pydantic carries a tzinfo object of its own, which the garbage collector
walks at every full collection, 600,000 of them at 100,000 referrals), kept sorted so
that the gauges (how many deadlines are at risk, how many breached) cost a binary search, not a
pass over every deadline; the table holds the rest.
It is rebuilt from the table after each rebalance, yielding to the event loop every 10 ms, so
that a worker with 100,000 referrals never holds it for long while it reads them.
"""
from __future__ import annotations

import asyncio
import heapq
import time
from collections.abc import Iterable
from datetime import datetime

from sortedcontainers import SortedList

from podlink.streams.worker.codecs import DeadlineEntry
from podlink.streams.worker.metrics import DeadlineCounts

# Per referral: whether it is closed, and each open deadline's at-risk and due times.
Watched = tuple[bool, tuple[tuple[float, float], ...]]

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


class WatchIndex:
    def __init__(self) -> None:
        self._heap: list[tuple[float, int, bytes]] = []
        self._wake: dict[bytes, float] = {}
        self._watched: dict[bytes, Watched] = {}
        self._at_risk_from: SortedList = SortedList()
        self._due_at: SortedList = SortedList()
        self._closed = 0
        self._serial = 0

    def __len__(self) -> int:
        return len(self._watched)

    def put(self, key: bytes, entry: DeadlineEntry, after: datetime | None = None) -> None:
        """Index `entry` (new, changed or just looked at), waking at its first moment after `after`."""
        self._unwatch(key)
        watched = (entry.watch.closed, tuple((d.at_risk_from.timestamp(), d.due_at.timestamp())
                                             for d in entry.watch.deadlines if d.is_open))
        self._watched[key] = watched
        self._closed += watched[0]
        for at_risk_from, due_at in watched[1]:
            self._at_risk_from.add(at_risk_from)
            self._due_at.add(due_at)
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
        self._unwatch(key)

    def clear(self) -> None:
        self._heap.clear()
        self._wake.clear()
        self._watched.clear()
        self._at_risk_from.clear()
        self._due_at.clear()
        self._closed = 0

    def counts(self, now: datetime) -> DeadlineCounts:
        """Referrals not closed, and open deadlines at risk or past due at `now`."""
        limit = now.timestamp()
        breached = self._due_at.bisect_right(limit)
        # Every deadline is at risk no later than it is due, so those past their at-risk time
        # are the ones at risk and the ones breached.
        at_risk = self._at_risk_from.bisect_right(limit) - breached
        return DeadlineCounts(len(self._watched) - self._closed, at_risk, breached)

    def open_deadlines(self) -> int:
        return len(self._due_at)

    def _unwatch(self, key: bytes) -> None:
        old = self._watched.pop(key, None)
        if old is None:
            return
        self._closed -= old[0]
        for at_risk_from, due_at in old[1]:
            self._at_risk_from.remove(at_risk_from)
            self._due_at.remove(due_at)

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
