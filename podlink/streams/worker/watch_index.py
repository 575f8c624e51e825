"""Which referrals the deadline timer must look at now: an index of the deadline table by time.

A scan reads only the referrals whose next moment (an at-risk time, a due time, a flag or a
breach to resolve) has come, so its cost follows what falls due, not what is open. The index
holds, per referral, that moment and its open deadlines' at-risk and due times, kept sorted so
that the gauges (how many deadlines are at risk, how many breached) cost a binary search, not a
pass over every deadline; the table holds the rest.

It holds them in as few Python objects as it can, none of which a garbage collection has to
walk: times as doubles in arrays, not datetimes (pydantic gives each one a tzinfo object of its
own) nor float objects in lists (a full collection visits every item of a list: 600,000
at-risk and due times at 100,000 referrals, 20 ms and more, holding the event loop). The dicts
hold only bytes and floats, which Python does not track (an array it does), so a collection
skips them and all they hold.
It is rebuilt from the table after each rebalance, yielding to the event loop every 10 ms, so
that a worker with 100,000 referrals never holds it for long while it reads them.
"""
from __future__ import annotations

import asyncio
import heapq
import time
from collections.abc import Iterable
from datetime import datetime

from array import array

from podlink.streams.worker.codecs import DeadlineEntry
from podlink.streams.worker.metrics import DeadlineCounts
from podlink.streams.worker.sorted_times import SortedTimes

# Per referral, as the bytes of doubles: 1.0 if it is closed (else 0.0), the input partition
# it was read from, then each open deadline's at-risk and due times.
Watched = bytes

_TIMES = 2  # where the times begin in Watched

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
        self._at_risk_from = SortedTimes()
        self._due_at = SortedTimes()
        self._closed = 0
        self._serial = 0

    def __len__(self) -> int:
        return len(self._watched)

    def put(self, key: bytes, entry: DeadlineEntry, after: datetime | None = None) -> None:
        """Index `entry` (new, changed or just looked at), waking at its first moment after `after`."""
        self._unwatch(key)
        times = array("d", [1.0 if entry.watch.closed else 0.0, float(entry.partition)])
        for d in entry.watch.deadlines:
            if d.is_open:
                times.extend((d.at_risk_from.timestamp(), d.due_at.timestamp()))
        self._watched[key] = times.tobytes()
        self._closed += entry.watch.closed
        for i in range(_TIMES, len(times), 2):
            self._at_risk_from.add(times[i])
            self._due_at.add(times[i + 1])
        moment = next_moment(entry, after)
        if moment is None:
            self._wake.pop(key, None)
            return
        self.wake_at(key, moment.timestamp())

    def wake_at(self, key: bytes, timestamp: float) -> None:
        if self._wake.get(key) == timestamp:
            return  # its item in the heap stands: another would only wait there to be skipped
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
        breached = self._due_at.count_at_most(limit)
        # Every deadline is at risk no later than it is due, so those past their at-risk time
        # are the ones at risk and the ones breached.
        at_risk = self._at_risk_from.count_at_most(limit) - breached
        return DeadlineCounts(len(self._watched) - self._closed, at_risk, breached)

    def partition(self, key: bytes) -> int | None:
        """The input partition the referral's entry came from, if it is indexed: whether the
        scan may raise its alerts is known without reading the entry from the table."""
        watched = self._watched.get(key)
        return None if watched is None else int(memoryview(watched).cast("d")[1])

    def open_deadlines(self) -> int:
        return len(self._due_at)

    def _unwatch(self, key: bytes) -> None:
        watched = self._watched.pop(key, None)
        if watched is None:
            return
        old = memoryview(watched).cast("d")
        self._closed -= old[0] == 1.0
        for i in range(_TIMES, len(old), 2):
            self._at_risk_from.remove(old[i])
            self._due_at.remove(old[i + 1])

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
