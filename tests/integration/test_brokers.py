"""Each configured broker kind takes a keyed, multi-partition round trip."""
from __future__ import annotations

import uuid

from tests.support.brokers import (
    BrokerEndpoint,
    consume_all,
    consume_until,
    create_topics,
    produce,
)


def test_keyed_round_trip(broker: BrokerEndpoint) -> None:
    topic = f"round-trip-{uuid.uuid4().hex[:8]}"
    create_topics(broker.bootstrap, [topic], partitions=3)
    sent = [(f"key-{i}".encode(), f"value-{i}".encode()) for i in range(10)]

    produce(broker.bootstrap, topic, sent, headers=[("source", b"test")])
    received = consume_all(broker.bootstrap, topic, min_records=len(sent), timeout=30)

    assert sorted((r.key, r.value) for r in received) == sorted(sent), broker.kind
    assert all(r.headers == [("source", b"test")] for r in received)
    # Keyed records must spread over more than one partition, or the test proves little.
    assert len({r.partition for r in received}) > 1


def test_consume_until_finds_a_record(broker: BrokerEndpoint) -> None:
    topic = f"until-{uuid.uuid4().hex[:8]}"
    create_topics(broker.bootstrap, [topic], partitions=1)
    produce(broker.bootstrap, topic, [(None, b"first"), (b"k", b"wanted"), (None, b"last")])

    found = consume_until(broker.bootstrap, topic, lambda r: r.value == b"wanted", timeout=30)

    assert found.key == b"k"
