"""Reading input partitions straight from the broker, beside Faust's group consumer: records it
skipped (offset_trail.py explains how that happens), where the group's reading of a partition
starts, and whether records wait that it has not handed on (progress_watch.py)."""
from __future__ import annotations

import asyncio
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

from aiokafka import AIOKafkaConsumer, TopicPartition
from mode import Service

READ_TIMEOUT_SECONDS = 30.0

# A partition as the caller names it (Faust's TP, aiokafka's TopicPartition): answers are keyed by it.
P = TypeVar("P", bound=tuple[str, int])


@dataclass(frozen=True)
class MissedRecord:
    """An input record as the record handler reads one (timestamp in seconds, as Faust's)."""

    topic: str
    partition: int
    offset: int
    timestamp: float
    key: bytes | None
    value: bytes | None


class DirectReader(Service):
    """Two consumers, each started at its first use and kept: a producer that writes
    transactions leaves an offset for each commit marker, which looks like a gap, and each must
    cost a fetch, not a new connection.

    One reads records and offsets outside any group. The other is in the worker's group but
    never joins it (no subscription): it only asks what the group has committed, since Faust's
    own map of committed offsets can lack a partition it has sought to, and its consumer
    answers on the thread it rebalances on.
    """

    def __init__(self, bootstrap: str, group: str, client_options: Mapping[str, Any] | None = None,
                 timeout: float = READ_TIMEOUT_SECONDS, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._bootstrap = bootstrap
        self._group = group
        self._client_options = dict(client_options or {})
        self._timeout = timeout
        self._records: AIOKafkaConsumer | None = None
        self._commits: AIOKafkaConsumer | None = None
        # The agent and the progress check share the records consumer, which reads one
        # partition at a time (assign, seek, fetch).
        self._reading = asyncio.Lock()
        self._opening = asyncio.Lock()

    async def read(self, topic: str, partition: int, offsets: range) -> list[MissedRecord]:
        """The records of `topic`/`partition` at `offsets` (fewer where the log has none:
        commit markers, retention), in order; raises asyncio.TimeoutError if the broker does
        not give them within the timeout."""
        return await asyncio.wait_for(self._read(TopicPartition(topic, partition), offsets), self._timeout)

    async def starts(self, partitions: Iterable[P]) -> dict[P, int]:
        """Where the group's reading of each partition starts: its committed offset, or, where
        the group never committed one, the partition's first record (its end if it has none)."""
        wanted = {p: TopicPartition(*p) for p in partitions}
        if not wanted:  # the progress check asks for none when it knows every position
            return {}

        async def ask() -> dict[P, int]:
            commits = await self._open_commits()
            committed = await asyncio.gather(*(commits.committed(tp) for tp in wanted.values()))
            found = {p: offset for p, offset in zip(wanted, committed) if offset is not None}
            never = [tp for p, tp in wanted.items() if p not in found]
            if never:
                records = await self._open_records()
                firsts = await records.beginning_offsets(never)
                found.update({p: firsts[tp] for p, tp in wanted.items() if tp in firsts})
            return found
        return await asyncio.wait_for(ask(), self._timeout)

    async def batch_ends(self, reported: Mapping[P, int]) -> dict[P, int]:
        """Each partition's end offset: the offset after the last record of the batch at the
        end the broker `reported`, where that batch goes on past it.

        Tansu reports a partition's end as the first offset of its last batch plus one. Faust
        recovers a table's changelog up to the end it is told and then drops the records of
        that batch it fetched past it, so a worker restarted on Tansu recovered 6 of about
        120 changelog records and paged first-meeting breaches for meetings held. Apache
        Kafka's end is exact: the last record's batch ends there."""
        wanted = {p: TopicPartition(*p) for p, end in reported.items() if end > 0}

        async def look() -> dict[P, int]:
            async with self._reading:
                records = await self._open_records()
                records.assign(list(wanted.values()))
                for p, tp in wanted.items():
                    records.seek(tp, reported[p] - 1)
                ends = dict(reported)
                unseen = set(wanted)
                while unseen:
                    batch = await records.getmany(*(wanted[p] for p in unseen), timeout_ms=500)
                    for p in list(unseen):
                        found = batch.get(wanted[p])
                        if found:
                            ends[p] = max(reported[p], found[-1].offset + 1)
                            unseen.discard(p)
                        elif await records.position(wanted[p]) >= reported[p]:
                            unseen.discard(p)  # a commit marker at the end: no record there
                return ends
        return await asyncio.wait_for(look(), self._timeout)

    async def waiting(self, positions: Mapping[P, int]) -> dict[P, int | None]:
        """Per partition, the offset of the first record at or after its position, or None if
        none is there (the partition ends there, or only commit markers follow).

        Tansu's end offset is the first offset of the partition's last batch plus one, so there
        a record waiting behind the position in that last batch goes unseen until another is sent."""
        wanted = {p: TopicPartition(*p) for p in positions}

        async def look() -> dict[P, int | None]:
            async with self._reading:
                records = await self._open_records()
                ends = await records.end_offsets(list(wanted.values())) if wanted else {}
                return {p: await self._first_record(records, tp, positions[p], ends[tp]) if positions[p] < ends[tp]
                        else None for p, tp in wanted.items()}
        return await asyncio.wait_for(look(), self._timeout)

    @staticmethod
    async def _first_record(records: AIOKafkaConsumer, tp: TopicPartition, offset: int, end: int) -> int | None:
        records.assign([tp])
        records.seek(tp, offset)
        while await records.position(tp) < end:
            batch = await records.getmany(tp, timeout_ms=500, max_records=1)
            for record in batch.get(tp, []):
                if record.offset >= offset:
                    return record.offset
        return None

    async def _read(self, tp: TopicPartition, offsets: range) -> list[MissedRecord]:
        async with self._reading:
            records = await self._open_records()
            records.assign([tp])
            records.seek(tp, offsets.start)
            found: list[MissedRecord] = []
            while await records.position(tp) < offsets.stop:
                batch = await records.getmany(tp, timeout_ms=500)
                found.extend(MissedRecord(r.topic, r.partition, r.offset, r.timestamp / 1000, r.key, r.value)
                             for r in batch.get(tp, []) if r.offset in offsets)
            return found

    async def _open_records(self) -> AIOKafkaConsumer:
        async with self._opening:
            if self._records is None:
                self._records = await self._new_consumer(group_id=None)
            return self._records

    async def _open_commits(self) -> AIOKafkaConsumer:
        async with self._opening:
            if self._commits is None:
                self._commits = await self._new_consumer(group_id=self._group)
            return self._commits

    async def _new_consumer(self, **options: Any) -> AIOKafkaConsumer:
        consumer = AIOKafkaConsumer(bootstrap_servers=self._bootstrap, enable_auto_commit=False,
                                    auto_offset_reset="earliest", **options, **self._client_options)
        await consumer.start()
        return consumer

    async def on_stop(self) -> None:
        for consumer in (self._records, self._commits):
            if consumer is not None:
                await consumer.stop()
        self._records = self._commits = None
