"""Reading the records the group consumer skipped, straight from a real broker."""
from __future__ import annotations

import asyncio
import uuid

import pytest
from kafka import KafkaConsumer, TopicPartition

from podlink.streams.worker.direct_reads import MissedRecord, DirectReader
from tests.support.brokers import commit_offsets, create_topics, produce, produce_in_transaction


def read(bootstrap: str, *asks: tuple[str, range], timeout: float = 30.0) -> list[list[MissedRecord]]:
    """Each of `asks` read in turn by one reader, as a worker's agent asks."""
    async def run() -> list[list[MissedRecord]]:
        reader = DirectReader(bootstrap, "podlink-test", timeout=timeout)
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


def ask(bootstrap: str, group: str, asking):
    """What `asking(reader)` answers, with a reader started for the worker group `group`."""
    async def run():
        reader = DirectReader(bootstrap, group)
        await reader.start()
        try:
            return await asking(reader)
        finally:
            await reader.stop()
    return asyncio.run(run())


def test_reading_starts_at_the_groups_commit_or_where_never_committed_at_the_first_record(broker, topic):
    empty = f"missed-{uuid.uuid4().hex[:8]}"
    create_topics(broker.bootstrap, [empty], partitions=1)
    group = f"podlink-{uuid.uuid4().hex[:8]}"
    commit_offsets(broker.bootstrap, group, {(topic, 0): 5})
    starts = ask(broker.bootstrap, group, lambda reader: reader.starts([(topic, 0), (empty, 0)]))
    assert starts == {(topic, 0): 5, (empty, 0): 0}
    # Another group's commit is not this one's: it starts at the first record.
    other = ask(broker.bootstrap, f"podlink-{uuid.uuid4().hex[:8]}", lambda reader: reader.starts([(topic, 0)]))
    assert other == {(topic, 0): 0}


def test_a_record_waits_from_an_offset_unless_the_partition_ends_there(broker):
    # Sent one at a time: Tansu's end offset is the first offset of the last batch plus one.
    name = f"missed-{uuid.uuid4().hex[:8]}"
    create_topics(broker.bootstrap, [name], partitions=1)
    for i in range(4):
        produce(broker.bootstrap, name, [(f"REF-{i}".encode(), f"event {i}".encode())])
    other = f"missed-{uuid.uuid4().hex[:8]}"
    create_topics(broker.bootstrap, [other], partitions=1)
    produce(broker.bootstrap, other, [(b"REF-0", b"event 0")])
    group = f"podlink-{uuid.uuid4().hex[:8]}"
    # Several partitions in one ask, as the worker asks about all its quiet partitions.
    assert ask(broker.bootstrap, group, lambda reader: reader.waiting({(name, 0): 2, (other, 0): 1})) == {
        (name, 0): 2, (other, 0): None}
    assert ask(broker.bootstrap, group, lambda reader: reader.waiting({(name, 0): 0, (other, 0): 0})) == {
        (name, 0): 0, (other, 0): 0}
    assert ask(broker.bootstrap, group, lambda reader: reader.waiting({(name, 0): 4})) == {(name, 0): None}


def test_a_transactions_commit_marker_is_not_a_record_waiting(broker, topic):
    produce_in_transaction(broker.bootstrap, topic, [(b"REF-8", b"event 8")])  # offset 8, its marker 9
    group = f"podlink-{uuid.uuid4().hex[:8]}"
    assert ask(broker.bootstrap, group, lambda reader: reader.waiting({(topic, 0): 8})) == {(topic, 0): 8}
    assert ask(broker.bootstrap, group, lambda reader: reader.waiting({(topic, 0): 9})) == {(topic, 0): None}


def test_a_partitions_end_is_where_the_batch_at_the_end_reported_ends(broker, topic):
    # The 8 records went in one produce call: one batch. Tansu reports this partition's end as
    # that batch's first offset plus one; whatever the broker reports, the end is offset 8.
    consumer = KafkaConsumer(bootstrap_servers=broker.bootstrap)
    try:
        reported = consumer.end_offsets([TopicPartition(topic, 0)])[TopicPartition(topic, 0)]
    finally:
        consumer.close()
    group = f"podlink-{uuid.uuid4().hex[:8]}"
    assert ask(broker.bootstrap, group, lambda reader: reader.batch_ends({(topic, 0): reported})) == {(topic, 0): 8}
    assert ask(broker.bootstrap, group, lambda reader: reader.batch_ends({(topic, 0): 1})) == {(topic, 0): 8}
    assert ask(broker.bootstrap, group, lambda reader: reader.batch_ends({(topic, 0): 0})) == {(topic, 0): 0}
