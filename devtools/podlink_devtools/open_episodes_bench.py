"""`podlink bench --open-episodes N`: what N open episodes cost one worker while it runs.

It loads N open referrals (received an hour ago, accepted, first contact made: the
first-meeting deadline is open and not yet at risk, so no alert fires) into a real worker and
waits until the worker's own /metrics count every record processed and two deadline scans over
all of them. Then it reports what the episodes cost: the worker's resident memory, the size of
its tables' changelogs, how long a deadline scan takes (the first after a start, which parses
every deadline, and later ones) and how long the worker's event loop was held: the worker's
own figure (its loop-lag monitor and full garbage collections' pauses, on its /metrics; the
stalls past 100 ms it logged, with what was running) and, as a check from outside, an upper
bound from the slowest /healthz answer.

The worker logs nothing per scan, and this is a measurement only, so the scan is timed by
running the scan's own code in this process over the worker's RocksDB data once it has stopped
(as `--recovery` does). The /healthz bound is the slowest answer while polling every 10 ms
from the load's start until after those two scans (loop_lag.py): it adds the HTTP round trip
and the poller's own scheduling to the lag. It runs on the broker `--recovery` runs on, for the
same reason.
"""
from __future__ import annotations

import asyncio
import contextlib
import json
import subprocess
import time
import urllib.request
import uuid
from dataclasses import dataclass
from pathlib import Path

from kafka import KafkaAdminClient, KafkaConsumer
from kafka.errors import KafkaError
from prometheus_client.parser import text_string_to_metric_families

from podlink.services.embedded_broker import free_port
from podlink.services.samples import send_records
from podlink.services.topics import ensure_topics
from podlink.streams.worker.settings import Settings
from podlink_devtools import bench, recovery_bench
from podlink_devtools.bench import BenchError, children
from podlink_devtools.brokers import BenchBroker
from podlink_devtools.console import progress
from podlink_devtools.loop_lag import POLL_INTERVAL, HealthzProbe, LoopLag
from podlink_devtools.recovery_bench import SCAN_PASSES, Scan

Samples = list[tuple[str, dict[str, str], float]]

# No new record processed for this long means the worker is stuck, not slow.
STALL_TIMEOUT = 120.0
# Complete deadline scans to wait for once every record is processed: the first may have begun
# before the last records, the second runs over all of them (and is what steady state costs).
SCANS_AFTER_LOAD = 2
METRICS_POLL = 1.0
MIB = 1024 * 1024
# Issue 12's bound on how long the event loop may be held.
LOOP_BOUND_SECONDS = 0.1
# The worker's logged stalls past that bound shown, longest first.
STALLS_SHOWN = 5
# Bounds of the worker's loop-lag histogram buckets shown: how the wakes spread below the bound.
LAG_BOUNDS_SHOWN = (0.01, 0.025, 0.05, LOOP_BOUND_SECONDS)


@dataclass(frozen=True)
class Memory:
    rss: int  # bytes: VmRSS now
    peak: int  # bytes: VmHWM, the highest VmRSS since the process started


@dataclass(frozen=True)
class WorkerCounts:
    """What the worker's /metrics say: records processed, dead letters and the last scan."""

    records: int
    dead_letters: int
    open_episodes: int  # as of the last deadline scan
    scans: int


@dataclass(frozen=True)
class WorkerLoop:
    """How long the worker's event loop was held, by its own /metrics, since it started."""

    longest: float  # seconds: podlink_event_loop_lag_max_seconds
    wakes: int  # the loop-lag monitor's wakes
    within: dict[float, int]  # per bound of LAG_BOUNDS_SHOWN: the wakes no later than it
    full_collections: int
    full_collections_seconds: float  # all of them
    longest_full_collection: float  # seconds

    @property
    def over_bound(self) -> int:
        """Wakes later than LOOP_BOUND_SECONDS."""
        return self.wakes - self.within[LOOP_BOUND_SECONDS]


@dataclass(frozen=True)
class Stall:
    """A stall past the bound, as the worker logged it."""

    seconds: float
    gc_seconds: float  # garbage collections meanwhile
    on_cpu_seconds: float  # CPU time of the loop's thread meanwhile: less means held from outside
    blocked_in: list[str]  # the loop thread's stack sampled during it, innermost first


@dataclass(frozen=True)
class Changelog:
    topic: str
    records: int  # end offsets: every record written, none compacted yet
    size: int | None  # bytes on the broker's disk; None if it does not describe its log dirs


def run_open_episodes_bench(settings: Settings, episodes: int, bootstrap: str | None) -> int:
    return bench.run_on_broker(("--open-episodes", episodes), "kafka", bootstrap, "podlink-open-episodes-",
                               lambda broker, work_dir: _measure(settings, episodes, broker, work_dir))


def _measure(settings: Settings, episodes: int, broker: BenchBroker, work_dir: Path) -> str:
    run_id = uuid.uuid4().hex[:8]
    group = f"podlink-open-{run_id}"
    partitions = ensure_topics(broker.bootstrap, settings.partitions, settings.replication_factor)
    # A new group would otherwise start with every event the topics already hold.
    asyncio.run(bench.start_group_at_end(broker.bootstrap, group))
    records = recovery_bench.open_referrals(f"OPEN-{run_id}", episodes)
    data_dir, log, port = work_dir / "data", work_dir / "worker.log", free_port()
    worker = bench.start_worker(broker.bootstrap, group, data_dir, log, web_port=port, settings=settings)
    try:
        recovery_bench.wait_for_line(log, worker, lambda line: line.get("event") == "tables recovered")
        idle, cpu_before = _memory(worker.pid), sum(bench.process_cpu_seconds(worker.pid))
        with HealthzProbe(port) as probe:
            started = time.monotonic()
            progress(f"loading {episodes} open episodes ({len(records)} events)")
            send_records(broker.bootstrap, records, linger_ms=20)
            counts = _wait_until_processed(port, worker, len(records))
            load_seconds = time.monotonic() - started
            load_cpu = sum(bench.process_cpu_seconds(worker.pid)) - cpu_before
            progress(f"all {counts.records} records processed in {load_seconds:.1f} s; waiting for "
                     f"{SCANS_AFTER_LOAD} deadline scans over them")
            counts = _wait_for_scans(port, worker, counts.scans + SCANS_AFTER_LOAD)
        loaded = _memory(worker.pid)
        loop = _worker_loop(port)
        # Before the stop: stopping closes the stores, which forces a full garbage collection.
        stalls = logged_stalls(log)
    finally:
        bench.stop_worker(worker)
    assert probe.result is not None  # the probe's block ended without an exception
    changelogs = _changelogs(broker.bootstrap, group)
    scan = recovery_bench.scan_deadlines(data_dir)
    return _report(episodes, len(records), partitions, broker.label, load_seconds, load_cpu, counts, idle,
                   loaded, changelogs, scan, probe.result, loop, stalls)


# -- the worker as its process and its /metrics show it ----------------------------------------

def _memory(pid: int) -> Memory:
    """The worker's and its helper's: the peak is the sum of each one's own."""
    fields = {"VmRSS": 0, "VmHWM": 0}
    for process in (pid, *children(pid)):
        with contextlib.suppress(OSError):  # a helper that has just ended
            for line in Path(f"/proc/{process}/status").read_text().splitlines():
                name, _, value = line.partition(":")
                if name in fields:
                    fields[name] += int(value.split()[0]) * 1024  # the kernel reports kB
    return Memory(fields["VmRSS"], fields["VmHWM"])


def _samples(port: int) -> Samples:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=30) as response:
        text = response.read().decode()
    return [(sample.name, sample.labels, sample.value)
            for family in text_string_to_metric_families(text) for sample in family.samples
            if not sample.name.endswith("_created")]  # prometheus_client's creation timestamps


def _totals(samples: Samples) -> dict[str, float]:
    """Each metric summed over its labels."""
    values: dict[str, float] = {}
    for name, _, value in samples:
        values[name] = values.get(name, 0.0) + value
    return values


def _counts(port: int) -> WorkerCounts:
    values = _totals(_samples(port))
    return WorkerCounts(int(values.get("podlink_records_total", 0)),
                        int(values.get("podlink_dead_letters_total", 0)),
                        int(values.get("podlink_open_episodes", 0)),
                        int(values.get("podlink_deadline_scans_total", 0)))


def worker_loop(samples: Samples) -> WorkerLoop:
    """What the worker's loop-lag and gc metrics say."""
    values = _totals(samples)
    buckets = {float(labels["le"]): int(value) for name, labels, value in samples
               if name == "podlink_event_loop_lag_seconds_bucket"}
    if not set(LAG_BOUNDS_SHOWN) <= set(buckets):
        raise BenchError("the worker's /metrics have no podlink_event_loop_lag_seconds buckets at "
                         f"{LAG_BOUNDS_SHOWN} s: is it a podlink without its loop-lag monitor?")
    return WorkerLoop(values["podlink_event_loop_lag_max_seconds"],
                      int(values["podlink_event_loop_lag_seconds_count"]),
                      {bound: buckets[bound] for bound in LAG_BOUNDS_SHOWN},
                      int(values["podlink_gc_full_pause_seconds_count"]),
                      values["podlink_gc_full_pause_seconds_sum"],
                      values["podlink_gc_full_pause_max_seconds"])


def _worker_loop(port: int) -> WorkerLoop:
    return worker_loop(_samples(port))


def logged_stalls(log: Path) -> list[Stall]:
    """The worker's "event loop blocked" lines, longest first."""
    found = []
    for text in log.read_text(errors="replace").splitlines():
        if '"event loop blocked"' not in text:
            continue
        line = json.loads(text)
        found.append(Stall(line["seconds"], line["gc_seconds"], line["on_cpu_seconds"], line["blocked_in"]))
    return sorted(found, key=lambda stall: -stall.seconds)


def _wait_until_processed(port: int, worker: subprocess.Popen[bytes], total: int) -> WorkerCounts:
    """Until the worker has counted `total` records processed: a positive control on the load."""
    last, last_progress = -1, time.monotonic()
    while True:
        if worker.poll() is not None:
            raise BenchError(f"the worker exited with code {worker.returncode} while loading")
        counts = _counts(port)
        if counts.dead_letters:
            raise BenchError(f"{counts.dead_letters} records went to dead letters: the load is not "
                             "what the bench means to measure")
        if counts.records >= total:
            return counts
        if counts.records != last:
            progress(f"loading: {counts.records}/{total} records processed")
            last, last_progress = counts.records, time.monotonic()
        elif time.monotonic() - last_progress > STALL_TIMEOUT:
            raise BenchError(f"no progress for {STALL_TIMEOUT:.0f} s ({counts.records}/{total} records)")
        time.sleep(METRICS_POLL)


def _wait_for_scans(port: int, worker: subprocess.Popen[bytes], scans: int) -> WorkerCounts:
    give_up = time.monotonic() + STALL_TIMEOUT
    while time.monotonic() < give_up:
        if worker.poll() is not None:
            raise BenchError(f"the worker exited with code {worker.returncode} after loading")
        counts = _counts(port)
        if counts.scans >= scans:
            return counts
        time.sleep(METRICS_POLL)
    raise BenchError(f"the worker did not complete {SCANS_AFTER_LOAD} deadline scans in "
                     f"{STALL_TIMEOUT:.0f} s after loading")


# -- what the broker holds: the tables' changelogs ---------------------------------------------

def _changelogs(bootstrap: str, group: str) -> list[Changelog]:
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    try:
        topics = sorted(t for t in consumer.topics() if t.startswith(f"{group}-") and t.endswith("-changelog"))
    finally:
        consumer.close()
    ends = recovery_bench.end_offsets(bootstrap, tuple(topics))
    sizes = _log_dir_sizes(bootstrap, topics)
    return [Changelog(topic, sum(end for tp, end in ends.items() if tp.topic == topic),
                      None if sizes is None else sizes.get(topic, 0))
            for topic in topics]


def _log_dir_sizes(bootstrap: str, topics: list[str]) -> dict[str, int] | None:
    """Bytes per topic on the brokers' disks (DescribeLogDirs); None if the broker will not say."""
    admin = KafkaAdminClient(bootstrap_servers=bootstrap, client_id="podlink-bench")
    try:
        brokers = admin.describe_log_dirs(topic_partitions=topics)
    except KafkaError:
        return None
    finally:
        admin.close()
    sizes: dict[str, int] = {}
    for broker in brokers:
        for log_dir in broker["log_dirs"]:
            for topic in log_dir["topics"]:
                sizes[topic["name"]] = sizes.get(topic["name"], 0) + sum(
                    p["partition_size"] for p in topic["partitions"])
    return sizes


# -- output -------------------------------------------------------------------------------------

def _mib(size: int) -> str:
    return f"{size / MIB:.1f}"


def _mean_ms(total_seconds: float, count: int) -> float:
    return total_seconds * 1000 / count if count else 0.0


def _stall_line(stall: Stall) -> str:
    # The innermost frames say what held the loop; the outer ones are Faust's and asyncio's.
    where = " < ".join(stall.blocked_in[:4]) or "stack not sampled"
    return (f"    {stall.seconds * 1000:.0f} ms (on a CPU {stall.on_cpu_seconds * 1000:.0f} ms, gc "
            f"{stall.gc_seconds * 1000:.0f} ms): {where}")


def _report(episodes: int, events: int, partitions: int, broker: str, load_seconds: float, load_cpu: float,
            counts: WorkerCounts, idle: Memory, loaded: Memory, changelogs: list[Changelog],
            scan: Scan, lag: LoopLag, loop: WorkerLoop, stalls: list[Stall]) -> str:
    records = sum(c.records for c in changelogs)
    sizes = [c.size for c in changelogs]
    size = "n/a" if None in sizes else _mib(sum(s or 0 for s in sizes))
    first_ms, later_ms = scan.first_seconds * 1000, scan.seconds * 1000
    return "\n".join([
        f"podlink bench --open-episodes: {episodes} open episodes ({events} events), {partitions} "
        f"partitions, broker {broker}",
        f"  loaded in {load_seconds:.1f} s ({events / load_seconds:.0f} events/s); the worker counted "
        f"{counts.records} records processed, and its last deadline scan {counts.open_episodes} open "
        f"episodes",
        # Below one core while it always had records waiting: the machine's other work took the rest.
        f"  worker CPU time during the load, its helper's included: {load_cpu:.1f} s in {load_seconds:.1f} s "
        f"({load_cpu / load_seconds:.0%} of one core)",
        # Before the load: the worker's modules (the FHIR models too) and Faust, no episode.
        f"  worker resident memory (VmRSS, its helper's included): {_mib(idle.rss)} MiB before the load, {_mib(loaded.rss)} "
        f"MiB after it (peak {_mib(loaded.peak)} MiB)",
        *(f"  changelog {c.topic}: {c.records} records, "
          f"{'n/a' if c.size is None else _mib(c.size)} MiB" for c in changelogs),
        f"  deadline index over {scan.deadlines} open deadlines of {scan.referrals} referrals (the "
        f"worker's code, run by the bench on its RocksDB data): rebuilt after a start in "
        f"{scan.rebuild_seconds * 1000:.1f} ms, holding the event loop at most "
        f"{scan.longest_hold_seconds * 1000:.1f} ms at a time; first scan {first_ms:.2f} ms, later "
        f"{later_ms:.3f} ms (median of {SCAN_PASSES - 1})",
        f"  event-loop lag, the worker's own (podlink_event_loop_lag_seconds, since its start): "
        f"longest {loop.longest * 1000:.1f} ms; {loop.over_bound} of {loop.wakes} wakes of its "
        f"10 ms monitor later than {LOOP_BOUND_SECONDS * 1000:.0f} ms; {loop.full_collections} full "
        f"garbage collections (mean {_mean_ms(loop.full_collections_seconds, loop.full_collections):.1f} "
        f"ms), the longest {loop.longest_full_collection * 1000:.1f} ms",
        "  wakes of the monitor by lag: " + ", ".join(
            f"{count} within {bound * 1000:.0f} ms"
            for bound, count in sorted(loop.within.items())) + f", of {loop.wakes}",
        f"  stalls over {LOOP_BOUND_SECONDS * 1000:.0f} ms the worker logged (from its start to the "
        f"end of the scans): {len(stalls)}, {sum(s.gc_seconds > s.seconds / 2 for s in stalls)} of them "
        f"mostly garbage collection, {sum(s.on_cpu_seconds < s.seconds / 2 for s in stalls)} with the "
        f"loop's thread on a CPU less than half the time"
        + (f"; the longest {min(len(stalls), STALLS_SHOWN)}, with the garbage collections' share "
           "and the loop thread's CPU time and innermost frames:" if stalls else ""),
        *(_stall_line(stall) for stall in stalls[:STALLS_SHOWN]),
        f"  event-loop lag from outside, upper bound: slowest /healthz answer {lag.max_ms:.1f} ms, "
        f"p99 {lag.p99_ms:.1f} ms, median {lag.median_ms:.1f} ms ({lag.samples} answers polled every "
        f"{POLL_INTERVAL * 1000:.0f} ms during the load and {SCANS_AFTER_LOAD} scans, {lag.failures} "
        f"failed; HTTP round trip and the poller's scheduling included)",
        f"open-episodes: {episodes} episodes, rss {_mib(loaded.rss)} MiB, changelog {records} records "
        f"({size} MiB), first scan {first_ms:.1f} ms, later scans {later_ms:.1f} ms "
        f"(median of {SCAN_PASSES - 1}), max loop lag {loop.longest * 1000:.1f} ms (worker's own; "
        f"/healthz {lag.max_ms:.1f} ms), max full gc pause {loop.longest_full_collection * 1000:.1f} ms",
    ])
