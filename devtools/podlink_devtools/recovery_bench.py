"""`podlink bench --recovery N`: what a restart costs a worker holding N open episodes.

It loads N open referrals (received, accepted, first contact made: the first-meeting deadline
is open) into a real worker, stops it, and restarts it twice: with its RocksDB data directory
kept (warm) and emptied (cold: every table is read back from its changelog). Each restart is
timed from starting the process until it has processed a sentinel referral sent right after
the start, and the worker's own "tables recovered" log line says how many changelog records
recovery read. Last, it times the worker's deadline index and scans over the table: the
index rebuilt after a start (and the longest it holds the event loop), the first scan and later
ones.

Apache Kafka (the jar broker) unless --bootstrap is given: Tansu under-reports end offsets,
which Faust's recovery takes for a corrupt store.
"""
from __future__ import annotations

import asyncio
import json
import shutil
import statistics
import subprocess
import time
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from faust.stores.rocksdb import Store
from kafka import KafkaAdminClient, KafkaConsumer, TopicPartition
from kafka.errors import KafkaError
from rocksdict import AccessType, Options, Rdict

from podlink.services.samples import Record, pathway, send_records
from podlink.services.topics import ensure_topics
from podlink.streams.core.deadlines import due_alerts
from podlink.streams.worker.codecs import DEADLINE_ENTRY
from podlink.streams.worker.watch_index import WatchIndex
from podlink.streams.worker.settings import INPUT_TOPICS, Settings
from podlink_devtools.bench import (
    BenchError,
    run_on_broker,
    start_group_at_end,
    start_worker,
    stop_worker,
)
from podlink_devtools.console import progress

TABLES = ("episodes", "deadlines")
# No load progress for this long means the worker is stuck, not slow.
STALL_TIMEOUT = 120.0
# A cold restart reads every changelog record back: allow for a slow, shared machine.
SERVE_TIMEOUT = 900.0
SCAN_PASSES = 5


@dataclass(frozen=True)
class Restart:
    label: str
    changelog_total: int  # records in the tables' changelogs when the worker started
    serve_seconds: float  # from starting the process until it processed the sentinel
    recovery_seconds: float  # the worker's own figure: partitions assigned to tables recovered
    changelog_records: int  # what recovery read, as the worker logged it


@dataclass(frozen=True)
class Scan:
    deadlines: int  # open deadlines in the table
    referrals: int  # entries the index was rebuilt from
    rebuild_seconds: float  # the index rebuilt from the table, as after a start or a rebalance
    longest_hold_seconds: float  # the longest the rebuild held the event loop between yields
    first_seconds: float  # the first scan after the rebuild: every referral whose moment has come
    seconds: float  # median of the later scans


def run_recovery_bench(settings: Settings, episodes: int, bootstrap: str | None) -> int:
    return run_on_broker(("--recovery", episodes), "kafka", bootstrap, "podlink-recovery-",
                         lambda broker, work_dir: _measure(settings, episodes, broker.bootstrap,
                                                           broker.label, work_dir))


def _measure(settings: Settings, episodes: int, bootstrap: str, broker: str, work_dir: Path) -> str:
    run_id = uuid.uuid4().hex[:8]
    group = f"podlink-recovery-{run_id}"
    partitions = ensure_topics(bootstrap, settings.partitions, settings.replication_factor)
    # A new group would otherwise start with every event the topics already hold.
    asyncio.run(start_group_at_end(bootstrap, group))
    data_dir = work_dir / "data"
    records = open_referrals(f"RECOVERY-{run_id}", episodes)
    load_log = work_dir / "1-load.log"
    worker = start_worker(bootstrap, group, data_dir, load_log)
    try:
        wait_for_line(load_log, worker, lambda line: line.get("event") == "tables recovered")
        progress(f"loading {episodes} open episodes ({len(records)} events)")
        send_records(bootstrap, records, linger_ms=20)
        _wait_until_processed(bootstrap, group, worker)
    finally:
        stop_worker(worker)
    warm = _restart("warm", bootstrap, group, data_dir, work_dir / "2-warm.log", run_id)
    shutil.rmtree(data_dir)
    cold = _restart("cold", bootstrap, group, data_dir, work_dir / "3-cold.log", run_id)
    scan = scan_deadlines(data_dir)
    return _report(episodes, len(records), partitions, broker, warm, cold, scan)


def open_referrals(prefix: str, episodes: int) -> list[Record]:
    # Received an hour ago: the deadline is open and comes at risk only 17 hours later, so
    # no alert is raised while the bench runs.
    received = datetime.now(timezone.utc) - timedelta(hours=1)
    return [r for i in range(episodes) for r in pathway(f"{prefix}-{i:06d}", received, "at-risk", n=i)]


# -- what the broker says: input read and committed, changelog sizes ---------------------------

def end_offsets(bootstrap: str, topics: tuple[str, ...]) -> dict[TopicPartition, int]:
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False,
                             allow_auto_create_topics=False)
    try:
        tps = [TopicPartition(t, p) for t in topics for p in consumer.partitions_for_topic(t) or ()]
        return consumer.end_offsets(tps) if tps else {}
    finally:
        consumer.close()


def _committed(bootstrap: str, group: str) -> dict[TopicPartition, int]:
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        return {tp: meta.offset for tp, meta in admin.list_group_offsets(group)[group].items()}
    except KafkaError as exc:
        if exc.retriable:  # e.g. the group's coordinator is still loading: none committed yet
            return {}
        raise
    finally:
        admin.close()


def _wait_until_processed(bootstrap: str, group: str, worker: subprocess.Popen[bytes]) -> None:
    """Until the group has committed every input record: the worker processed them all."""
    ends = end_offsets(bootstrap, INPUT_TOPICS)
    total = sum(ends.values())
    done, last_progress, last_done = 0, time.monotonic(), -1
    while done < total:
        if worker.poll() is not None:
            raise BenchError(f"the worker exited with code {worker.returncode} while loading")
        committed = _committed(bootstrap, group)
        done = sum(min(committed.get(tp, 0), end) for tp, end in ends.items())
        if done != last_done:
            progress(f"loading: {done}/{total} input records processed and committed")
            last_done, last_progress = done, time.monotonic()
        elif time.monotonic() - last_progress > STALL_TIMEOUT:
            raise BenchError(f"no progress for {STALL_TIMEOUT:.0f} s ({done}/{total} records)")
        time.sleep(2.0)


def _changelog_total(bootstrap: str, group: str) -> int:
    return sum(end_offsets(bootstrap, tuple(f"{group}-{t}-changelog" for t in TABLES)).values())


# -- a restart, timed until the worker serves again --------------------------------------------

def _restart(label: str, bootstrap: str, group: str, data_dir: Path, log: Path, run_id: str) -> Restart:
    total = _changelog_total(bootstrap, group)
    sentinel = f"RECOVERY-{run_id}-SENTINEL-{label.upper()}"
    progress(f"{label} restart: {total} changelog records")
    started = time.time()
    worker = start_worker(bootstrap, group, data_dir, log, record_lines=True)
    try:
        send_records(bootstrap, pathway(sentinel, datetime.now(timezone.utc), "at-risk")[:1])
        served = wait_for_line(log, worker, lambda line: line.get("event") == "record"
                                and line.get("referral") == sentinel)
    finally:
        stop_worker(worker)
    recovered = [line for line in _log_lines(log) if line.get("event") == "tables recovered"]
    if not recovered:
        raise BenchError(f"{label} restart: the worker never logged that its tables were recovered")
    restart = Restart(
        label, total, _timestamp(served) - started,
        recovery_seconds=sum(line["seconds"] for line in recovered),
        changelog_records=sum(line["changelog_records"] for line in recovered),
    )
    progress(f"{label} restart: serving after {restart.serve_seconds:.1f} s, "
             f"recovery read {restart.changelog_records} changelog records")
    return restart


def wait_for_line(log: Path, worker: subprocess.Popen[bytes], predicate: Any) -> dict[str, Any]:
    give_up = time.monotonic() + SERVE_TIMEOUT
    while time.monotonic() < give_up:
        if worker.poll() is not None:
            raise BenchError(f"the worker exited with code {worker.returncode} ({log})")
        for line in _log_lines(log):
            if predicate(line):
                return line
        time.sleep(0.1)
    raise BenchError(f"the worker did not serve within {SERVE_TIMEOUT:.0f} s ({log})")


def _log_lines(log: Path) -> list[dict[str, Any]]:
    lines = []
    for text in log.read_text(errors="replace").splitlines():
        if text.startswith("{"):
            try:
                lines.append(json.loads(text))
            except ValueError:
                continue  # a line still being written
    return lines


def _timestamp(line: dict[str, Any]) -> float:
    return datetime.fromisoformat(line["timestamp"]).timestamp()


# -- one deadline scan over the table the cold restart rebuilt ---------------------------------

def scan_deadlines(data_dir: Path) -> Scan:
    """Time the worker's own index and scan code over the worker's RocksDB deadline table.

    Faust keeps one RocksDB per table partition; these are read as the worker reads them, with
    the worker stopped. The rebuild runs on an event loop beside a task that measures how long
    the loop was held between two of its yields.
    """
    paths = sorted(data_dir.glob("**/deadlines-*.db"))
    if not paths:
        raise BenchError(f"no deadline table under {data_dir}")
    dbs = [Rdict(str(p), Options(raw_mode=True), access_type=AccessType.read_only()) for p in paths]
    try:
        table = {bytes(key): bytes(value) for db in dbs for key, value in db.items() if key != Store.offset_key}
    finally:
        for db in dbs:
            db.close()
    index = WatchIndex()
    referrals, rebuild, hold = asyncio.run(rebuild_timed(index, table))
    open_deadlines = index.open_deadlines()
    times = []
    for _ in range(SCAN_PASSES):
        started = time.perf_counter()
        now = datetime.now(timezone.utc)
        for key in index.due(now):
            entry = DEADLINE_ENTRY.decode(table[key])
            for deadline in entry.watch.deadlines:
                due_alerts(deadline, frozenset(), now)
            index.put(key, entry, after=now)
        times.append(time.perf_counter() - started)
    return Scan(open_deadlines, referrals, rebuild, hold, times[0], statistics.median(times[1:]))


async def rebuild_timed(index: WatchIndex, table: dict[bytes, bytes]) -> tuple[int, float, float]:
    """Rebuild `index` from `table`: entries indexed, seconds, longest hold of the event loop."""
    held = 0.0
    done = asyncio.Event()

    async def probe() -> None:
        nonlocal held
        while not done.is_set():
            before = time.perf_counter()
            await asyncio.sleep(0)
            held = max(held, time.perf_counter() - before)

    watcher = asyncio.create_task(probe())
    started = time.perf_counter()
    count = await index.rebuild((key, DEADLINE_ENTRY.decode(value)) for key, value in table.items())
    seconds = time.perf_counter() - started
    done.set()
    await watcher
    return count, seconds, held


# -- output -------------------------------------------------------------------------------------

def _report(episodes: int, events: int, partitions: int, broker: str, warm: Restart, cold: Restart,
            scan: Scan) -> str:
    ratio = cold.serve_seconds / warm.serve_seconds
    return "\n".join([
        f"podlink bench --recovery: {episodes} open episodes ({events} events), {partitions} "
        f"partitions, broker {broker}",
        *(f"  {r.label} restart ({'RocksDB kept' if r.label == 'warm' else 'data directory empty'}): "
          f"serving again after {r.serve_seconds:.2f} s; recovery read {r.changelog_records} of "
          f"{r.changelog_total} changelog records in {r.recovery_seconds:.2f} s"
          for r in (warm, cold)),
        f"  deadline index over {scan.deadlines} open deadlines of {scan.referrals} referrals: rebuilt "
        f"after a start in {scan.rebuild_seconds * 1000:.1f} ms, holding the event loop at most "
        f"{scan.longest_hold_seconds * 1000:.1f} ms at a time; first scan {scan.first_seconds * 1000:.2f} ms, "
        f"later scans {scan.seconds * 1000:.3f} ms (median of {SCAN_PASSES - 1})",
        f"recovery: {episodes} episodes, warm {warm.serve_seconds:.2f} s ({warm.changelog_records} "
        f"changelog records), cold {cold.serve_seconds:.2f} s ({cold.changelog_records} changelog "
        f"records), cold/warm {ratio:.2f}, deadline scan {scan.seconds * 1000:.1f} ms",
    ])
