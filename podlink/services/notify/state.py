"""What `podlink notify` has sent and where each escalation stands, kept in a compacted Kafka topic.

Why this gives at most once per recipient and channel (docs/on-call.md says the same for
operators): before a message is handed to a channel, a `sending` record for its delivery key
(delivery id and channel) is written to `podlink.notify-state.v1` and the broker's
acknowledgement awaited (acks=all). At start the service reads the topic to its end before it
reads any alert, and never sends a delivery key it finds there. So a restart, a redelivered alert
or a replay finds the key and sends nothing again. The price is the other side of the choice: a
crash between the `sending` record and the channel's answer loses that one message rather than
risk sending it twice; the next start publishes `alert.failed` (reason `interrupted`) for it, so
nobody assumes the person was told, and the escalation goes on to the next tier on time.

A compacted topic, keyed by delivery and by alert, keeps the latest record of each for ever at
the size of the live set; the escalation records carry the wall-clock times the timers run from,
so they survive a restart too.
"""
from __future__ import annotations

import asyncio
import json
from collections.abc import Mapping
from dataclasses import asdict
from datetime import datetime
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.structs import TopicPartition
from kafka.admin import KafkaAdminClient, NewTopic
from kafka.errors import TopicAlreadyExistsError

from podlink.services.notify.alerts import Alert
from podlink.services.notify.escalation import Escalation
from podlink.streams.core.encoding import json_bytes, utc_text

STATE_TOPIC = "podlink.notify-state.v1"
# A write not acknowledged in this time fails: nothing that depends on it happens (no send, no
# acknowledgement), rather than the caller waiting for as long as the broker is away.
WRITE_SECONDS = 10.0
STATE_TOPIC_CONFIG = {"cleanup.policy": "compact", "retention.ms": "-1"}
_MOMENTS = ("tier_paged_at", "last_paged_at", "acknowledged_at", "closed_at")


def escalation_json(esc: Escalation) -> dict[str, Any]:
    data = asdict(esc)
    alert = data["alert"]
    alert["raised_at"] = utc_text(esc.alert.raised_at)
    alert["due_at"] = utc_text(esc.alert.due_at) if esc.alert.due_at else None
    for name in _MOMENTS:
        value = getattr(esc, name)
        data[name] = utc_text(value) if value else None
    data["paged"] = list(esc.paged)
    data["failed"] = sorted(esc.failed)
    return data


def escalation_from_json(data: Mapping[str, Any]) -> Escalation:
    raw = dict(data["alert"])
    raw["raised_at"] = datetime.fromisoformat(raw["raised_at"])
    raw["due_at"] = datetime.fromisoformat(raw["due_at"]) if raw["due_at"] else None
    fields = dict(data)
    fields["alert"] = Alert(**raw)
    for name in _MOMENTS:
        fields[name] = datetime.fromisoformat(data[name]) if data[name] else None
    fields["paged"] = tuple(data["paged"])
    fields["failed"] = frozenset(data["failed"])
    return Escalation(**fields)


def ensure_state_topic(bootstrap: str, client_options: Mapping[str, Any], replication_factor: int) -> set[str]:
    """Creates the state topic if it is missing; returns the names of the topics on the cluster."""
    admin = KafkaAdminClient(bootstrap_servers=bootstrap, client_id="podlink-notify-admin", **client_options)
    try:
        existing = set(admin.list_topics())
        if STATE_TOPIC not in existing:
            try:
                admin.create_topics([NewTopic(STATE_TOPIC, num_partitions=1, replication_factor=replication_factor,
                                              topic_configs=STATE_TOPIC_CONFIG)])
            except TopicAlreadyExistsError:
                pass
        return existing | {STATE_TOPIC}
    finally:
        admin.close()


class StateUnavailable(RuntimeError):
    """The state topic could not be written: what needed it did not happen."""


class StateStore:
    """The in-memory copy of the state topic, written through to it before it is relied on."""

    def __init__(self, bootstrap: str, client_options: Mapping[str, Any]) -> None:
        self._bootstrap = bootstrap
        self._options = dict(client_options)
        self.escalations: dict[str, Escalation] = {}
        self.deliveries: dict[str, dict[str, Any]] = {}
        self._producer: AIOKafkaProducer | None = None

    async def start(self, quiet_seconds: float = 1.0) -> None:
        """Reads the topic to its end: past the broker's end offset and a poll that found nothing
        (some brokers, Tansu, under-report end offsets)."""
        consumer = AIOKafkaConsumer(bootstrap_servers=self._bootstrap, group_id=None,
                                    enable_auto_commit=False, auto_offset_reset="earliest", **self._options)
        await consumer.start()
        try:
            tp = TopicPartition(STATE_TOPIC, 0)
            consumer.assign([tp])
            await consumer.seek_to_beginning(tp)
            end = (await consumer.end_offsets([tp]))[tp]
            while True:
                batches = await consumer.getmany(tp, timeout_ms=int(quiet_seconds * 1000))
                for record in batches.get(tp, []):
                    self._apply(record.key, record.value)
                if not batches and await consumer.position(tp) >= end:
                    break
        finally:
            await consumer.stop()
        self._producer = AIOKafkaProducer(bootstrap_servers=self._bootstrap, acks="all",
                                          enable_idempotence=False, **self._options)
        await self._producer.start()

    async def stop(self) -> None:
        if self._producer is not None:
            await self._producer.stop()

    def _apply(self, key: bytes | None, value: bytes | None) -> None:
        if key is None or value is None:
            return
        kind, _, name = key.decode().partition(":")
        data = json.loads(value)
        if kind == "escalation":
            self.escalations[name] = escalation_from_json(data)
        elif kind == "delivery":
            self.deliveries[name] = data

    async def _write(self, key: str, value: dict[str, Any]) -> None:
        assert self._producer is not None, "start() first"
        try:
            await asyncio.wait_for(self._producer.send_and_wait(
                STATE_TOPIC, json_bytes(value), key=key.encode(), partition=0), WRITE_SECONDS)
        except Exception as exc:  # noqa: BLE001 - one error for callers, whatever the client raised
            raise StateUnavailable(f"the state topic did not take a write ({type(exc).__name__})") from exc

    async def put_escalation(self, esc: Escalation) -> None:
        await self._write(f"escalation:{esc.alert.id}", escalation_json(esc))
        self.escalations[esc.alert.id] = esc

    async def put_delivery(self, key: str, status: str, attempt: int, now: datetime,
                           **facts: str) -> None:
        record = {"status": status, "attempt": attempt, "at": utc_text(now), **facts}
        await self._write(f"delivery:{key}", record)
        self.deliveries[key] = record

    def interrupted(self) -> list[tuple[str, dict[str, Any]]]:
        """Deliveries recorded as `sending` with no outcome: the process stopped mid-send."""
        return [(k, v) for k, v in self.deliveries.items() if v["status"] == "sending"]

