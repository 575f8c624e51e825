"""A sorted multiset of timestamps that the garbage collector does not walk.

The deadline index counts open deadlines at risk or breached by a binary search over every
deadline's at-risk and due times: 600,000 of them at 100,000 referrals. Held as float objects
in lists (sortedcontainers' SortedList), a full garbage collection visits each of them, about
10 ms per 300,000 here, and a worker's full collections hold the event loop. Held as doubles
in arrays, there is nothing in them to visit. The layout is SortedList's: sorted chunks of
about CHUNK items, a list of each chunk's largest item to find a chunk by bisection.
"""
from __future__ import annotations

from array import array
from bisect import bisect_left, bisect_right, insort

# Items per chunk: an insert moves at most twice this many doubles; a count sums one length
# per chunk (about 600 at 100,000 referrals).
CHUNK = 1000


class SortedTimes:
    def __init__(self) -> None:
        self._chunks: list[array[float]] = []
        self._maxes: list[float] = []  # the last (largest) item of each chunk
        self._len = 0

    def __len__(self) -> int:
        return self._len

    def add(self, value: float) -> None:
        if not self._chunks:
            self._chunks.append(array("d", [value]))
            self._maxes.append(value)
            self._len = 1
            return
        # The first chunk whose largest item is not smaller; past them all, the last one.
        at = min(bisect_left(self._maxes, value), len(self._chunks) - 1)
        chunk = self._chunks[at]
        insort(chunk, value)
        self._maxes[at] = chunk[-1]
        self._len += 1
        if len(chunk) > 2 * CHUNK:
            self._chunks.insert(at + 1, chunk[CHUNK:])
            del chunk[CHUNK:]
            self._maxes.insert(at, chunk[-1])

    def remove(self, value: float) -> None:
        """Removes one occurrence of `value`; ValueError if there is none."""
        at = bisect_left(self._maxes, value)
        if at < len(self._chunks):
            chunk = self._chunks[at]
            i = bisect_left(chunk, value)
            if i < len(chunk) and chunk[i] == value:
                del chunk[i]
                self._len -= 1
                if chunk:
                    self._maxes[at] = chunk[-1]
                else:
                    del self._chunks[at], self._maxes[at]
                return
        raise ValueError(f"{value} is not in the multiset")

    def count_at_most(self, limit: float) -> int:
        """How many items are at most `limit`."""
        whole = bisect_right(self._maxes, limit)  # chunks every item of which is at most limit
        found = sum(len(chunk) for chunk in self._chunks[:whole])
        if whole < len(self._chunks):
            found += bisect_right(self._chunks[whole], limit)
        return found

    def clear(self) -> None:
        self._chunks.clear()
        self._maxes.clear()
        self._len = 0
