"""What handling a batch of input records led to, handed to the Kafka producer as record batches
of our own, one per output partition (more if one fills): the outputs (FHIR messages, outcome
events, dead letters) and the tables' changelog records (changelogged.py).

Handed over record by record, each output cost the producer a future, a partitioner call and
an append to its accumulator, and its delivery a callback: about a tenth of the worker's time
at saturation (py-spy on `podlink bench`). A batch of ours costs one of each. The records of a
slice are packed as the slice is handled. While the batch of input records is handled, a
partition's batch goes to the producer when the broker has its previous one (`send_ready`):
handing it over before would wait, as the producer keeps one batch a partition queued, and the
worker with it. Every batch is handed over once the whole batch of input records is handled,
before Faust acknowledges it (`send`), so the flush that precedes every commit covers them. A
batch handed over because it filled waits for the previous batch of its partition to be taken
by the producer's sender: that keeps the partition's order.
"""
from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any, NamedTuple, Protocol

from aiokafka.partitioner import DefaultPartitioner

from podlink.streams.worker.cloudevents_binding import Headers


class Batch(Protocol):
    def append(self, *, timestamp: float | None, key: bytes | None, value: bytes | None,
               headers: Headers) -> object | None: ...

    def record_count(self) -> int: ...


class Producer(Protocol):
    """The part of aiokafka's AIOKafkaProducer the outbox uses."""

    def create_batch(self) -> Batch: ...

    async def send_batch(self, batch: Batch, topic: str, *, partition: int) -> asyncio.Future[Any]: ...

    async def partitions_for(self, topic: str) -> set[int]: ...


class _Record(NamedTuple):
    topic: str
    key: bytes | None
    value: bytes | None
    headers: Headers
    partition: int | None = None
    delivered: Callable[[int], None] | None = None


class _Open:
    """A partition's batch being filled, and the delivery to report of its last changelog record."""

    def __init__(self, batch: Batch) -> None:
        self.batch = batch
        self.delivered: tuple[int, Callable[[int], None]] | None = None  # (its place, whom to tell)


class Outbox:
    def __init__(self, producer: Callable[[], Producer], failed: Callable[[BaseException | None], None]) -> None:
        """`producer`: the running producer (Faust starts it after the worker is built);
        `failed` is told of records the producer refused or the broker did not take."""
        self._producer = producer
        self._failed = failed
        self._records: list[_Record] = []
        self._open: dict[tuple[str, int], _Open] = {}
        self._sent: dict[tuple[str, int], asyncio.Future[Any]] = {}  # the last batch handed over
        self._partitioner = DefaultPartitioner()  # the producer's: podlink configures no other

    def add(self, topic: str, key: bytes | None, value: bytes | None, headers: Headers) -> None:
        self._records.append(_Record(topic, key, value, headers))

    def add_changelog(self, topic: str, partition: int, key: bytes, value: bytes,
                      delivered: Callable[[int], None]) -> None:
        """`delivered(offset)` once the broker has the record, or a later one of its partition."""
        self._records.append(_Record(topic, key, value, [], partition, delivered))

    async def pack(self) -> None:
        """Put the records added so far into their partitions' batches, in the order added."""
        records, self._records = self._records, []
        partitions: dict[str, list[int]] = {}  # asked once a pack: they may grow
        keyed: dict[tuple[str, bytes | None], int] = {}
        for record in records:
            partition = record.partition
            if partition is None:
                where = (record.topic, record.key)
                if where not in keyed:
                    if record.topic not in partitions:
                        partitions[record.topic] = sorted(await self._producer().partitions_for(record.topic))
                    every = partitions[record.topic]
                    keyed[where] = self._partitioner(record.key, every, every)
                partition = keyed[where]
            await self._append((record.topic, partition), record)

    async def send(self) -> None:
        """Pack what is left and hand every batch to the producer."""
        await self.pack()
        opened, self._open = self._open, {}
        for tp, open_ in opened.items():
            await self._submit(tp, open_)

    async def send_ready(self) -> None:
        """Pack what is left and hand to the producer the batches of the partitions whose last
        batch the broker has; the others go on filling."""
        await self.pack()
        for tp in [tp for tp in self._open if tp not in self._sent or self._sent[tp].done()]:
            await self._submit(tp, self._open.pop(tp))

    async def _append(self, tp: tuple[str, int], record: _Record) -> None:
        open_ = self._open.get(tp)
        if open_ is not None and open_.batch.append(timestamp=None, key=record.key, value=record.value,
                                                    headers=record.headers) is not None:
            self._note(open_, record)
            return
        if open_ is not None:  # full: hand it over, and start the partition's next batch
            del self._open[tp]
            await self._submit(tp, open_)
        open_ = self._open[tp] = _Open(self._producer().create_batch())
        # A batch takes its first record whatever its size, as the producer's own do.
        open_.batch.append(timestamp=None, key=record.key, value=record.value, headers=record.headers)
        self._note(open_, record)

    @staticmethod
    def _note(open_: _Open, record: _Record) -> None:
        if record.delivered is not None:
            open_.delivered = (open_.batch.record_count() - 1, record.delivered)

    async def _submit(self, tp: tuple[str, int], open_: _Open) -> None:
        try:
            sent = await self._producer().send_batch(open_.batch, tp[0], partition=tp[1])
        except Exception as exc:  # noqa: BLE001 - refused before it was queued
            self._failed(exc)
            return
        self._sent[tp] = sent
        # Not awaited here: waiting for delivery before acknowledging a batch stalled the agent
        # across a rebalance (test_scale_out). The callback is registered before the flush
        # that precedes every commit waits on the same delivery.
        sent.add_done_callback(lambda done, delivered=open_.delivered: self._check(done, delivered))

    def _check(self, sent: asyncio.Future[Any], delivered: tuple[int, Callable[[int], None]] | None) -> None:
        if sent.cancelled():
            return
        if sent.exception() is not None:
            self._failed(sent.exception())
        elif delivered is not None:
            place, tell = delivered
            tell(sent.result().offset + place)
