"""Fixtures for end-to-end tests of `podlink worker` on real brokers."""
from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from podlink_devtools.apache_kafka import ApacheKafkaBroker

from podlink.services.embedded_broker import EmbeddedBroker
from tests.support.brokers import BrokerEndpoint, BrokerPool, requested_kinds
from tests.support.policies import first_meeting_only
from tests.support.worker_process import WorkerProcess

FRESH = {"tansu": EmbeddedBroker, "kafka": ApacheKafkaBroker}


@pytest.fixture(params=requested_kinds())
def fresh_broker(request: pytest.FixtureRequest, broker_pool: BrokerPool) -> Iterator[BrokerEndpoint]:
    """A broker of each requested kind; a new one per test where the kind can start one.

    The topic names are podlink's fixed interface, so a new broker is what keeps one test's
    records out of another's. External brokers are shared: tests use unique referral ids.
    """
    kind = request.param
    if kind in FRESH:
        with FRESH[kind]() as broker:
            yield BrokerEndpoint(kind, broker.bootstrap)
    else:
        yield broker_pool.get(kind)


@pytest.fixture
def kafka_fresh() -> Iterator[BrokerEndpoint]:
    """A new Apache Kafka node: for behaviour that depends on end offsets (Tansu misreports them)."""
    with ApacheKafkaBroker() as broker:
        yield BrokerEndpoint("kafka", broker.bootstrap)


@pytest.fixture
def workers(tmp_path: Path) -> Iterator[list[WorkerProcess]]:
    started: list[WorkerProcess] = []
    yield started
    for worker in started:
        worker.stop()


@pytest.fixture
def start_worker(workers: list[WorkerProcess], tmp_path: Path):
    group = f"podlink-test-{uuid.uuid4().hex[:8]}"

    def start(bootstrap: str, **env: str) -> WorkerProcess:
        env = first_meeting_only(tmp_path) | env
        worker = WorkerProcess(bootstrap, tmp_path / f"worker-{len(workers)}", group, env).start()
        workers.append(worker)
        # Its topics exist once it says it is starting: records sent before that would make
        # a broker auto-create them with its own partition count.
        worker.wait_for_log(lambda line: line.get("event") == "worker starting", timeout=60)
        return worker

    return start


@pytest.fixture
def prefix() -> str:
    return f"REF-{uuid.uuid4().hex[:8]}"
