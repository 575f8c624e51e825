"""A worker through a broker crash: SIGKILL Apache Kafka, keep it down, start it on its data again.

The worker must say once that the broker is unreachable, then only now and then, and once that
it is back; stay healthy; show the outage on /metrics; and lose and repeat nothing.
"""
from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterator
from urllib.error import HTTPError, URLError
from urllib.request import urlopen

import pytest
from kafka import KafkaConsumer, TopicPartition
from podlink_devtools.apache_kafka import ApacheKafkaBroker
from prometheus_client.parser import text_string_to_metric_families

from podlink.services.samples import Record, pathway
from podlink.streams.worker.broker_watch import OUTAGE_AFTER_SECONDS, PROBE_SECONDS
from podlink.streams.worker.settings import ALERTS_TOPIC, FHIR_TOPIC
from tests.support.broker_io import ago, every_event_has_its_message, send, values, wait_until
from tests.support.brokers import consume_all, consume_until_done
from tests.support.worker_process import WorkerProcess

OUTAGE_SECONDS = 25
# Short enough that a 25 s outage shows the periodic line several times.
OUTAGE_LOG_SECONDS = 5


@pytest.fixture
def crashable_kafka() -> Iterator[ApacheKafkaBroker]:
    """A new Apache Kafka node this test may kill and restart (kafka_fresh gives only its address)."""
    with ApacheKafkaBroker() as broker:
        yield broker


def get(url: str) -> tuple[int, str] | None:
    try:
        with urlopen(url, timeout=5) as response:
            return response.status, response.read().decode()
    except HTTPError as error:
        return error.code, error.read().decode()
    except (URLError, ConnectionError, TimeoutError):
        return None


def gauge(worker: WorkerProcess, name: str) -> float | None:
    answer = get(f"{worker.web_url}/metrics")
    if answer is None or answer[0] != 200:
        return None
    found = [s.value for family in text_string_to_metric_families(answer[1])
             for s in family.samples if s.name == name]
    return found[0] if found else None


def log_line_count(worker: WorkerProcess) -> int:
    # Every line, JSON or not: a traceback's lines drown a log pipeline as much as any.
    return len(worker.log_text().splitlines())


def events(worker: WorkerProcess, name: str) -> list[dict]:
    return [line for line in worker.log_lines() if line.get("event") == name]


def all_records(bootstrap: str, topic: str) -> list:
    """Every record on `topic` up to its end offsets now: a read that knows when it is done."""
    consumer = KafkaConsumer(bootstrap_servers=bootstrap)
    try:
        partitions = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or ()]
        count = sum(consumer.end_offsets(partitions).values())
    finally:
        consumer.close()
    return consume_all(bootstrap, topic, min_records=count, timeout=30)


def breached(referral: str, n: int) -> dict[str, list[Record]]:
    return {referral: pathway(referral, ago(30), "breached", n=n)}


def alerts_for(referral: str):
    return lambda records: any(r.key == referral.encode() for r in records)


def test_a_broker_outage_is_logged_once_and_loses_nothing(crashable_kafka, start_worker, prefix):
    bootstrap = crashable_kafka.bootstrap
    worker = start_worker(bootstrap, PODLINK_BROKER_OUTAGE_LOG_SECONDS=str(OUTAGE_LOG_SECONDS))
    before = breached(f"{prefix}-BEFORE", 1)
    send(bootstrap, before[f"{prefix}-BEFORE"])
    consume_until_done(bootstrap, FHIR_TOPIC, every_event_has_its_message(before), timeout=90)
    # Its deadline is long past: its alert puts the alert ledger to use before the outage.
    consume_until_done(bootstrap, ALERTS_TOPIC, alerts_for(f"{prefix}-BEFORE"), timeout=60)

    crashable_kafka.kill()
    killed_at = time.monotonic()
    lines_at_kill = log_line_count(worker)
    health, readiness, reachable = [], [], []
    down_until = time.monotonic() + OUTAGE_SECONDS
    while time.monotonic() < down_until:
        health.append(get(f"{worker.web_url}/healthz"))
        readiness.append(get(f"{worker.web_url}/readyz"))
        reachable.append(gauge(worker, "podlink_broker_reachable"))
        time.sleep(1)
    crashable_kafka.restart()  # returns once the broker answers again: the outage is over
    # The outage by the test's own clock, not by what the worker says of it.
    outage = time.monotonic() - killed_at
    lines_during_outage = log_line_count(worker) - lines_at_kill
    print(f"\n{lines_during_outage} log lines from SIGKILL until the broker answered again")

    after = breached(f"{prefix}-AFTER", 2)
    send(bootstrap, after[f"{prefix}-AFTER"])
    both = {**before, **after}
    fhir = consume_until_done(bootstrap, FHIR_TOPIC, every_event_has_its_message(both), timeout=120)
    consume_until_done(bootstrap, ALERTS_TOPIC, alerts_for(f"{prefix}-AFTER"), timeout=60)
    alerts = values(all_records(bootstrap, ALERTS_TOPIC))
    wait_until(lambda: gauge(worker, "podlink_broker_reachable") == 1, 30, "broker reachable after")

    assert all(answer == (200, "ok\n") for answer in health), health
    # Tables stay recovered and no rebalance can start without a broker (see docs/operations.md).
    assert all(answer == (200, "ready\n") for answer in readiness), readiness
    assert reachable[0] == 1 and reachable[-1] == 0 and set(reachable) == {0, 1}, reachable
    assert len(events(worker, "broker unreachable")) == 1
    back = events(worker, "broker reachable again")
    # The worker sees the broker back within a few probes of the broker answering the test.
    assert len(back) == 1 and outage - PROBE_SECONDS <= back[0]["seconds"] <= outage + 5 * PROBE_SECONDS, (
        outage, back)
    still = events(worker, "broker still unreachable")
    # The first line once the outage is declared, then one every OUTAGE_LOG_SECONDS until the
    # broker is back: about (outage - declared after) / period of them, give or take one for
    # where the probes fall.
    expected = (outage - OUTAGE_AFTER_SECONDS) / OUTAGE_LOG_SECONDS
    assert max(1, expected - 1.5) <= len(still) <= expected + 1.5, (outage, still)
    # Those lines, and a few of the rejoin once the broker is back; before the fix, about 3,200.
    assert lines_during_outage <= 1 + len(still) + 10, worker.log_text()[-5000:]
    assert {r.key.decode() for r in fhir} == set(both)
    assert {alert["subject"] for alert in alerts} == set(both)
    repeated = [id_ for id_, n in Counter(alert["id"] for alert in alerts).items() if n > 1]
    assert not repeated, repeated
