"""Real brokers for integration tests, and small kafka-python helpers to drive them.

Which brokers the `broker` fixture runs against is chosen by PODLINK_TEST_BROKERS (see
`requested_kinds`). Brokers live for the whole session, so tests must use their own topics.

The helpers read with assign() rather than a consumer group: no group coordination to wait
for, and no sessions left behind on brokers (Tansu among them) that expire them slowly.
"""
from __future__ import annotations

import os
import time
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import ExitStack
from dataclasses import dataclass
from typing import Any

import pytest
from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
from kafka.consumer.fetcher import ConsumerRecord
from kafka.errors import TopicAlreadyExistsError, for_code
from kafka.structs import OffsetAndMetadata
from podlink_devtools.apache_kafka import ApacheKafkaBroker

from podlink.services.embedded_broker import EmbeddedBroker

KINDS = ("tansu", "kafka", "external", "testcontainers")
KINDS_ENV = "PODLINK_TEST_BROKERS"
DEFAULT_KINDS = "tansu,kafka"
EXTERNAL_ENV = "PODLINK_KAFKA_BOOTSTRAP"
NO_DOCKER_KIND = "kafka (testcontainers unavailable: no Docker engine)"

Headers = Sequence[tuple[str, bytes]]
# kafka-python's security arguments, as `streams.kafka_security.client_options` makes them.
ClientOptions = Mapping[str, Any] | None


@dataclass(frozen=True)
class BrokerEndpoint:
    kind: str
    bootstrap: str


def requested_kinds() -> list[str]:
    raw = os.environ.get(KINDS_ENV, DEFAULT_KINDS)
    kinds = list(dict.fromkeys(k.strip() for k in raw.split(",") if k.strip()))
    unknown = [k for k in kinds if k not in KINDS]
    if unknown or not kinds:
        raise pytest.UsageError(
            f"{KINDS_ENV}={raw!r}: expected a comma list of {', '.join(KINDS)}"
        )
    return kinds


class BrokerPool(ExitStack):
    """Starts each kind of broker at most once and stops them all on close.

    Start-up failures are remembered too, so a broken broker fails each test at once instead
    of timing out again for every one.
    """

    def __init__(self) -> None:
        super().__init__()
        self._started: dict[str, BrokerEndpoint] = {}
        self._failures: dict[str, str] = {}

    def get(self, kind: str) -> BrokerEndpoint:
        if kind in self._failures:
            pytest.fail(self._failures[kind], pytrace=False)
        if kind not in self._started:
            try:
                self._started[kind] = self._start(kind)
            except (Exception, pytest.fail.Exception) as exc:
                self._failures[kind] = f"{kind} broker unavailable: {exc}"
                raise
        return self._started[kind]

    def _start(self, kind: str) -> BrokerEndpoint:
        if kind == "tansu":
            return BrokerEndpoint(kind, self.enter_context(EmbeddedBroker()).bootstrap)
        if kind == "kafka":
            return BrokerEndpoint(kind, self.enter_context(ApacheKafkaBroker()).bootstrap)
        if kind == "external":
            return _external()
        if kind == "testcontainers":
            return self._testcontainers()
        raise ValueError(f"unknown broker kind {kind!r}")

    def _testcontainers(self) -> BrokerEndpoint:
        # testcontainers.kafka is a deprecated alias of this module in testcontainers 4.x.
        from docker.errors import DockerException
        from testcontainers.community.kafka import KafkaContainer

        try:
            # The constructor asks the engine for its API version, so it fails here, within
            # milliseconds, exactly when no engine is reachable. Later failures (image pull,
            # start-up) are real errors and must not be hidden by the fallback.
            container = KafkaContainer()
        except DockerException:
            # Shown in pytest's warnings summary, since the test ids still say [testcontainers].
            warnings.warn(f"testcontainers broker: no Docker engine, using {NO_DOCKER_KIND!r}")
            return BrokerEndpoint(NO_DOCKER_KIND, self.get("kafka").bootstrap)
        self.enter_context(container)
        return BrokerEndpoint("testcontainers", container.get_bootstrap_server())



def _external() -> BrokerEndpoint:
    bootstrap = os.environ.get(EXTERNAL_ENV)
    if not bootstrap:
        pytest.fail(
            f"broker kind 'external' was requested in {KINDS_ENV} but {EXTERNAL_ENV} is not "
            f"set; set it to the cluster's bootstrap servers, e.g. {EXTERNAL_ENV}=host:9092",
            pytrace=False,
        )
    try:
        KafkaAdminClient(bootstrap_servers=bootstrap, bootstrap_timeout_ms=10_000).close()
    except Exception as exc:
        pytest.fail(f"{EXTERNAL_ENV}={bootstrap} is not reachable: {exc!r}", pytrace=False)
    return BrokerEndpoint("external", bootstrap)


def create_topics(
    bootstrap: str, names: Sequence[str], partitions: int = 1, *, client_options: ClientOptions = None
) -> None:
    """Create topics (existing ones are left as they are) and wait until they have leaders."""
    admin = KafkaAdminClient(bootstrap_servers=bootstrap, **(client_options or {}))
    try:
        result = admin.create_topics(
            {name: {"num_partitions": partitions} for name in names}, raise_errors=False
        )
        for topic in result["topics"]:
            error = for_code(topic["error_code"])
            if topic["error_code"] and error is not TopicAlreadyExistsError:
                raise error(f"creating topic {topic['name']!r}: {topic['error_message']}")
        # A created topic is not usable until every partition has a leader; on KRaft that
        # lags the CreateTopics response.
        admin.wait_for_topics(list(names))
    finally:
        admin.close()


def produce(
    bootstrap: str,
    topic: str,
    records: Sequence[tuple[bytes | None, bytes]],
    headers: Headers | None = None,
    *,
    timeout: float = 30.0,
    client_options: ClientOptions = None,
) -> None:
    """Send (key, value) records, each with `headers`, and wait until all are acknowledged."""
    producer = KafkaProducer(bootstrap_servers=bootstrap, **(client_options or {}))
    try:
        futures = [
            producer.send(topic, key=key, value=value, headers=list(headers or []))
            for key, value in records
        ]
        producer.flush(timeout=timeout)
        for future in futures:
            future.get()  # already done after flush; raises the send error, if any
    finally:
        producer.close()


def produce_in_transaction(bootstrap: str, topic: str, records: Sequence[tuple[bytes | None, bytes]]) -> None:
    """Send records as one committed transaction: the log gets a commit marker after them."""
    producer = KafkaProducer(bootstrap_servers=bootstrap, transactional_id=f"podlink-test-{time.monotonic_ns()}")
    try:
        producer.init_transactions()
        producer.begin_transaction()
        for key, value in records:
            producer.send(topic, key=key, value=value)
        producer.commit_transaction()
    finally:
        producer.close()


def commit_offsets(bootstrap: str, group: str, offsets: Mapping[tuple[str, int], int]) -> None:
    """Commit `offsets` for consumer group `group`, as a worker of that group would have."""
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False)
    try:
        partitions = {TopicPartition(topic, partition): offset for (topic, partition), offset in offsets.items()}
        consumer.assign(list(partitions))
        consumer.commit({tp: OffsetAndMetadata(offset, None, -1) for tp, offset in partitions.items()})
    finally:
        consumer.close()


def _records(
    bootstrap: str, topic: str, deadline: float, client_options: ClientOptions
) -> Iterator[ConsumerRecord]:
    """Every record of `topic` from the beginning, as it arrives, until `deadline`."""
    consumer = KafkaConsumer(
        **(client_options or {}),
        bootstrap_servers=bootstrap,
        group_id=None,
        enable_auto_commit=False,
        # Reading must not create the topic with broker defaults before its owner does.
        allow_auto_create_topics=False,
        fetch_max_wait_ms=100,
    )
    try:
        # The topic may not exist yet when waiting for a service's output; this refetches
        # metadata on every call while the topic is unknown.
        while not (partitions := consumer.partitions_for_topic(topic)):
            if time.monotonic() >= deadline:
                return
            time.sleep(0.1)
        assigned = [TopicPartition(topic, p) for p in sorted(partitions)]
        consumer.assign(assigned)
        consumer.seek_to_beginning(*assigned)
        while (remaining := deadline - time.monotonic()) > 0:
            batches = consumer.poll(timeout_ms=int(min(remaining, 0.5) * 1000))
            for batch in batches.values():
                yield from batch
    finally:
        consumer.close()


def consume_all(
    bootstrap: str, topic: str, *, min_records: int, timeout: float, client_options: ClientOptions = None
) -> list[ConsumerRecord]:
    """Records of `topic` from the beginning, once at least `min_records` have arrived.

    On timeout it returns what it has rather than raising, so the caller's assertion shows
    what did arrive. Records of one partition keep their order; partitions interleave.
    """
    found: list[ConsumerRecord] = []
    if min_records <= 0:
        return found
    for record in _records(bootstrap, topic, time.monotonic() + timeout, client_options):
        found.append(record)
        if len(found) >= min_records:
            break
    return found


def consume_until(
    bootstrap: str,
    topic: str,
    predicate: Callable[[ConsumerRecord], bool],
    timeout: float,
    *,
    client_options: ClientOptions = None,
) -> ConsumerRecord:
    """The first record of `topic` (from the beginning) matching `predicate`.

    Raises TimeoutError, naming how many records did not match, if none arrives in time.
    """
    seen = 0
    for record in _records(bootstrap, topic, time.monotonic() + timeout, client_options):
        if predicate(record):
            return record
        seen += 1
    raise TimeoutError(f"no record on {topic!r} matched within {timeout}s ({seen} did not match)")


def consume_until_done(
    bootstrap: str,
    topic: str,
    done: Callable[[list[ConsumerRecord]], bool],
    timeout: float,
    *,
    client_options: ClientOptions = None,
) -> list[ConsumerRecord]:
    """Records of `topic` from the beginning until `done(records so far)`; raises on timeout."""
    found: list[ConsumerRecord] = []
    for record in _records(bootstrap, topic, time.monotonic() + timeout, client_options):
        found.append(record)
        if done(found):
            return found
    if done(found):
        return found
    raise TimeoutError(f"{topic!r}: condition not met within {timeout}s ({len(found)} records)")
