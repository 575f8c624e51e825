"""What the alert ledger costs a starting worker after N past alerts, of which M are of
referrals that can still alert (open) and the rest of settled ones.

`python -m podlink_devtools.ledger_bench N [--open M] [--bootstrap HOST:PORT]`: on a new Apache
Kafka jar broker (or `--bootstrap`), N breach alerts as the worker publishes them (CloudEvents
from `alert_event`, keyed by referral) on `pod.sla-alerts.v1`, each recorded by the worker's own
`AlertLedger` with where the broker put it, and all but M of their referrals then forgotten as a
worker's deadline scan forgets settled ones (their ids tombstoned on `podlink.alert-ledger.v1`).
Then, in a new process, a new `AlertLedger` started and read to the end, as a worker's first
deadline scan waits for it. Reports the time from start to caught up, the ids it holds (and
that it holds exactly the open referrals' alerts), the ledger records it read, the resident
memory it added and the longest the event loop was held meanwhile (a 5 ms ticker's worst
overshoot).

The jar broker does not compact within a run (its segments roll after an hour), so the start
reads every record and tombstone written: the upper bound of what a start reads between two
passes of the log cleaner.
"""
from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import time
from datetime import datetime, timedelta, timezone

from aiokafka import AIOKafkaProducer
from kafka import KafkaConsumer, TopicPartition

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


def _ledger_records(bootstrap: str) -> int:
    """How many records the ledger topic holds: what a start reads."""
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, group_id=None)
    try:
        tps = [TopicPartition(ALERT_LEDGER_TOPIC, p) for p in consumer.partitions_for_topic(ALERT_LEDGER_TOPIC)]
        ends, starts = consumer.end_offsets(tps), consumer.beginning_offsets(tps)
        return sum(ends[tp] - starts[tp] for tp in tps)
    finally:
        consumer.close()


async def _start_ledger(bootstrap: str, alerts: int, still_open: int) -> str:
    records = _ledger_records(bootstrap)
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


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m podlink_devtools.ledger_bench")
    parser.add_argument("alerts", type=int)
    parser.add_argument("--open", type=int, default=0, dest="still_open",
                        help="how many of the alerts are of referrals that can still alert (default 0)")
    parser.add_argument("--bootstrap", default=None, help="an external broker (default: a new Kafka jar broker)")
    args = parser.parse_args()
    if not 0 <= args.still_open <= args.alerts:
        parser.error("--open must be between 0 and the number of alerts")
    with bench_broker("kafka", args.bootstrap) as broker:
        ensure_topics(broker.bootstrap, 6, 1)
        progress(f"publishing {args.alerts} alerts to {ALERTS_TOPIC}")
        asyncio.run(_raise_and_settle(broker.bootstrap, args.alerts, args.still_open))
        progress("starting a new alert ledger in a new process")
        # A new process: the memory it adds is the start's alone, not what writing left behind.
        with multiprocessing.get_context("spawn").Pool(1) as pool:
            print(pool.apply(_measure, (broker.bootstrap, args.alerts, args.still_open)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
