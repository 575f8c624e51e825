"""The delivery loop: read FHIR messages with deliver's own consumer group, send each through its
referral's lane, publish what came of it, and commit only what is finished."""
from __future__ import annotations

import asyncio
import json
import random
import time
from datetime import datetime, timezone
from typing import Any

import structlog
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRebalanceListener, TopicPartition
from aiokafka.errors import KafkaError
from aiokafka.structs import OffsetAndMetadata

from podlink.services.deliver.http_client import EprClient
from podlink.services.deliver.lanes import Lanes
from podlink.services.deliver.metrics import DeliverMetrics, answer_label
from podlink.services.deliver.offsets import OffsetTracker
from podlink.services.deliver.outputs import KafkaRecord, Message, dead_letter, outcome_event
from podlink.services.deliver.policy import Answer, Backoff, DeadLetter, Delivered, Retry, decide
from podlink.services.deliver.settings import DeliverSettings
from podlink.services.kafka_options import client_options
from podlink.streams.worker.settings import FHIR_TOPIC, Settings

log = structlog.get_logger("podlink.deliver")
COMMIT_SECONDS = 1.0
# Publishing an outcome or a dead letter waits for Kafka as long as it takes: the message is
# not finished (nor committed) until both are written.
PUBLISH_RETRY_SECONDS = 2.0
_NOT_SENT = Answer(status=None, failure="not sent")


def bundle_id(value: bytes) -> str | None:
    try:
        parsed = json.loads(value)
    except (ValueError, UnicodeDecodeError):
        return None
    found = parsed.get("id") if isinstance(parsed, dict) else None
    return found if isinstance(found, str) and found else None


class Deliverer:
    def __init__(self, kafka: Settings, settings: DeliverSettings, metrics: DeliverMetrics) -> None:
        self._kafka = kafka
        self._settings = settings
        self._backoff: Backoff = settings.backoff()
        self.metrics = metrics
        self._offsets = OffsetTracker()
        self._lanes = Lanes(self._deliver)
        self._retrying: set[str] = set()
        self._producer: AIOKafkaProducer | None = None
        self._client: EprClient | None = None
        self._timestamps: dict[tuple[Any, int], int] = {}

    async def run(self, stop: asyncio.Event) -> None:
        options = client_options(self._kafka)
        consumer = AIOKafkaConsumer(group_id=self._settings.deliver_group_id, enable_auto_commit=False,
                                    auto_offset_reset="earliest", client_id="podlink-deliver",
                                    session_timeout_ms=int(self._kafka.session_timeout_seconds * 1000),
                                    **options)
        self._producer = AIOKafkaProducer(acks="all", client_id="podlink-deliver", **options)
        async with EprClient(self._settings) as client:
            self._client = client
            await self._producer.start()
            await consumer.start()
            consumer.subscribe([FHIR_TOPIC], listener=_Rebalance(self, consumer))
            log.info("deliver started", epr=self._settings.endpoint(), group=self._settings.deliver_group_id)
            try:
                await self._consume(consumer, stop)
            finally:
                await self._lanes.close()
                await self._commit(consumer)
                await consumer.stop()
                await self._producer.stop()
                log.info("deliver stopped")

    async def _consume(self, consumer: AIOKafkaConsumer, stop: asyncio.Event) -> None:
        last_commit = time.monotonic()
        paused = False
        while not stop.is_set():
            try:
                batches = await consumer.getmany(timeout_ms=200, max_records=500)
            except KafkaError as exc:
                # The consumer recovers by itself (rejoin, new leader); the loop must outlive it.
                log.warning("fetch failed", error=type(exc).__name__)
                await asyncio.sleep(1.0)
                continue
            for tp, records in batches.items():
                for record in records:
                    self._take(tp, record)
            waiting = self._offsets.waiting()
            self.metrics.waiting.set(waiting)
            # Bounded memory: stop fetching while too much is held, start again at half.
            if not paused and waiting >= self._settings.deliver_max_waiting:
                consumer.pause(*consumer.assignment())
                paused = True
            elif paused and waiting <= self._settings.deliver_max_waiting // 2:
                consumer.resume(*consumer.assignment())
                paused = False
            if time.monotonic() - last_commit >= COMMIT_SECONDS:
                await self._commit(consumer)
                last_commit = time.monotonic()

    def _take(self, tp: TopicPartition, record: Any) -> None:
        self._offsets.fetched(tp, record.offset)
        referral = record.key.decode("utf-8", "replace") if record.key else ""
        found = bundle_id(record.value) if record.value is not None else None
        message = Message(tp.topic, tp.partition, record.offset, referral, found or "", record.value or b"")
        self._timestamps[(tp, record.offset)] = record.timestamp
        self._lanes.add(tp, message)

    async def _deliver(self, message: Message) -> None:
        tp = TopicPartition(message.topic, message.partition)
        if not message.bundle_id or not message.referral_id:
            # Not a message podlink wrote: nothing to send, but nothing to lose either.
            await self._publish([dead_letter(message, _NOT_SENT, 0, "record is not a FHIR Bundle with an id and a key", None)])
            self._finish(tp, message, "dead-letter")
            return
        try:
            await self._attempt_until_decided(tp, message)
        finally:
            # Retrying from its first failed attempt until delivered or dead-lettered, its
            # attempts included: not only while it sleeps, or a scrape would often miss it.
            self._retrying.discard(message.referral_id)
            self.metrics.retrying.set(len(self._retrying))

    async def _attempt_until_decided(self, tp: TopicPartition, message: Message) -> None:
        assert self._client is not None
        attempts = 0
        while True:
            attempts += 1
            reply = await self._client.post(message.bundle_id, message.referral_id, message.value)
            answer = reply.answer
            self.metrics.attempts.labels(answer_label(answer.status, answer.response_code, answer.failure)).inc()
            decision = decide(answer, attempts, self._backoff, random.random())
            now = datetime.now(timezone.utc)
            if isinstance(decision, Delivered):
                await self._publish([outcome_event(message, True, attempts, answer, now)])
                log.info("message delivered", referral_id=message.referral_id, bundle_id=message.bundle_id,
                         attempts=attempts, status=answer.status)
                self._finish(tp, message, "delivered")
                return
            if isinstance(decision, DeadLetter):
                await self._publish([dead_letter(message, answer, attempts, decision.reason, reply.outcome),
                                     outcome_event(message, False, attempts, answer, now, decision.reason)])
                log.warning("message dead-lettered", referral_id=message.referral_id,
                            bundle_id=message.bundle_id, attempts=attempts, reason=decision.reason)
                self._finish(tp, message, "dead-letter")
                return
            assert isinstance(decision, Retry)
            log.info("delivery retried", referral_id=message.referral_id, bundle_id=message.bundle_id,
                     attempts=attempts, reason=decision.reason, delay_seconds=round(decision.delay, 3))
            self._retrying.add(message.referral_id)
            self.metrics.retrying.set(len(self._retrying))
            await asyncio.sleep(decision.delay)

    def _finish(self, tp: TopicPartition, message: Message, result: str) -> None:
        self.metrics.deliveries.labels(result).inc()
        timestamp = self._timestamps.pop((tp, message.offset), None)
        if timestamp is not None:
            self.metrics.latency.observe(max(0.0, time.time() - timestamp / 1000))
        self._offsets.finished(tp, message.offset)

    async def _publish(self, records: list[KafkaRecord]) -> None:
        assert self._producer is not None
        while True:
            try:
                for record in records:
                    await self._producer.send_and_wait(record.topic, record.value, key=record.key,
                                                       headers=record.headers)
                return
            except Exception as exc:  # noqa: BLE001 - Kafka away: wait, never drop the result
                log.warning("cannot publish delivery result, retrying", error=type(exc).__name__)
                await asyncio.sleep(PUBLISH_RETRY_SECONDS)

    async def _commit(self, consumer: AIOKafkaConsumer, only: set[TopicPartition] | None = None) -> None:
        assigned = consumer.assignment()
        offsets = {tp: OffsetAndMetadata(offset, "") for tp, offset in self._offsets.committable().items()
                   if tp in assigned and (only is None or tp in only)}
        if not offsets:
            return
        try:
            await consumer.commit(offsets)
        except Exception as exc:  # noqa: BLE001 - the next commit carries the same offsets
            log.warning("offset commit failed", error=type(exc).__name__)

    async def revoked(self, consumer: AIOKafkaConsumer, partitions: set[TopicPartition]) -> None:
        await self._commit(consumer, partitions)
        await self._lanes.drop(set(partitions))
        for tp in partitions:
            self._offsets.forget(tp)
        self._timestamps = {k: v for k, v in self._timestamps.items() if k[0] not in partitions}


class _Rebalance(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self, deliverer: Deliverer, consumer: AIOKafkaConsumer) -> None:
        self._deliverer = deliverer
        self._consumer = consumer

    async def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        await self._deliverer.revoked(self._consumer, set(revoked))

    async def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        pass
