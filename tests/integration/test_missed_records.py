"""Reading the records the group consumer skipped, straight from a real broker."""
from __future__ import annotations

import asyncio
import uuid

import pytest

from podlink.streams.worker.missed_records import MissedRecord, MissedRecordReader
from tests.support.brokers import create_topics, produce


def read(bootstrap: str, *asks: tuple[str, range], timeout: float = 30.0) -> list[list[MissedRecord]]:
    """Each of `asks` read in turn by one reader, as a worker's agent asks."""
    async def run() -> list[list[MissedRecord]]:
        reader = MissedRecordReader(bootstrap, timeout=timeout)
        await reader.start()
        try:
            return [await reader.read(topic, 0, offsets) for topic, offsets in asks]
        finally:
            await reader.stop()
    return asyncio.run(run())


@pytest.fixture
def topic(broker) -> str:
    name = f"missed-{uuid.uuid4().hex[:8]}"
    create_topics(broker.bootstrap, [name], partitions=1)
    produce(broker.bootstrap, name, [(f"REF-{i}".encode(), f"event {i}".encode()) for i in range(8)])
    return name


def test_the_records_at_the_missing_offsets_are_read_in_order_and_no_others(broker, topic):
    [found] = read(broker.bootstrap, (topic, range(2, 5)))
    assert [(r.offset, r.key, r.value) for r in found] == [
        (2, b"REF-2", b"event 2"), (3, b"REF-3", b"event 3"), (4, b"REF-4", b"event 4")]
    assert all(r.topic == topic and r.partition == 0 for r in found)
    # Seconds, as Faust gives a record's timestamp, not aiokafka's milliseconds.
    assert all(abs(r.timestamp - found[0].timestamp) < 86_400 and r.timestamp < 10**11 for r in found)


def test_one_reader_serves_gaps_one_after_another_even_backwards(broker, topic):
    later, earlier = read(broker.bootstrap, (topic, range(6, 8)), (topic, range(0, 1)))
    assert [r.offset for r in later] == [6, 7]
    assert [r.offset for r in earlier] == [0]


def test_offsets_the_broker_does_not_have_make_the_read_time_out_rather_than_return_too_few(broker, topic):
    # Offsets 6 to 11 asked for, only 6 and 7 exist: the reader waits for the rest, then gives up.
    with pytest.raises(asyncio.TimeoutError):
        read(broker.bootstrap, (topic, range(6, 12)), timeout=2.0)


def test_where_a_partition_starts_is_its_first_record_or_its_end_when_empty(broker, topic):
    empty = f"missed-{uuid.uuid4().hex[:8]}"
    create_topics(broker.bootstrap, [empty], partitions=1)

    async def run() -> tuple[int, int]:
        reader = MissedRecordReader(broker.bootstrap)
        await reader.start()
        try:
            return await reader.first_offset(topic, 0), await reader.first_offset(empty, 0)
        finally:
            await reader.stop()
    assert asyncio.run(run()) == (0, 0)
