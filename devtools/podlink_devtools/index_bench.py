"""`python -m podlink_devtools.index_bench N`: the worker's deadline index at N referrals, no broker.

Builds N deadline-table entries as the worker stores them (three open deadlines each, as an
accepted CPA referral has under the shipped policies; one referral in 1,000 with a fourth
deadline already past due), then times the worker's own code: the index rebuilt after a start
(and the longest it held the event loop), the first scan and later ones, and the gauges.
It isolates what `podlink bench --recovery` measures after loading a broker, at sizes that
would take that bench too long to load.
"""
from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from datetime import datetime, timedelta, timezone

from podlink.streams.core.deadlines import Deadline, due_alerts
from podlink.streams.pipeline.processor import Watch
from podlink.streams.worker.codecs import DEADLINE_ENTRY, DeadlineEntry
from podlink.streams.worker.watch_index import WatchIndex
from podlink_devtools.recovery_bench import SCAN_PASSES, rebuild_timed

POLICIES = (("first-meeting", 24, 6), ("risk-assessment", 24, 4), ("cpa-coordinator", 168, 48))


def table(referrals: int, now: datetime) -> dict[bytes, bytes]:
    entries = {}
    for i in range(referrals):
        start = now - timedelta(hours=1, seconds=i % 3600)
        deadlines = tuple(Deadline(referral_id=f"R-{i}", policy=policy, team_code="T", starts_at=start,
                                   due_at=start + timedelta(hours=due), at_risk_from=start + timedelta(hours=due - warn))
                          for policy, due, warn in POLICIES)
        if i % 1000 == 0:
            deadlines += (Deadline(referral_id=f"R-{i}", policy="risk-review", team_code="T",
                                   starts_at=start - timedelta(days=8), due_at=start - timedelta(days=1),
                                   at_risk_from=start - timedelta(days=2)),)
        entries[f"R-{i}".encode()] = DEADLINE_ENTRY.encode(DeadlineEntry(i % 6, Watch(deadlines, (), False)))
    return entries


def measure(referrals: int) -> str:
    stored = table(referrals, datetime.now(timezone.utc))
    index = WatchIndex()
    indexed, rebuild, hold = asyncio.run(rebuild_timed(index, stored))
    scans = []
    for _ in range(SCAN_PASSES):
        started = time.perf_counter()
        now = datetime.now(timezone.utc)
        due = index.due(now)
        for key in due:
            entry = DEADLINE_ENTRY.decode(stored[key])
            for deadline in entry.watch.deadlines:
                due_alerts(deadline, frozenset(), now)
            index.put(key, entry, after=now)
        scans.append((time.perf_counter() - started, len(due)))
    started = time.perf_counter()
    counts = index.counts(datetime.now(timezone.utc))
    gauges = time.perf_counter() - started
    return (f"index-bench: {indexed} referrals, {index.open_deadlines()} open deadlines: rebuild {rebuild * 1000:.0f} ms, "
            f"longest hold of the event loop {hold * 1000:.1f} ms; first scan {scans[0][0] * 1000:.2f} ms "
            f"({scans[0][1]} referrals due), later {statistics.median(s for s, _ in scans[1:]) * 1000:.3f} ms; "
            f"gauges {gauges * 1000:.3f} ms ({counts.breached} breached)")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m podlink_devtools.index_bench")
    parser.add_argument("referrals", type=int)
    print(measure(parser.parse_args(argv).referrals))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
