"""Reading input records straight from the broker: those the group consumer skipped
(offset_trail.py explains how that happens)."""
from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from mode import Service

READ_TIMEOUT_SECONDS = 30.0


@dataclass(frozen=True)
class MissedRecord:
    """An input record as the record handler reads one (timestamp in seconds, as Faust's)."""

    topic: str
    partition: int
    offset: int
    timestamp: float
    key: bytes | None
    value: bytes | None


class MissedRecordReader(Service):
    """One consumer outside the group, started at the first read and kept: a producer that
    writes transactions leaves an offset for each commit marker, which looks like a gap, and
    each must cost a fetch, not a new connection."""

    def __init__(self, bootstrap: str, client_options: Mapping[str, Any] | None = None,
                 timeout: float = READ_TIMEOUT_SECONDS, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._bootstrap = bootstrap
        self._client_options = dict(client_options or {})
        self._timeout = timeout
        self._consumer: AIOKafkaConsumer | None = None

    async def read(self, topic: str, partition: int, offsets: range) -> list[MissedRecord]:
        """The records of `topic`/`partition` at `offsets` (fewer where the log has none:
        commit markers, retention), in order; raises asyncio.TimeoutError if the broker does
        not give them within the timeout."""
        return await asyncio.wait_for(self._read(TopicPartition(topic, partition), offsets), self._timeout)

    async def first_offset(self, topic: str, partition: int) -> int:
        """The offset of the partition's first record (or its end, if it has none): asked with
        this reader's own consumer, since Faust's answers on the thread it rebalances on."""
        tp = TopicPartition(topic, partition)

        async def ask() -> int:
            consumer = await self._open()
            return (await consumer.beginning_offsets([tp]))[tp]
        return await asyncio.wait_for(ask(), self._timeout)

    async def _open(self) -> AIOKafkaConsumer:
        if self._consumer is None:
            consumer = AIOKafkaConsumer(bootstrap_servers=self._bootstrap, group_id=None,
                                        enable_auto_commit=False, auto_offset_reset="earliest",
                                        **self._client_options)
            await consumer.start()
            self._consumer = consumer
        return self._consumer

    async def _read(self, tp: TopicPartition, offsets: range) -> list[MissedRecord]:
        consumer = await self._open()
        consumer.assign([tp])
        consumer.seek(tp, offsets.start)
        found: list[MissedRecord] = []
        while await consumer.position(tp) < offsets.stop:
            batch = await consumer.getmany(tp, timeout_ms=500)
            found.extend(MissedRecord(r.topic, r.partition, r.offset, r.timestamp / 1000, r.key, r.value)
                         for r in batch.get(tp, []) if r.offset in offsets)
        return found

    async def on_stop(self) -> None:
        if self._consumer is not None:
            await self._consumer.stop()
            self._consumer = None
