"""Which SLA alerts have been published, for the referrals that can still alert.

Each alert goes out at most once: a worker that restarts, or takes over another worker's
partitions, learns which alerts exist before it raises any. Alert ids are fixed by what the
alert is about (the referral, the policy and cycle or the flag's rule and cause, the kind), so
the ledger is a set of ids.

The ids are kept on a compacted topic of their own (`podlink.alert-ledger.v1`), keyed by alert
id, and dropped from it (a tombstone) once the referral can no longer alert (`forget`), so a
worker holds the ids of referrals that can still alert, not every alert ever raised.

The alerts topic stays the record that cannot disagree with what on-call staff received: an
alert is raised the moment the broker has it, and its ledger record is written after that, so a
worker killed in between leaves an alert the ledger topic lacks. Hence the checkpoints: per
alerts partition, an offset below which every alert is known to be on the ledger topic (a
ledger read its record back). A starting ledger reads its own topic, then the alerts topic from
each checkpoint to its end, and records what it finds there unrecorded. It goes on reading
both: another worker's alerts become known within a fetch, and an alert whose record has not
appeared within a grace period is recorded by whichever ledger sees it.
"""
from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Mapping
from typing import Any, Protocol

import structlog
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord, TopicPartition
from aiokafka.errors import ConsumerStoppedError
from mode import Service

from podlink.streams.core.encoding import json_bytes

log = structlog.get_logger("podlink")

CHECKPOINT_PREFIX = "checkpoint:"  # no alert id (a UUID) starts so
# How long an alert may be on the alerts topic without its ledger record before a ledger that
# saw it writes the record itself: long enough for the sender's own write, so that normally
# one record is written per alert, not one per worker.
GRACE_SECONDS = 5.0
UPKEEP_SECONDS = 1.0
FETCH_RECORDS = 500  # records handled between two yields to the event loop


class Sent(Protocol):
    """Where the broker put an alert (aiokafka's RecordMetadata)."""

    @property
    def partition(self) -> int: ...
    @property
    def offset(self) -> int: ...


# An alert known to have been raised: its referral, and its partition and offset on the alerts
# topic. A plain tuple of a str and ints, as are the ids per referral: the garbage collector
# stops tracking such tuples, where 100,000 objects of a class made each of its full
# collections walk them all (pauses of 0.1 to 0.3 s while a start loaded 50,000; measured).
Held = tuple[str, int, int]


def checkpoint_key(partition: int) -> bytes:
    return f"{CHECKPOINT_PREFIX}{partition}".encode()


def record_value(held: Held) -> bytes:
    referral, partition, offset = held
    return json_bytes({"referral": referral, "partition": partition, "offset": offset})


class AlertLedger(Service):
    """Started and stopped with the Faust app, as one of its dependencies."""

    def __init__(self, bootstrap: str, alerts_topic: str, ledger_topic: str,
                 client_options: Mapping[str, Any] | None = None, grace_seconds: float = GRACE_SECONDS) -> None:
        super().__init__()
        self._alerts_topic = alerts_topic
        self._ledger_topic = ledger_topic
        self._bootstrap = bootstrap
        self._client_options = dict(client_options or {})
        self._grace = grace_seconds
        self._held: dict[str, Held] = {}
        self._by_referral: dict[str, tuple[str, ...]] = {}  # a referral's held ids
        # Held ids not yet read back from the ledger topic, and since when (monotonic).
        self._unrecorded: dict[str, float] = {}
        # Per alerts partition: every alert below this offset is on the ledger topic (as read back).
        self._checkpoints: dict[int, int] = {}
        self._checkpoints_sent: dict[int, tuple[int, float]] = {}  # offset and when, not yet read back
        self._alerts_read: dict[int, int] = {}  # per alerts partition, the next offset to read
        self._forgetting: set[str] = set()  # referrals whose ids are to be tombstoned
        self._tombstoned: dict[str, float] = {}  # ids tombstoned, not yet read back
        self._outbox: list[tuple[bytes, bytes | None]] = []
        self._consumer: AIOKafkaConsumer
        self._producer: AIOKafkaProducer
        self._loaded = asyncio.Event()
        self._outbox_ready = asyncio.Event()

    # -- what the deadline scan asks and tells ------------------------------------------------

    def raised(self, alert_id: str) -> bool:
        return alert_id in self._held

    def record(self, alert_id: str, referral: str, sent: Sent) -> None:
        """The broker has the alert: hold its id and write its ledger record."""
        held = self._hold(alert_id, referral, sent.partition, sent.offset)
        self._unrecorded[alert_id] = time.monotonic()
        self._write(alert_id.encode(), record_value(held))

    def forget(self, referral: str) -> None:
        """Nothing more can alert for `referral`: drop its ids once they are safely past a
        checkpoint (else a start would read them from the alerts topic's tail again)."""
        if referral in self._by_referral:
            self._forgetting.add(referral)

    def holds(self, referral: str) -> bool:
        """Whether any alert of `referral` is held (or may be: the ledger is still loading)."""
        return referral in self._by_referral or not self._loaded.is_set()

    def held(self) -> int:
        return len(self._held)

    async def catch_up(self, timeout: float) -> bool:
        """Read both topics up to their end as of now; False if that took longer than `timeout`."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        try:
            await asyncio.wait_for(self._loaded.wait(), timeout)
        except asyncio.TimeoutError:
            return False
        tps = list(self._consumer.assignment())
        ends = await self._consumer.end_offsets(tps)
        for tp, end in ends.items():
            # The consumer's position moves when a fetch returns, and a fetch is handled with no
            # await in between, so a position past the end means its records are taken in.
            while await self._consumer.position(tp) < end:
                if loop.time() > deadline:
                    return False
                await asyncio.sleep(0.05)
        return True

    # -- the service ----------------------------------------------------------------------------

    async def on_start(self) -> None:
        # Made here, not in __init__: aiokafka clients belong to the running event loop.
        self._consumer = AIOKafkaConsumer(
            bootstrap_servers=self._bootstrap, enable_auto_commit=False, group_id=None,
            auto_offset_reset="earliest", **self._client_options,
        )
        self._producer = AIOKafkaProducer(bootstrap_servers=self._bootstrap, acks="all", linger_ms=5,
                                          **self._client_options)
        await self._consumer.start()
        await self._producer.start()
        log.info("alert ledger started", topic=self._alerts_topic, ledger=self._ledger_topic)

    async def on_stop(self) -> None:
        if self._loaded.is_set():
            self._upkeep()
            await self._send_outbox()
        await self._producer.stop()  # sends what is buffered first
        await self._consumer.stop()
        log.info("alert ledger stopped", topic=self._alerts_topic)

    @Service.task
    async def _read(self) -> None:
        started = time.monotonic()
        ledger_tps = await self._partitions(self._ledger_topic)
        alerts_tps = await self._partitions(self._alerts_topic)
        self._consumer.assign(ledger_tps)
        await self._consumer.seek_to_beginning(*ledger_tps)
        ends = await self._consumer.end_offsets(ledger_tps)
        records = 0
        while any([await self._consumer.position(tp) < end for tp, end in ends.items()]):
            records += await self._fetch()
        # The tail: alerts sent since each checkpoint, which the ledger topic may lack.
        positions = {tp: await self._consumer.position(tp) for tp in ledger_tps}
        starts = await self._consumer.beginning_offsets(alerts_tps)
        self._consumer.assign(ledger_tps + alerts_tps)
        for tp, position in positions.items():
            self._consumer.seek(tp, position)
        for tp in alerts_tps:
            self._alerts_read[tp.partition] = max(self._checkpoints.get(tp.partition, 0), starts[tp])
            self._consumer.seek(tp, self._alerts_read[tp.partition])
        self._loaded.set()
        log.info("alert ledger loaded", ledger_records=records, ids=len(self._held),
                 tail_from={p: self._alerts_read[p] for p in sorted(self._alerts_read)},
                 seconds=round(time.monotonic() - started, 3))
        while True:
            await self._fetch()

    @Service.timer(UPKEEP_SECONDS)
    async def _upkeep_timer(self) -> None:
        if self._loaded.is_set():
            self._upkeep()

    @Service.task
    async def _writer(self) -> None:
        while True:
            await self._outbox_ready.wait()
            self._outbox_ready.clear()
            await self._send_outbox()

    # -- reading ----------------------------------------------------------------------------------

    async def _partitions(self, topic: str) -> list[TopicPartition]:
        while True:
            # What consumer.topics() reads, partitions included (aiokafka is pinned, pyproject):
            # partitions_for_topic() knows only the topics of a subscription.
            cluster = await self._consumer._client.fetch_all_metadata()
            found = cluster.partitions_for_topic(topic)
            if found:
                return [TopicPartition(topic, p) for p in sorted(found)]
            log.warning("alert ledger waiting for its topic", topic=topic)
            await asyncio.sleep(1.0)

    async def _fetch(self) -> int:
        try:
            fetched = await self._consumer.getmany(timeout_ms=200, max_records=FETCH_RECORDS)
        except ConsumerStoppedError:
            await asyncio.sleep(3600)  # stopping: the service cancels this task next
            return 0
        count = 0
        for tp, records in fetched.items():
            for record in records:
                try:
                    if tp.topic == self._ledger_topic:
                        self._take_ledger_record(record)
                    else:
                        self._take_alert(record)
                except (ValueError, KeyError, TypeError, AttributeError):
                    # Not ours to judge: only podlink writes these topics, and it writes JSON.
                    log.warning("alert ledger skipped a record it cannot read", topic=tp.topic,
                                partition=tp.partition, offset=record.offset)
                count += 1
        # getmany answers from its buffer without yielding to the event loop: yield here, or a
        # start would hold the loop for as long as the buffered records take.
        await asyncio.sleep(0)
        return count

    def _take_alert(self, record: ConsumerRecord) -> None:
        p, offset = record.partition, record.offset
        self._alerts_read[p] = offset + 1
        if offset < self._checkpoints.get(p, 0):
            return  # on the ledger topic already (or recorded and forgotten since)
        alert = json.loads(record.value)
        alert_id = alert["id"]
        if alert_id in self._held:
            return  # recorded, or sent by this worker and its record on the way
        self._hold(alert_id, record.key.decode() if record.key else alert["subject"], p, offset)
        self._unrecorded[alert_id] = time.monotonic()

    def _take_ledger_record(self, record: ConsumerRecord) -> None:
        key = record.key.decode()
        if key.startswith(CHECKPOINT_PREFIX):
            p, offset = int(key[len(CHECKPOINT_PREFIX):]), json.loads(record.value)["offset"]
            if offset > self._checkpoints.get(p, 0):
                self._checkpoints[p] = offset
            return
        if record.value is None:
            self._drop(key)
            return
        self._unrecorded.pop(key, None)
        if key not in self._held:
            value = json.loads(record.value)
            self._hold(key, value["referral"], value["partition"], value["offset"])

    # -- holding and forgetting -----------------------------------------------------------------

    def _hold(self, alert_id: str, referral: str, partition: int, offset: int) -> Held:
        held = self._held.get(alert_id)
        if held is None:
            held = self._held[alert_id] = (referral, partition, offset)
            self._by_referral[referral] = self._by_referral.get(referral, ()) + (alert_id,)
        return held

    def _drop(self, alert_id: str) -> None:
        held = self._held.pop(alert_id, None)
        self._unrecorded.pop(alert_id, None)
        self._tombstoned.pop(alert_id, None)
        if held is None:
            return
        referral = held[0]
        ids = tuple(other for other in self._by_referral.get(referral, ()) if other != alert_id)
        if ids:
            self._by_referral[referral] = ids
        else:
            self._by_referral.pop(referral, None)
            self._forgetting.discard(referral)

    def _upkeep(self) -> None:
        now = time.monotonic()
        self._record_unrecorded(now)
        self._advance_checkpoints(now)
        self._tombstone_forgotten(now)

    def _record_unrecorded(self, now: float) -> None:
        for alert_id, since in list(self._unrecorded.items()):
            _, partition, offset = self._held[alert_id]
            if offset < self._checkpoints.get(partition, 0):
                # Another ledger read its record back, and this one has not: its record is
                # still to be read (the scan's catch_up reads it before any alert) or was
                # tombstoned before this ledger read the alert. Either way the ledger topic
                # says, not the alerts topic.
                self._drop(alert_id)
            elif now - since >= self._grace:
                # Its sender was killed before it wrote the record, or the write was lost.
                self._write(alert_id.encode(), record_value(self._held[alert_id]))
                self._unrecorded[alert_id] = now

    def _advance_checkpoints(self, now: float) -> None:
        lowest = dict(self._alerts_read)
        for alert_id in self._unrecorded:
            _, partition, offset = self._held[alert_id]
            if offset < lowest.get(partition, 0):
                lowest[partition] = offset
        for p, offset in lowest.items():
            if offset <= self._checkpoints.get(p, 0):
                continue
            sent, at = self._checkpoints_sent.get(p, (0, 0.0))
            if offset > sent or now - at >= self._grace:  # again if it was not read back
                self._checkpoints_sent[p] = (offset, now)
                self._write(checkpoint_key(p), json_bytes({"offset": offset}))

    def _tombstone_forgotten(self, now: float) -> None:
        for referral in list(self._forgetting):
            for alert_id in self._by_referral.get(referral, ()):
                _, partition, offset = self._held[alert_id]
                if alert_id in self._unrecorded or offset >= self._checkpoints.get(partition, 0):
                    continue  # a start would read it from the tail again: wait for a checkpoint past it
                if now - self._tombstoned.get(alert_id, -self._grace) >= self._grace:
                    self._tombstoned[alert_id] = now
                    self._write(alert_id.encode(), None)

    # -- writing ----------------------------------------------------------------------------------

    def _write(self, key: bytes, value: bytes | None) -> None:
        self._outbox.append((key, value))
        self._outbox_ready.set()

    async def _send_outbox(self) -> None:
        outbox, self._outbox = self._outbox, []
        sent = []
        try:
            for n, (key, value) in enumerate(outbox, 1):
                sent.append(await self._producer.send(self._ledger_topic, value, key=key))
                if n % FETCH_RECORDS == 0:
                    await asyncio.sleep(0)  # a first start after an upgrade records every alert
        except Exception as exc:  # noqa: BLE001 - what is not read back is written again
            log.warning("alert ledger write failed; writing again later", error=type(exc).__name__)
        delivered = await asyncio.gather(*sent, return_exceptions=True)
        # The grace period runs from delivery: a write that waited behind many others is not
        # written again before it could be read back.
        now = time.monotonic()
        for (key, _), result in zip(outbox, delivered):
            name = key.decode()
            if isinstance(result, BaseException):
                continue
            if name in self._unrecorded:
                self._unrecorded[name] = now
            if name in self._tombstoned:
                self._tombstoned[name] = now
