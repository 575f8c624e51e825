"""Reading the records the group consumer skipped, straight from a real broker."""
from __future__ import annotations

import asyncio
import uuid

import pytest

from podlink.streams.worker.missed_records import read_range
from tests.support.brokers import create_topics, produce


def test_the_records_at_the_missing_offsets_are_read_in_order_and_no_others(broker):
    topic = f"missed-{uuid.uuid4().hex[:8]}"
    create_topics(broker.bootstrap, [topic], partitions=1)
    produce(broker.bootstrap, topic, [(f"REF-{i}".encode(), f"event {i}".encode()) for i in range(8)])

    found = asyncio.run(read_range(broker.bootstrap, {}, topic, 0, range(2, 5)))

    assert [(r.offset, r.key, r.value) for r in found] == [
        (2, b"REF-2", b"event 2"), (3, b"REF-3", b"event 3"), (4, b"REF-4", b"event 4")]
    assert all(r.topic == topic and r.partition == 0 for r in found)
    # Seconds, as Faust gives a record's timestamp: within a day of now, not milliseconds.
    assert all(abs(r.timestamp - found[0].timestamp) < 86_400 and r.timestamp < 10**11 for r in found)


def test_a_broker_that_does_not_answer_in_time_raises_rather_than_returning_too_few(broker):
    topic = f"missed-{uuid.uuid4().hex[:8]}"
    create_topics(broker.bootstrap, [topic], partitions=1)
    produce(broker.bootstrap, topic, [(b"REF-0", b"event 0")])
    # Offsets 0 to 4 asked for, only 0 exists: the reader waits for the rest, then gives up.
    with pytest.raises(asyncio.TimeoutError):
        asyncio.run(read_range(broker.bootstrap, {}, topic, 0, range(0, 5), timeout=2.0))
