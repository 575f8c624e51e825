"""What the alert ledger costs a starting worker when the alerts topic holds N past alerts.

`python -m podlink_devtools.ledger_bench N [--bootstrap HOST:PORT]`: N alerts as the worker
publishes them (CloudEvents from `alert_event`, keyed by referral) on `pod.sla-alerts.v1` of a
new Apache Kafka jar broker (or `--bootstrap`), then, in this process, the worker's own
`AlertLedger` started and read to the end, as a worker's first deadline scan waits for it.
Reports the time from start to caught up, the resident memory it added, and the longest the
event loop was held meanwhile (a 5 ms ticker's worst overshoot).
"""
from __future__ import annotations

import argparse
import asyncio
import time
from datetime import datetime, timedelta, timezone

from aiokafka import AIOKafkaProducer

from podlink.services.topics import ensure_topics
from podlink.streams.core.alerts import alert_event
from podlink.streams.core.deadlines import Deadline
from podlink.streams.worker.alert_ledger import AlertLedger
from podlink.streams.worker.cloudevents_binding import structured
from podlink.streams.worker.settings import ALERTS_TOPIC
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


async def _publish(bootstrap: str, alerts: int) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=20, max_batch_size=512 * 1024)
    await producer.start()
    try:
        for n in range(alerts):
            due = NOW - timedelta(days=1 + n % 900)
            deadline = Deadline(referral_id=f"REF-LEDGER-{n:07d}", team_code="POD-CANTERBURY",
                                starts_at=due - timedelta(days=1), due_at=due, at_risk_from=due - timedelta(hours=4))
            value, headers = structured(alert_event(deadline, "breached", NOW))
            await producer.send(ALERTS_TOPIC, value, key=deadline.referral_id.encode(), headers=headers)
            if n % 20_000 == 0:
                progress(f"published {n}/{alerts} alerts")
        await producer.flush()
    finally:
        await producer.stop()


async def _ticker(worst: list[float], stop: asyncio.Event) -> None:
    loop = asyncio.get_running_loop()
    while not stop.is_set():
        before = loop.time()
        await asyncio.sleep(TICK)
        worst[0] = max(worst[0], loop.time() - before - TICK)


async def _start_ledger(bootstrap: str, alerts: int) -> str:
    rss_before = _rss_mib()
    stop, worst = asyncio.Event(), [0.0]
    ticker = asyncio.create_task(_ticker(worst, stop))
    ledger = AlertLedger(bootstrap, ALERTS_TOPIC)
    started = time.monotonic()
    await ledger.start()
    caught_up = await ledger.catch_up(timeout=900)
    seconds = time.monotonic() - started
    stop.set()
    await ticker
    rss_after = _rss_mib()
    known = sum(1 for n in range(alerts) if ledger.raised(_id_of(n)))
    await ledger.stop()
    if not caught_up:
        return f"ledger: {alerts} past alerts, not caught up within 900 s"
    return (f"ledger: {alerts} past alerts, start to caught up {seconds:.2f} s, "
            f"knows {known}/{alerts}, rss +{rss_after - rss_before:.1f} MiB, "
            f"max loop lag {worst[0] * 1000:.1f} ms")


def _id_of(n: int) -> str:
    due = NOW - timedelta(days=1 + n % 900)
    deadline = Deadline(referral_id=f"REF-LEDGER-{n:07d}", team_code="POD-CANTERBURY",
                        starts_at=due - timedelta(days=1), due_at=due, at_risk_from=due - timedelta(hours=4))
    return str(alert_event(deadline, "breached", NOW)["id"])


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m podlink_devtools.ledger_bench")
    parser.add_argument("alerts", type=int)
    parser.add_argument("--bootstrap", default=None, help="an external broker (default: a new Kafka jar broker)")
    args = parser.parse_args()
    with bench_broker("kafka", args.bootstrap) as broker:
        ensure_topics(broker.bootstrap, 6, 1)
        progress(f"publishing {args.alerts} alerts to {ALERTS_TOPIC}")
        asyncio.run(_publish(broker.bootstrap, args.alerts))
        progress("starting the alert ledger")
        print(asyncio.run(_start_ledger(broker.bootstrap, args.alerts)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
