"""What handling a slice of records led to, kept until the slice is handled and then handed to
the Kafka producer in one go: the outputs (FHIR messages, outcome events, dead letters) and the
tables' changelog records (changelogged.py)."""
from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any, NamedTuple

from podlink.streams.worker.cloudevents_binding import Headers

# Faust's producer.send: (topic, key, value, partition, timestamp, headers), awaited until the
# record is queued; the future it returns says when the broker has it.
ProducerSend = Callable[[str, bytes | None, bytes | None, int | None, float | None, Headers | None],
                        Awaitable[asyncio.Future[Any]]]


class _Record(NamedTuple):
    topic: str
    key: bytes | None
    value: bytes | None
    headers: Headers
    partition: int | None = None
    delivered: Callable[[int], None] | None = None


class Outbox:
    def __init__(self, send: ProducerSend, failed: Callable[[BaseException | None], None]) -> None:
        """`failed` is told of a record the producer refused or the broker did not take."""
        self._send = send
        self._failed = failed
        self._records: list[_Record] = []

    def add(self, topic: str, key: bytes | None, value: bytes | None, headers: Headers) -> None:
        self._records.append(_Record(topic, key, value, headers))

    def add_changelog(self, topic: str, partition: int, key: bytes, value: bytes,
                      delivered: Callable[[int], None]) -> None:
        self._records.append(_Record(topic, key, value, [], partition, delivered))

    async def send(self) -> None:
        """Hand the records to the producer, in the order added. Of each changelog partition,
        only the last record's delivery is reported: the broker has the ones before it then."""
        records, self._records = self._records, []
        last = {(r.topic, r.partition): i for i, r in enumerate(records) if r.delivered is not None}
        for i, record in enumerate(records):
            try:
                sent = await self._send(record.topic, record.key, record.value, record.partition, None,
                                        record.headers)
            except Exception as exc:  # noqa: BLE001 - refused before it was queued
                self._failed(exc)
                continue
            # Not awaited here: waiting for delivery before acknowledging a batch stalled the
            # agent across a rebalance (test_scale_out). The callback is registered before the
            # flush that precedes every commit waits on the same delivery.
            sent.add_done_callback(self._check)
            if record.delivered is not None and last[(record.topic, record.partition)] == i:
                sent.add_done_callback(_reporting(record.delivered))

    def _check(self, sent: asyncio.Future[Any]) -> None:
        if not sent.cancelled() and sent.exception() is not None:
            self._failed(sent.exception())


def _reporting(delivered: Callable[[int], None]) -> Callable[[asyncio.Future[Any]], None]:
    def report(sent: asyncio.Future[Any]) -> None:
        if not sent.cancelled() and sent.exception() is None:
            delivered(sent.result().offset)
    return report
