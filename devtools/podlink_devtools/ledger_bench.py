"""What the alert ledger costs a starting worker after N past alerts, of which M are of
referrals that can still alert (open) and the rest of settled ones.

`python -m podlink_devtools.ledger_bench N [--open M] [--compacted] [--bootstrap HOST:PORT]`: on a new Apache
Kafka jar broker (or `--bootstrap`), N breach alerts as the worker publishes them (CloudEvents
from `alert_event`, keyed by referral) on `pod.sla-alerts.v1`, each recorded by the worker's own
`AlertLedger` with where the broker put it, and all but M of their referrals then forgotten as a
worker's deadline scan forgets settled ones (their ids tombstoned on `podlink.alert-ledger.v1`).
Then, in a new process, a new `AlertLedger` started and read to the end, as a worker's first
deadline scan waits for it. Reports the time from start to caught up, the ids it holds (and
that it holds exactly the open referrals' alerts), the ledger records it read, the resident
memory it added and the longest the event loop was held meanwhile (a 5 ms ticker's worst
overshoot). The record count is what the start read, counted by reading the topic just before.

The jar broker does not compact within a run (its segments roll after an hour), so the start
reads every record and tombstone written: the upper bound of what a start reads between two
passes of the log cleaner. With `--compacted` the ledger topic is set to roll and clean within
seconds, and the start is measured once the cleaner has left the live records: what a start
reads once the cleaner has caught up.
"""
from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import time
from datetime import datetime, timedelta, timezone

from aiokafka import AIOKafkaProducer
from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import ConfigResource, ConfigResourceType

from podlink.services.topics import ensure_topics
from podlink.streams.core.alerts import alert_event
from podlink.streams.core.deadlines import Deadline
from podlink.streams.worker.alert_ledger import AlertLedger
from podlink.streams.worker.cloudevents_binding import structured
from podlink.streams.worker.settings import ALERT_LEDGER_TOPIC, ALERTS_TOPIC
from podlink_devtools.brokers import bench_broker
from podlink_devtools.console import progress

TICK = 0.005
NOW = datetime(2026, 11, 30, 12, 0, tzinfo=timezone.utc)


def _rss_mib() -> float:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS in /proc/self/status")


def _referral(n: int) -> str:
    return f"REF-LEDGER-{n:07d}"


def _alert(n: int) -> dict:
    due = NOW - timedelta(days=1 + n % 900)
    deadline = Deadline(referral_id=_referral(n), team_code="POD-CANTERBURY",
                        starts_at=due - timedelta(days=1), due_at=due, at_risk_from=due - timedelta(hours=4))
    return alert_event(deadline, "breached", NOW)


async def _raise_and_settle(bootstrap: str, alerts: int, still_open: int) -> None:
    """N alerts sent and recorded as a worker does; all but the first `still_open` forgotten."""
    ledger = AlertLedger(bootstrap, ALERTS_TOPIC, ALERT_LEDGER_TOPIC)
    await ledger.start()
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=20, max_batch_size=512 * 1024)
    await producer.start()
    try:
        assert await ledger.catch_up(timeout=60)
        sends = []
        for n in range(alerts):
            alert = _alert(n)
            value, headers = structured(alert)
            sends.append((n, alert["id"], await producer.send(ALERTS_TOPIC, value, key=_referral(n).encode(),
                                                              headers=headers)))
            if n % 20_000 == 0:
                progress(f"published {n}/{alerts} alerts")
        for n, alert_id, sent in sends:
            ledger.record(alert_id, _referral(n), await sent)
            if n >= still_open:
                ledger.forget(_referral(n))
        progress(f"recording {alerts} alerts and forgetting {alerts - still_open} settled referrals")
        while ledger.held() > still_open:
            await asyncio.sleep(1.0)
    finally:
        await producer.stop()
        await ledger.stop()


async def _ticker(worst: list[float], stop: asyncio.Event) -> None:
    loop = asyncio.get_running_loop()
    while not stop.is_set():
        before = loop.time()
        await asyncio.sleep(TICK)
        worst[0] = max(worst[0], loop.time() - before - TICK)


async def _start_ledger(bootstrap: str, alerts: int, still_open: int) -> str:
    records = _records_left(bootstrap)
    rss_before = _rss_mib()
    stop, worst = asyncio.Event(), [0.0]
    ticker = asyncio.create_task(_ticker(worst, stop))
    ledger = AlertLedger(bootstrap, ALERTS_TOPIC, ALERT_LEDGER_TOPIC)
    started = time.monotonic()
    await ledger.start()
    caught_up = await ledger.catch_up(timeout=900)
    seconds = time.monotonic() - started
    stop.set()
    await ticker
    rss_after = _rss_mib()
    known_open = sum(1 for n in range(still_open) if ledger.raised(_alert(n)["id"]))
    known_settled = sum(1 for n in range(still_open, alerts) if ledger.raised(_alert(n)["id"]))
    held = ledger.held()
    await ledger.stop()
    if not caught_up:
        return f"ledger: {alerts} past alerts, not caught up within 900 s"
    return (f"ledger: {alerts} past alerts ({still_open} of open referrals), start to caught up {seconds:.2f} s, "
            f"ledger topic {records} records, holds {held} ids (open known {known_open}/{still_open}, "
            f"settled known {known_settled}), rss +{rss_after - rss_before:.1f} MiB, "
            f"max loop lag {worst[0] * 1000:.1f} ms")


def _measure(bootstrap: str, alerts: int, still_open: int) -> str:
    return asyncio.run(_start_ledger(bootstrap, alerts, still_open))


# What the log cleaner needs to compact the ledger topic within a run: segments that roll
# every few seconds, any dirt worth cleaning, tombstones dropped at the next pass.
FAST_COMPACTION = {"segment.ms": "2000", "min.cleanable.dirty.ratio": "0.01", "delete.retention.ms": "0",
                   "min.compaction.lag.ms": "0"}


def _compact_fast(bootstrap: str) -> None:
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        admin.alter_configs([ConfigResource(ConfigResourceType.TOPIC, ALERT_LEDGER_TOPIC, configs=FAST_COMPACTION)])
    finally:
        admin.close()


def _records_left(bootstrap: str) -> int:
    """The records a start would read now, counted by reading them."""
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, group_id=None, consumer_timeout_ms=2000,
                             max_partition_fetch_bytes=4 * 1024 * 1024)
    try:
        tps = [TopicPartition(ALERT_LEDGER_TOPIC, p) for p in consumer.partitions_for_topic(ALERT_LEDGER_TOPIC)]
        consumer.assign(tps)
        consumer.seek_to_beginning(*tps)
        return sum(1 for _ in consumer)
    finally:
        consumer.close()


def _wait_for_the_cleaner(bootstrap: str, still_open: int) -> None:
    """Roll every segment (a write after segment.ms), then wait until the cleaner has dropped the
    forgotten referrals' records and tombstones."""
    time.sleep(3)
    producer = KafkaProducer(bootstrap_servers=bootstrap)
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, group_id=None)
    partitions = consumer.partitions_for_topic(ALERT_LEDGER_TOPIC)
    consumer.close()
    deadline = time.monotonic() + 600
    while True:
        for p in partitions:  # a tombstone of no alert: a ledger drops nothing for it
            producer.send(ALERT_LEDGER_TOPIC, key=f"bench-roll-{p}".encode(), value=None, partition=p)
        producer.flush()
        left = _records_left(bootstrap)
        progress(f"ledger topic: {left} records left (live: {still_open} and the checkpoints)")
        if left <= still_open + 4 * len(partitions) or time.monotonic() > deadline:
            break
        time.sleep(15)
    producer.close()


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m podlink_devtools.ledger_bench")
    parser.add_argument("alerts", type=int)
    parser.add_argument("--open", type=int, default=0, dest="still_open",
                        help="how many of the alerts are of referrals that can still alert (default 0)")
    parser.add_argument("--bootstrap", default=None, help="an external broker (default: a new Kafka jar broker)")
    parser.add_argument("--compacted", action="store_true",
                        help="let the log cleaner compact the ledger topic before the start is measured "
                        "(sets the topic to roll and clean within seconds)")
    args = parser.parse_args()
    if not 0 <= args.still_open <= args.alerts:
        parser.error("--open must be between 0 and the number of alerts")
    with bench_broker("kafka", args.bootstrap) as broker:
        ensure_topics(broker.bootstrap, 6, 1)
        if args.compacted:
            _compact_fast(broker.bootstrap)
        progress(f"publishing {args.alerts} alerts to {ALERTS_TOPIC}")
        asyncio.run(_raise_and_settle(broker.bootstrap, args.alerts, args.still_open))
        if args.compacted:
            _wait_for_the_cleaner(broker.bootstrap, args.still_open)
        progress("starting a new alert ledger in a new process")
        # A new process: the memory it adds is the start's alone, not what writing left behind.
        with multiprocessing.get_context("spawn").Pool(1) as pool:
            print(pool.apply(_measure, (broker.bootstrap, args.alerts, args.still_open)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
