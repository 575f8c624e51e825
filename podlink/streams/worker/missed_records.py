"""Reading input records straight from the broker: those the group consumer skipped
(offset_trail.py explains how that happens)."""
from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition

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


async def read_range(bootstrap: str, client_options: Mapping[str, Any], topic: str, partition: int,
                     offsets: range, timeout: float = READ_TIMEOUT_SECONDS) -> list[MissedRecord]:
    """The records of `topic`/`partition` at `offsets` (fewer where the log has none: control
    records, retention), in order; raises asyncio.TimeoutError if the broker does not answer."""
    tp = TopicPartition(topic, partition)
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False,
                                auto_offset_reset="earliest", **client_options)
    await consumer.start()
    try:
        consumer.assign([tp])
        consumer.seek(tp, offsets.start)
        found: list[MissedRecord] = []

        async def read() -> None:
            while await consumer.position(tp) < offsets.stop:
                batch = await consumer.getmany(tp, timeout_ms=500)
                found.extend(MissedRecord(r.topic, r.partition, r.offset, r.timestamp / 1000, r.key, r.value)
                             for r in batch.get(tp, []) if r.offset in offsets)

        await asyncio.wait_for(read(), timeout)
        return found
    finally:
        await consumer.stop()
