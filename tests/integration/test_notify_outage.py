"""`podlink notify` through a broker crash: Apache Kafka SIGKILLed, kept down, started again on
its data. notify stays up and serving, refuses (503) an acknowledgement it cannot record, and
afterwards takes it and pages new alerts, each exactly once."""
from __future__ import annotations

import time
import urllib.request
from collections.abc import Iterator

import pytest
from podlink_devtools.apache_kafka import ApacheKafkaBroker

from podlink.services.samples import pathway
from tests.integration.test_notify_e2e import DUTY_TOKEN, Hooks, hooks, start_notify  # noqa: F401 - fixtures
from tests.support.broker_io import ago, send, wait_until

OUTAGE_SECONDS = 20


@pytest.fixture
def crashable_kafka() -> Iterator[ApacheKafkaBroker]:
    with ApacheKafkaBroker() as broker:
        yield broker


def test_notify_rides_out_a_broker_crash_and_pages_once_after_it(
        crashable_kafka: ApacheKafkaBroker, start_worker, start_notify, hooks: Hooks, prefix: str) -> None:
    bootstrap = crashable_kafka.bootstrap
    start_worker(bootstrap)
    notify = start_notify(bootstrap)
    before = f"{prefix}-BEFORE"
    send(bootstrap, pathway(before, ago(30), "breached")[:1])
    wait_until(lambda: [b for _, b in hooks.at("/duty") if before.encode() in b], 90, "the first page")

    [alert] = [a for a in notify.get("/alerts")["alerts"] if a["referralId"] == before]
    crashable_kafka.kill()
    started = time.monotonic()
    # An acknowledgement that cannot be recorded is refused, within bounded time, and changes nothing.
    status, problem = notify.post(f"/alerts/{alert['id']}/ack", DUTY_TOKEN)
    assert (status, time.monotonic() - started < 35) == (503, True), problem
    time.sleep(max(0.0, OUTAGE_SECONDS - (time.monotonic() - started)))
    assert notify.proc is not None and notify.proc.poll() is None, notify.log_text()
    assert urllib.request.urlopen(notify.url + "/healthz", timeout=5).read() == b"ok\n"
    [during] = [a for a in notify.get("/alerts")["alerts"] if a["referralId"] == before]
    assert during["acknowledgedBy"] is None
    crashable_kafka.restart()
    status, acked = wait_until(lambda: (lambda answer: answer if answer[0] == 200 else None)(
        notify.post(f"/alerts/{alert['id']}/ack", DUTY_TOKEN)), 90, "an acknowledgement once Kafka is back")
    assert acked["acknowledgedBy"] == "duty-worker"

    after = f"{prefix}-AFTER"
    send(bootstrap, pathway(after, ago(30), "breached")[:1])
    wait_until(lambda: [b for _, b in hooks.at("/duty") if after.encode() in b], 120,
               "a page for the breach raised after the restart:\n" + notify.log_text())
    time.sleep(5)
    pages = [b for _, b in hooks.at("/duty")]
    assert sum(before.encode() in b for b in pages) == 1
    assert sum(after.encode() in b for b in pages) == 1
