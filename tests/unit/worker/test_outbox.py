"""The outbox packs a batch's records into one producer batch per output partition, in the order
added, hands them over when the batch is done (or when one fills), and reports each changelog
partition's delivery with the offset of its last record."""
from __future__ import annotations

import asyncio
from types import SimpleNamespace

import pytest
from kafka.partitioner.default import murmur2

from podlink.streams.worker.outbox import Outbox

PARTITIONS = 6


class _Batch:
    """Takes `room` records (its first whatever the room, as the producer's own batches)."""

    def __init__(self, room: int) -> None:
        self.room, self.records = room, []

    def append(self, *, timestamp, key, value, headers):
        if self.records and len(self.records) >= self.room:
            return None
        self.records.append((key, value, headers))
        return object()

    def record_count(self) -> int:
        return len(self.records)


class _Producer:
    """Delivers each batch at the next offsets of its partition (from 100), or fails as told."""

    def __init__(self, room: int = 100, refuse: str | None = None, fail: str | None = None) -> None:
        self.room, self._refuse, self._fail = room, refuse, fail
        self.handed: list[tuple[str, int, list]] = []
        self.offsets: dict[tuple[str, int], int] = {}

    def create_batch(self) -> _Batch:
        return _Batch(self.room)

    async def partitions_for(self, topic: str) -> set[int]:
        return set(range(PARTITIONS))

    async def send_batch(self, batch: _Batch, topic: str, *, partition: int) -> asyncio.Future:
        if topic == self._refuse:
            raise RuntimeError("refused")
        self.handed.append((topic, partition, batch.records))
        sent = asyncio.get_running_loop().create_future()
        if topic == self._fail:
            sent.set_exception(RuntimeError("not taken"))
        else:
            base = self.offsets.get((topic, partition), 100)
            self.offsets[(topic, partition)] = base + len(batch.records)
            sent.set_result(SimpleNamespace(offset=base))
        return sent


def _partition(key: bytes) -> int:
    # The Java client's rule, with kafka-python's murmur2: not the code the outbox uses.
    return (murmur2(key) & 0x7FFFFFFF) % PARTITIONS


def _fill(outbox: Outbox, reported: list[tuple]) -> None:
    outbox.add("fhir", b"REF-1", b"1", [("ce_type", b"x")])
    for key, partition in ((b"REF-1", 0), (b"REF-2", 1), (b"REF-3", 0)):
        outbox.add_changelog("episodes-changelog", partition, key, b"e" + key[-1:],
                             lambda offset, key=key: reported.append(("episodes", key, offset)))
    outbox.add_changelog("deadlines-changelog", 0, b"REF-1", b"d",
                         lambda offset: reported.append(("deadlines", b"REF-1", offset)))
    outbox.add("fhir", b"REF-2", b"2", [])
    outbox.add("fhir", b"REF-1", b"3", [])


def _run(producer: _Producer, fill=_fill, packs: int = 1):
    reported: list[tuple] = []
    failures: list[BaseException | None] = []
    handed_before_send: list[int] = []

    async def go() -> None:
        outbox = Outbox(lambda: producer, failures.append)
        fill(outbox, reported)
        for _ in range(packs):
            await outbox.pack()
        handed_before_send.append(len(producer.handed))
        await outbox.send()
        await asyncio.sleep(0)  # the futures' callbacks run
        await outbox.send()  # nothing is handed over twice

    asyncio.run(go())
    return reported, failures, handed_before_send[0]


def test_each_partition_gets_one_batch_of_its_records_in_order_when_the_batch_is_done():
    producer = _Producer()
    reported, failures, handed_early = _run(producer)
    assert handed_early == 0  # packed, not handed over, until the input batch is done
    a, b = _partition(b"REF-1"), _partition(b"REF-2")
    assert a != b  # else the test would not tell partitions apart
    assert sorted(producer.handed) == sorted([
        ("fhir", a, [(b"REF-1", b"1", [("ce_type", b"x")]), (b"REF-1", b"3", [])]),
        ("fhir", b, [(b"REF-2", b"2", [])]),
        ("episodes-changelog", 0, [(b"REF-1", b"e1", []), (b"REF-3", b"e3", [])]),
        ("episodes-changelog", 1, [(b"REF-2", b"e2", [])]),
        ("deadlines-changelog", 0, [(b"REF-1", b"d", [])]),
    ])
    # Partition 0 of the episodes' changelog took offsets 100 and 101: REF-3's, the last, says so.
    assert sorted(reported) == [("deadlines", b"REF-1", 100), ("episodes", b"REF-2", 100), ("episodes", b"REF-3", 101)]
    assert failures == []


def test_a_full_batch_is_handed_over_as_it_fills_and_the_partition_keeps_its_order():
    def many(outbox: Outbox, reported: list[tuple]) -> None:
        for i in range(5):
            outbox.add_changelog("episodes-changelog", 2, b"K%d" % i, b"v%d" % i,
                                 lambda offset, i=i: reported.append((i, offset)))

    producer = _Producer(room=2)
    reported, failures, handed_early = _run(producer, many)
    assert handed_early == 2  # two full batches; the fifth record's waits for the end
    assert [[key for key, _, _ in records] for _, _, records in producer.handed] == \
        [[b"K0", b"K1"], [b"K2", b"K3"], [b"K4"]]
    # Each batch reports its own last changelog record: offsets 101, 103 and 104.
    assert sorted(reported) == [(1, 101), (3, 103), (4, 104)]


@pytest.mark.parametrize("producer", [_Producer(refuse="fhir"), _Producer(fail="fhir")],
                         ids=["refused", "not taken"])
def test_a_batch_the_producer_refuses_or_the_broker_does_not_take_is_reported(producer):
    _, failures, _ = _run(producer)
    assert [str(f) for f in failures] == ["refused" if producer._refuse else "not taken"] * 2


def test_a_changelog_batch_not_taken_reports_no_delivery():
    reported, failures, _ = _run(_Producer(fail="deadlines-changelog"))
    assert [r for r in reported if r[0] == "deadlines"] == [] and len(failures) == 1


class _Slow(_Producer):
    """The broker takes each batch when told (`deliver`)."""

    def __init__(self) -> None:
        super().__init__()
        self.waiting: list[asyncio.Future] = []

    async def send_batch(self, batch: _Batch, topic: str, *, partition: int) -> asyncio.Future:
        self.handed.append((topic, partition, [value for _, value, _ in batch.records]))
        sent = asyncio.get_running_loop().create_future()
        self.waiting.append(sent)
        return sent

    def deliver(self) -> None:
        for sent in self.waiting:
            if not sent.done():
                sent.set_result(SimpleNamespace(offset=0))


def test_while_a_batch_is_handled_a_partition_is_handed_its_next_batch_once_the_broker_has_the_last():
    # Handed over before, the producer would make the worker wait for its sender; the records
    # go on filling the partition's batch instead, and all of it goes once the batch is done.
    producer = _Slow()
    a, b = _partition(b"REF-1"), _partition(b"REF-2")

    async def go() -> None:
        outbox = Outbox(lambda: producer, lambda exc: None)
        outbox.add("fhir", b"REF-1", b"1", [])
        await outbox.send_ready()
        outbox.add("fhir", b"REF-1", b"2", [])
        outbox.add("fhir", b"REF-2", b"x", [])
        await outbox.send_ready()
        outbox.add("fhir", b"REF-1", b"3", [])
        await outbox.send_ready()
        assert producer.handed == [("fhir", a, [b"1"]), ("fhir", b, [b"x"])]
        producer.deliver()
        outbox.add("fhir", b"REF-1", b"4", [])
        await outbox.send_ready()
        outbox.add("fhir", b"REF-1", b"5", [])
        outbox.add("fhir", b"REF-2", b"y", [])
        await outbox.send()  # the input batch is done: everything, delivered or not
        assert producer.handed[2:] == [("fhir", a, [b"2", b"3", b"4"]), ("fhir", a, [b"5"]), ("fhir", b, [b"y"])]

    asyncio.run(go())
