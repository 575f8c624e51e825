"""The deadline timer's index: which referrals a scan reads, and the gauges, without a pass over all."""
from __future__ import annotations

import asyncio
import gc

from podlink.streams.core.deadlines import Deadline
from podlink.streams.pipeline.processor import Watch
from podlink.streams.worker.codecs import DeadlineEntry
from podlink.streams.worker.metrics import DeadlineCounts
from podlink.streams.worker.watch_index import WatchIndex
from tests.support.episodes import T0, hours


def _entry(*due_hours: float, closed: bool = False, met: float | None = None, partition: int = 0) -> DeadlineEntry:
    # Each deadline starts at T0 and is at risk 6 hours before it is due.
    deadlines = tuple(Deadline(referral_id="R", policy=f"p{i}", team_code=None, starts_at=T0,
                               due_at=T0 + hours(h), at_risk_from=T0 + hours(h - 6),
                               met_at=T0 + hours(met) if met is not None else None)
                      for i, h in enumerate(due_hours))
    return DeadlineEntry(partition, Watch(deadlines, (), closed))


def _filled() -> WatchIndex:
    index = WatchIndex()
    index.put(b"a", _entry(24))
    index.put(b"b", _entry())  # nothing open
    index.put(b"c", _entry(24, closed=True))
    index.put(b"d", _entry(24, 48))
    return index


def test_counts_tell_open_referrals_from_deadlines_at_risk_or_breached():
    index = _filled()
    # a, b and d are open; deadlines due at 24 (a, c, d) and 48 (d), each at risk 6 hours before.
    assert index.counts(T0 + hours(1)) == DeadlineCounts(3, 0, 0)
    assert index.counts(T0 + hours(19)) == DeadlineCounts(3, 3, 0)
    assert index.counts(T0 + hours(24)) == DeadlineCounts(3, 0, 3)  # exactly at the due time: breached
    assert index.counts(T0 + hours(43)) == DeadlineCounts(3, 1, 3)


def test_a_changed_or_forgotten_entry_no_longer_counts_what_it_held():
    index = _filled()
    index.put(b"d", _entry(24, 48, met=10))  # both of d's deadlines met
    index.forget(b"a")
    # b and d are open referrals (d's deadlines met); c's deadline is the one breached.
    assert index.counts(T0 + hours(25)) == DeadlineCounts(2, 0, 1)


def test_the_index_tells_the_partition_of_an_entry_and_nothing_of_one_it_does_not_hold():
    index = WatchIndex()
    index.put(b"a", _entry(24, partition=5))
    index.put(b"b", _entry(24, 48, closed=True, partition=0))
    assert (index.partition(b"a"), index.partition(b"b"), index.partition(b"c")) == (5, 0, None)
    index.put(b"a", _entry(24, partition=2))  # the referral's entry read again from elsewhere
    index.forget(b"b")
    assert (index.partition(b"a"), index.partition(b"b")) == (2, None)
    # The partition is not taken for a time: the gauges still count a's deadline and b's none.
    assert index.counts(T0 + hours(24)) == DeadlineCounts(1, 0, 1)


def test_a_referral_is_due_at_each_of_its_moments_once_and_then_at_the_next():
    index = _filled()
    assert index.due(T0 + hours(17)) == []
    assert sorted(index.due(T0 + hours(18))) == [b"a", b"c", b"d"]  # at risk
    assert index.due(T0 + hours(18)) == []  # each leaves the index until put again
    index.put(b"d", _entry(24, 48), after=T0 + hours(18))
    assert index.due(T0 + hours(23)) == [] and index.due(T0 + hours(24)) == [b"d"]


def test_a_superseded_moment_does_not_wake_the_referral():
    index = WatchIndex()
    index.put(b"a", _entry(24))
    index.put(b"a", _entry(48))  # the deadline moved before its at-risk time came
    assert index.due(T0 + hours(18)) == [] and index.due(T0 + hours(42)) == [b"a"]


def test_a_rebuild_yields_to_the_event_loop_and_indexes_every_entry(monkeypatch):
    # Yield after every entry: the longest hold allowed is no time at all.
    monkeypatch.setattr("podlink.streams.worker.watch_index.REBUILD_HOLD_SECONDS", 0.0)
    entries = [(f"k{i}".encode(), _entry(24)) for i in range(1001)] + [(b"gone", None)]
    yields = 0

    async def count_yields() -> None:
        nonlocal yields
        while True:
            await asyncio.sleep(0)
            yields += 1

    async def rebuild() -> int:
        counter = asyncio.create_task(count_yields())
        indexed = await WatchIndex().rebuild(entries)
        counter.cancel()
        return indexed

    assert asyncio.run(rebuild()) == 1002
    # A yield after each of the 1,002 entries, the first of which only starts the counter.
    assert yields >= 1001


def _visits_of_a_full_collection(root: object) -> int:
    """Items a full garbage collection visits among what `root` holds: each tracked
    container's every referent (untracked objects it skips, with all they hold). Classes are
    the code's, not the data's: not followed."""
    seen, stack, visits = {id(root)}, [root], 0
    while stack:
        referents = [r for r in gc.get_referents(stack.pop()) if not isinstance(r, type)]
        visits += len(referents)
        for referent in referents:
            if gc.is_tracked(referent) and id(referent) not in seen:
                seen.add(id(referent))
                stack.append(referent)
    return visits


def test_the_index_gives_a_garbage_collection_no_item_per_deadline_to_walk():
    index = WatchIndex()
    referrals = 3000
    for i in range(referrals):
        # Each referral put twice, as a second event rewrites its entry: same moments.
        index.put(f"R-{i}".encode(), _entry(24 + i / 1000, 48, 72))
        index.put(f"R-{i}".encode(), _entry(24 + i / 1000, 48, 72))
    gc.collect()  # as the worker's next collection would: it untracks what holds only atoms
    assert index.open_deadlines() == 3 * referrals
    # One item per referral is left to visit (its wake-up in the heap), not one per deadline
    # time (6 per referral here) nor per superseded wake-up.
    assert _visits_of_a_full_collection(index) < 1.1 * referrals
