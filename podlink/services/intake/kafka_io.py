"""Intake's Kafka side: publishing with a time limit, and the durable memory of request ids.

Request ids and their body hashes live on a compacted topic (podlink.intake-requests.v1), read
from the start when intake starts and followed while it runs: a repeat is recognised after a
restart and by every intake instance, and nothing but Kafka needs backing up. Until the topic
is read to its end, intake answers 503 rather than risk taking a repeat for a new request.
"""
from __future__ import annotations

import asyncio
import json
from typing import Any

import structlog
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError

from podlink.services.topics import INTAKE_REQUESTS_CONFIG, INTAKE_REQUESTS_TOPIC
from podlink.streams.core.encoding import json_bytes

log = structlog.get_logger("podlink.intake")
RETRY_SECONDS = 2.0


class PublishFailed(RuntimeError):
    """Kafka did not acknowledge in time: the request is refused (503), never half-accepted."""


class Kafka:
    def __init__(self, options: dict[str, Any], timeout: float, replication_factor: int = 1) -> None:
        self._options = options
        self._replication_factor = replication_factor
        self._timeout = timeout
        self._producer: AIOKafkaProducer | None = None
        self._requests: dict[str, str] = {}
        self._caught_up = False
        self._tasks: list[asyncio.Task[None]] = []

    @property
    def ready(self) -> bool:
        return self._producer is not None and self._caught_up

    def start(self) -> None:
        self._tasks = [asyncio.create_task(self._start_producer()), asyncio.create_task(self._follow_requests())]

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._producer is not None:
            await self._producer.stop()

    def body_hash(self, key: str) -> str | None:
        return self._requests.get(key)

    async def publish(self, topic: str, key: bytes, value: bytes) -> None:
        if self._producer is None:
            raise PublishFailed("producer not started")
        try:
            await asyncio.wait_for(self._producer.send_and_wait(topic, value, key=key), self._timeout)
        except Exception as exc:  # noqa: BLE001 - any failure to publish is a 503
            raise PublishFailed(type(exc).__name__) from None

    async def remember(self, key: str, body_hash: str, bundle_id: str) -> None:
        await self.publish(INTAKE_REQUESTS_TOPIC, key.encode(), json_bytes({"sha256": body_hash, "bundleId": bundle_id}))
        self._requests[key] = body_hash

    async def _start_producer(self) -> None:
        while True:
            producer = AIOKafkaProducer(acks="all", client_id="podlink-intake",
                                        request_timeout_ms=int(self._timeout * 1000), **self._options)
            try:
                await producer.start()
                self._producer = producer
                log.info("intake connected to Kafka")
                return
            except Exception as exc:  # noqa: BLE001 - not there yet: 503 until it is
                await producer.stop()
                log.warning("intake cannot reach Kafka yet", error=type(exc).__name__)
                await asyncio.sleep(RETRY_SECONDS)

    async def _follow_requests(self) -> None:
        while True:
            consumer = AIOKafkaConsumer(group_id=None, enable_auto_commit=False, auto_offset_reset="earliest",
                                        client_id="podlink-intake-requests", **self._options)
            try:
                await self._ensure_topic()
                await consumer.start()
                await self._read(consumer)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - read again from the start once Kafka is back
                log.warning("intake cannot read its request ids", error=type(exc).__name__)
                await asyncio.sleep(RETRY_SECONDS)
            finally:
                await consumer.stop()

    async def _ensure_topic(self) -> None:
        # aiokafka's admin client, not kafka-python's: a stop must be able to cancel it while
        # Kafka is unreachable (a thread blocked in a bootstrap would hold the process up).
        admin = AIOKafkaAdminClient(client_id="podlink-intake-admin", **self._options)
        await admin.start()
        try:
            if INTAKE_REQUESTS_TOPIC not in await admin.list_topics():
                try:
                    await admin.create_topics([NewTopic(INTAKE_REQUESTS_TOPIC, 1, self._replication_factor,
                                                        topic_configs=INTAKE_REQUESTS_CONFIG)])
                except TopicAlreadyExistsError:
                    pass  # another intake created it first
        finally:
            await admin.close()

    async def _read(self, consumer: AIOKafkaConsumer) -> None:
        await consumer.topics()
        partitions = consumer.partitions_for_topic(INTAKE_REQUESTS_TOPIC) or {0}
        tps = [TopicPartition(INTAKE_REQUESTS_TOPIC, p) for p in sorted(partitions)]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        ends = await consumer.end_offsets(tps)
        while True:
            batches = await consumer.getmany(timeout_ms=500)
            for records in batches.values():
                for record in records:
                    self._take(record.key, record.value)
            if not self._caught_up and all([await consumer.position(tp) >= ends[tp] for tp in tps]):
                self._caught_up = True
                log.info("intake request ids read", count=len(self._requests))

    def _take(self, key: bytes | None, value: bytes | None) -> None:
        if key is None or value is None:
            return
        try:
            found = json.loads(value).get("sha256")
        except (ValueError, AttributeError):
            return
        if isinstance(found, str):
            self._requests[key.decode("utf-8", "replace")] = found
