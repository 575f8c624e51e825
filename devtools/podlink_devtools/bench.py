"""`podlink bench`: a real worker's throughput and latency, against a ceiling from the same run.

The ceiling is plain aiokafka consuming the same records and producing them unchanged, on the
same broker and machine, so the ratio isolates what podlink's processing costs wherever it runs.
Each input event's FHIR message is recognised by its Bundle id, which is derived from the
event's source and id.
"""
from __future__ import annotations

import asyncio
import contextlib
import json
import math
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from contextlib import AsyncExitStack
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.errors import KafkaError as AioKafkaError
from kafka.admin import KafkaAdminClient, NewTopic
from kafka.errors import KafkaError

from podlink.fhir_mappings.resource_ids import bundle_id
from podlink.services.embedded_broker import BrokerStartError, free_port, log_tail
from podlink.services.samples import stream
from podlink.services.topics import TopicLayoutError, ensure_topics
from podlink.streams.worker.settings import FHIR_TOPIC, INPUT_TOPICS, Settings
from podlink_devtools.brokers import BenchBroker, BrokerKind, bench_broker
from podlink_devtools.console import progress
from podlink_devtools.worker_process import launch, stop, worker_environment

# On-time pathways from long ago: each meets its deadline within its own burst of events, and
# nothing is left open for the deadline timer to alert on.
RECEIVED_AT = datetime(2020, 1, 6, 9, 0, tzinfo=timezone.utc)
# Worker start-up, Tansu's group join (half the 6 s session timeout) and the warm-up pathway.
JOIN_TIMEOUT = 120.0
# No new FHIR message for this long means the worker is stuck, not slow.
STALL_TIMEOUT = 60.0
WORKER_STOP_GRACE = 30.0
# The ceiling is the best of a few passes: one pass takes well under a second, short enough for
# a neighbour's CPU burst to halve it.
CEILING_PASSES = 3
# Saturation latency is mostly time spent queued; half the measured rate shows processing.
PACED_SHARE = 0.5
PACED_SECONDS = 5.0


class BenchError(RuntimeError):
    """The bench cannot produce a figure: the worker died, stalled or never joined."""


@dataclass(frozen=True)
class BenchRecord:
    topic: str
    key: bytes
    value: bytes
    bundle_id: str


@dataclass(frozen=True)
class Ceiling:
    load_rate: float
    forward_rate: float


@dataclass
class Collector:
    """One phase's input events and the FHIR messages seen for them, matched by Bundle id."""

    label: str
    total: int
    sent_ms: dict[str, int] = field(default_factory=dict)
    latencies_ms: list[float] = field(default_factory=list)
    seen: set[str] = field(default_factory=set)
    last_ms: int = 0

    def expect(self, bundle_id: str, timestamp_ms: int) -> None:
        self.sent_ms[bundle_id] = timestamp_ms

    def receive(self, bundle_id: str, timestamp_ms: int) -> bool:
        sent = self.sent_ms.get(bundle_id)
        # Other phases' bundles and redelivered duplicates (at-least-once) are not new answers.
        if sent is None or bundle_id in self.seen:
            return False
        self.seen.add(bundle_id)
        self.latencies_ms.append(float(timestamp_ms - sent))
        self.last_ms = max(self.last_ms, timestamp_ms)
        return True

    @property
    def done(self) -> bool:
        return len(self.seen) >= self.total


@dataclass(frozen=True)
class Phase:
    events: int
    rate: float  # end to end: first input record to last FHIR message
    sent_rate: float
    p50_ms: float
    p99_ms: float
    # The worker's CPU time (user, system) over the phase, per event: unlike the rates, hardly
    # moved by what else runs on the machine.
    cpu_us: tuple[float, float] = (0.0, 0.0)


def run_bench(settings: Settings, pathways: int, broker_kind: BrokerKind, bootstrap: str | None) -> int:
    return run_on_broker(("--pathways", pathways), broker_kind, bootstrap, "podlink-bench-",
                         lambda broker, work_dir: _measure(settings, pathways, broker, work_dir))


def run_on_broker(size: tuple[str, int], kind: BrokerKind, bootstrap: str | None, prefix: str,
                  measure: Callable[[BenchBroker, Path], str]) -> int:
    """What `measure` reports on a new broker (see bench_broker) and work directory.

    `size` is the option that sets how much to load, and its value: at least 1, or exit code 2.
    """
    option, count = size
    if count < 1:
        print(f"podlink bench: {option} must be at least 1", file=sys.stderr)
        return 2

    def on_broker(work_dir: Path) -> str:
        with bench_broker(kind, bootstrap) as broker:
            return measure(broker, work_dir)
    return run_in_work_dir(prefix, on_broker)


def run_in_work_dir(prefix: str, measure: Callable[[Path], str]) -> int:
    """Print what `measure` reports, given a new work directory; failures become exit codes.

    The work directory is removed unless the measurement failed: then its newest worker log
    is shown and kept.
    """
    work_dir = Path(tempfile.mkdtemp(prefix=prefix))
    # The worker and the broker run in sessions of their own, out of reach of signals sent to
    # the bench: a SIGTERM must unwind like Ctrl-C so that they are stopped too.
    previous = signal.signal(signal.SIGTERM, signal.default_int_handler)
    try:
        report = measure(work_dir)
    except KeyboardInterrupt:
        print("\npodlink bench: interrupted", file=sys.stderr)
        shutil.rmtree(work_dir, ignore_errors=True)
        return 130
    except (BenchError, BrokerStartError, TopicLayoutError, KafkaError, AioKafkaError) as exc:
        print(f"podlink bench: {type(exc).__name__}: {exc}", file=sys.stderr)
        for log in sorted(work_dir.glob("*.log"))[-1:]:
            show_worker_log(log)
        return 1
    finally:
        signal.signal(signal.SIGTERM, previous)
    shutil.rmtree(work_dir, ignore_errors=True)
    print(report)
    return 0


def _measure(settings: Settings, pathways: int, broker: BenchBroker, work_dir: Path) -> str:
    bootstrap = broker.bootstrap
    run_id = uuid.uuid4().hex[:8]
    records = _synthetic(f"BENCH-{run_id}-S", pathways)
    partitions = ensure_topics(bootstrap, settings.partitions, settings.replication_factor)
    progress(f"{pathways} pathways, {len(records)} events; measuring the plain aiokafka ceiling")
    ceiling = asyncio.run(_ceiling(bootstrap, records, partitions, settings.replication_factor, run_id))
    group = f"podlink-bench-{run_id}"
    if not broker.tansu:
        # A new group would otherwise start with every event the topics already hold.
        asyncio.run(start_group_at_end(bootstrap, group))
    worker = start_worker(bootstrap, group, work_dir / "data", work_dir / "worker.log", broker.tansu,
                          settings=settings)
    try:
        saturated, paced = asyncio.run(_end_to_end(bootstrap, worker, records, run_id))
    finally:
        stop_worker(worker)
    return _report(pathways, partitions, broker.label, ceiling, saturated, paced)


def _synthetic(prefix: str, pathways: int) -> list[BenchRecord]:
    return [
        BenchRecord(*r.encoded(), bundle_id(r.value["source"], r.value["id"]))
        for r in stream(RECEIVED_AT, pathways, ("on-time",), prefix)
    ]


# -- the ceiling: the same records through plain aiokafka, no processing -----------------------

async def _ceiling(bootstrap: str, records: list[BenchRecord], partitions: int, replication: int,
                   run_id: str) -> Ceiling:
    source = f"podlink-bench.ceiling-in-{run_id}"
    sink = f"podlink-bench.ceiling-out-{run_id}"
    # As many partitions as the input topics, so both sides spread the same keys alike.
    _create_topics(bootstrap, (source, sink), partitions, replication)
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap)
    await producer.start()
    try:
        started = time.perf_counter()
        acks = [await producer.send(source, r.value, key=r.key) for r in records]
        await asyncio.gather(*acks)
        load_rate = len(records) / (time.perf_counter() - started)
        forward_rate = max([await _forward_all(bootstrap, source, sink, len(records), producer)
                            for _ in range(CEILING_PASSES)])
    finally:
        await producer.stop()
        _delete_topics(bootstrap, (source, sink))
    return Ceiling(load_rate, forward_rate)


async def _forward_all(bootstrap: str, source: str, sink: str, count: int,
                       producer: AIOKafkaProducer) -> float:
    """Records/s from the first record consumed to the last forwarded one acknowledged.

    Without a group, so every pass reads `source` from its beginning.
    """
    consumer = AIOKafkaConsumer(source, bootstrap_servers=bootstrap, auto_offset_reset="earliest",
                                enable_auto_commit=False)
    await consumer.start()
    try:
        acks: list[asyncio.Future[object]] = []
        started: float | None = None
        give_up = time.monotonic() + STALL_TIMEOUT
        while len(acks) < count:
            if time.monotonic() > give_up:
                raise BenchError(f"ceiling: only {len(acks)} of {count} records came back")
            for messages in (await consumer.getmany(timeout_ms=500)).values():
                started = started or time.perf_counter()
                for message in messages:
                    acks.append(await producer.send(sink, message.value, key=message.key))
        await asyncio.gather(*acks)
        assert started is not None  # the loop ran until records arrived
        return count / (time.perf_counter() - started)
    finally:
        await consumer.stop()


def _create_topics(bootstrap: str, names: tuple[str, ...], partitions: int, replication: int) -> None:
    admin = KafkaAdminClient(bootstrap_servers=bootstrap, client_id="podlink-bench")
    try:
        # Apache Kafka creates topics asynchronously: a producer sending at once would log an
        # error ("not found in cluster metadata") among the figures on stdout, then retry.
        admin.create_topics([NewTopic(name, num_partitions=partitions, replication_factor=replication)
                             for name in names], wait_for_metadata=True)
    finally:
        admin.close()


def _delete_topics(bootstrap: str, names: tuple[str, ...]) -> None:
    admin = KafkaAdminClient(bootstrap_servers=bootstrap, client_id="podlink-bench")
    try:
        admin.delete_topics(list(names))
    finally:
        admin.close()


# -- end to end: a real worker process ---------------------------------------------------------

async def start_group_at_end(bootstrap: str, group: str) -> None:
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False)
    await consumer.start()
    try:
        await consumer.topics()
        tps = [TopicPartition(topic, p) for topic in INPUT_TOPICS
               for p in consumer.partitions_for_topic(topic) or ()]
        consumer.assign(tps)
        ends = {tp: end for tp, end in (await consumer.end_offsets(tps)).items() if end > 0}
        if ends:
            await consumer.commit(ends)
    finally:
        await consumer.stop()


# The settings a bench passes on to its worker from its own environment (a worker started by
# a bench gets no other PODLINK_ variable), so that their cost can be measured.
TUNING = ("fhir_validation", "batch_max_records", "batch_wait_seconds", "work_helper")


def tuning(settings: Settings) -> dict[str, str]:
    return {f"PODLINK_{name.upper()}": str(getattr(settings, name)) for name in TUNING}


def start_worker(bootstrap: str, group: str, data_dir: Path, log_path: Path,
                 tansu: bool = False, web_port: int | None = None,
                 settings: Settings | None = None, record_lines: bool = False) -> subprocess.Popen[bytes]:
    """A worker in a process of its own; `web_port` for a bench that reads its endpoints;
    `record_lines` for one that waits for a record's own log line (logged at debug otherwise)."""
    # Tansu under-reports end offsets, which Faust's recovery check takes for a corrupt store.
    extra = {"PODLINK_RECOVERY_CONSISTENCY_CHECK": "false"} if tansu else {}
    if record_lines:
        extra["PODLINK_RECORD_LOG_LEVEL"] = "info"
    if settings is not None:
        extra |= tuning(settings)
        progress("worker settings: " + ", ".join(f"{k}={v}" for k, v in tuning(settings).items()))
    # Its own session keeps Ctrl-C from stopping the worker before the bench has stopped.
    env = worker_environment(bootstrap, data_dir, group, web_port or free_port(), extra)
    worker = launch(env, log_path, new_session=True)
    progress(f"worker started (pid {worker.pid}, log {log_path})")
    return worker


def stop_worker(worker: subprocess.Popen[bytes]) -> None:
    stop(worker, WORKER_STOP_GRACE)


def show_worker_log(log: Path) -> None:
    if log.exists():
        print(f"podlink bench: worker log kept at {log}; its last lines:\n{log_tail(log, 15)}",
              file=sys.stderr)


async def _end_to_end(bootstrap: str, worker: subprocess.Popen[bytes], records: list[BenchRecord],
                      run_id: str) -> tuple[Phase, Phase]:
    async with AsyncExitStack() as clients:
        producer = AIOKafkaProducer(bootstrap_servers=bootstrap)
        await producer.start()
        clients.push_async_callback(producer.stop)
        consumer = AIOKafkaConsumer(FHIR_TOPIC, bootstrap_servers=bootstrap,
                                    auto_offset_reset="latest", enable_auto_commit=False)
        await consumer.start()
        clients.push_async_callback(consumer.stop)
        return await _phases(producer, consumer, worker, records, run_id)


async def _phases(producer: AIOKafkaProducer, consumer: AIOKafkaConsumer,
                  worker: subprocess.Popen[bytes], records: list[BenchRecord],
                  run_id: str) -> tuple[Phase, Phase]:
    await _settle_positions(consumer)
    progress("waiting for the worker to join and answer a warm-up pathway")
    warm_up = _synthetic(f"BENCH-{run_id}-W", 1)
    await _run_phase(producer, consumer, worker, warm_up, "warm-up", None, JOIN_TIMEOUT)
    saturated = await _run_phase(producer, consumer, worker, records, "saturated", None, STALL_TIMEOUT)
    rate = saturated.rate * PACED_SHARE
    pathways = max(1, math.ceil(rate * PACED_SECONDS / len(warm_up)))
    paced_records = _synthetic(f"BENCH-{run_id}-P", pathways)
    paced = await _run_phase(producer, consumer, worker, paced_records, "paced", rate, STALL_TIMEOUT)
    return saturated, paced


async def _settle_positions(consumer: AIOKafkaConsumer) -> None:
    # Positions resolve lazily; fix them at the end now, before the worker can write anything.
    give_up = time.monotonic() + JOIN_TIMEOUT
    while not consumer.assignment():
        if time.monotonic() > give_up:
            raise BenchError(f"no partitions of {FHIR_TOPIC} to read")
        await asyncio.sleep(0.05)
    for tp in consumer.assignment():
        await consumer.position(tp)


async def _run_phase(producer: AIOKafkaProducer, consumer: AIOKafkaConsumer,
                     worker: subprocess.Popen[bytes], records: list[BenchRecord], label: str,
                     rate: float | None, patience: float) -> Phase:
    collector = Collector(label, len(records))
    cpu_before = process_cpu_seconds(worker.pid)
    sending = asyncio.create_task(_produce(producer, records, collector, rate))
    reporting = asyncio.create_task(_report_progress(collector))
    try:
        await _collect(consumer, collector, worker, sending, patience)
        await sending
    finally:
        sending.cancel()
        reporting.cancel()
    cpu = [(after - before) / len(records) * 1e6
           for before, after in zip(cpu_before, process_cpu_seconds(worker.pid))]
    progress(f"{label}: {len(collector.seen)}/{collector.total} FHIR messages")
    return replace(_phase(collector), cpu_us=(cpu[0], cpu[1]))


def process_cpu_seconds(pid: int) -> tuple[float, float]:
    """User and system CPU seconds the process and its children (the worker's helper) have
    used (Linux /proc); a child that has ended is left out."""
    user, system = _own_cpu_seconds(pid)
    for child in children(pid):
        with contextlib.suppress(OSError):
            child_user, child_system = _own_cpu_seconds(child)
            user, system = user + child_user, system + child_system
    return user, system


def children(pid: int) -> list[int]:
    """The process's children (Linux /proc): a worker's helper."""
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as children:
            return [int(child) for child in children.read().split()]
    except OSError:
        return []


def _own_cpu_seconds(pid: int) -> tuple[float, float]:
    with open(f"/proc/{pid}/stat") as stat:
        # The command name (field 2) may hold spaces; the fields after its ")" do not.
        fields = stat.read().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    return int(fields[11]) / ticks, int(fields[12]) / ticks


async def _produce(producer: AIOKafkaProducer, records: list[BenchRecord], collector: Collector,
                   rate: float | None) -> None:
    """Send every record, at `rate` events/s or as fast as the producer takes them."""
    started = time.monotonic()
    acks: list[asyncio.Future[object]] = []
    for i, record in enumerate(records):
        if rate is not None and (wait := started + i / rate - time.monotonic()) > 0:
            await asyncio.sleep(wait)
        # Set here rather than by the client, so the latency clock starts before the record
        # is queued; the worker's output timestamp comes from the same host clock.
        now_ms = time.time_ns() // 1_000_000
        collector.expect(record.bundle_id, now_ms)
        acks.append(await producer.send(record.topic, record.value, key=record.key, timestamp_ms=now_ms))
    await asyncio.gather(*acks)


async def _collect(consumer: AIOKafkaConsumer, collector: Collector, worker: subprocess.Popen[bytes],
                   sending: asyncio.Task[None], patience: float) -> None:
    last_progress = time.monotonic()
    while not collector.done:
        if worker.poll() is not None:
            raise BenchError(f"the worker exited with code {worker.returncode} "
                             f"({collector.label}: {len(collector.seen)}/{collector.total} FHIR messages)")
        if sending.done() and not sending.cancelled() and sending.exception() is not None:
            sending.result()
        if time.monotonic() - last_progress > patience:
            raise BenchError(f"no FHIR message for {patience:.0f} s ({collector.label}: "
                             f"{len(collector.seen)}/{collector.total} arrived)")
        for messages in (await consumer.getmany(timeout_ms=200)).values():
            for message in messages:
                if collector.receive(json.loads(message.value)["id"], message.timestamp):
                    last_progress = time.monotonic()


async def _report_progress(collector: Collector) -> None:
    # One line rewritten in place on a terminal; a line every few seconds in a log file.
    live = sys.stderr.isatty()
    while True:
        await asyncio.sleep(0.5 if live else 2.0)
        text = (f"podlink bench: {collector.label}: produced {len(collector.sent_ms)}/{collector.total}, "
                f"FHIR messages {len(collector.seen)}/{collector.total}")
        print(f"\r{text}\x1b[K" if live else text, end="" if live else "\n", file=sys.stderr, flush=True)


def _phase(collector: Collector) -> Phase:
    latencies = sorted(collector.latencies_ms)
    first_ms, last_sent_ms = min(collector.sent_ms.values()), max(collector.sent_ms.values())
    return Phase(collector.total, _rate(collector.total, collector.last_ms - first_ms),
                 _rate(collector.total, last_sent_ms - first_ms),
                 percentile(latencies, 0.50), percentile(latencies, 0.99))


def _rate(events: int, elapsed_ms: int) -> float:
    return events * 1000 / max(elapsed_ms, 1)


def percentile(ordered: list[float], share: float) -> float:
    """Nearest rank: the smallest value with at least `share` of all values at or below it."""
    return ordered[max(0, math.ceil(share * len(ordered)) - 1)]


# -- output -------------------------------------------------------------------------------------

def _ms(value: float) -> str:
    return f"{value:.1f}" if value < 100 else f"{value:.0f}"


def _report(pathways: int, partitions: int, broker: str, ceiling: Ceiling, saturated: Phase,
            paced: Phase) -> str:
    ratio = saturated.rate / ceiling.forward_rate
    return "\n".join([
        f"podlink bench: {pathways} pathways, {saturated.events} events, {partitions} partitions, "
        f"broker {broker}",
        _row("ceiling: produce only (aiokafka)", _per_s(ceiling.load_rate)),
        _row(f"ceiling: consume + produce, no processing (best of {CEILING_PASSES})",
             _per_s(ceiling.forward_rate)),
        _row("end to end, saturated (every event sent at once)", _per_s(saturated.rate)),
        _row("  latency to FHIR message, queueing included", _percentiles(saturated)),
        _row("  worker CPU an event (user + system)", _cpu(saturated)),
        _row(f"end to end, paced at {PACED_SHARE:.0%} of that ({paced.events} events), sent at",
             _per_s(paced.sent_rate)),
        _row("  latency to FHIR message", _percentiles(paced)),
        f"bench: {saturated.rate:.0f} events/s end to end, ceiling {ceiling.forward_rate:.0f} events/s, "
        f"ratio {ratio:.3f}, p50 {_ms(saturated.p50_ms)} ms, p99 {_ms(saturated.p99_ms)} ms",
    ])


def _row(label: str, value: str) -> str:
    return f"  {label:<62}{value}"


def _per_s(rate: float) -> str:
    return f"{rate:>8.0f} events/s"


def _cpu(phase: Phase) -> str:
    user, system = phase.cpu_us
    return f"{user + system:.0f} us ({user:.0f} + {system:.0f})"


def _percentiles(phase: Phase) -> str:
    return f"p50 {_ms(phase.p50_ms)} ms, p99 {_ms(phase.p99_ms)} ms"
