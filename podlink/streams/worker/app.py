"""The Faust app: topics, tables, the episode agent and the deadline timer, wired to pure rules.

Only bytes move here. What an event does is decided by `processor.process`; which alerts are
due by `deadlines.due_alerts`; whether a partition has been read to its end by `catchup`.
"""
from __future__ import annotations

import json
import time
from datetime import datetime, timezone
from typing import Any, Callable, Iterable

import faust
import structlog
from aiokafka.errors import IllegalStateError
from faust.types import TP

from podlink.streams.core.alerts import alert_event
from podlink.streams.core.contract import Accepted, read_record
from podlink.streams.core.deadlines import Deadline, alert_due_at, due_alerts
from podlink.streams.core.encoding import json_bytes
from podlink.streams.core.episode import Episode, Position
from podlink.streams.pipeline.processor import process
from podlink.streams.worker.alert_ledger import AlertLedger
from podlink.streams.worker.catchup import CatchUp
from podlink.streams.worker.kafka_security import client_options, faust_credentials
from podlink.streams.worker.metrics import UNREADABLE, Metrics, deadline_counts
from podlink.streams.worker.settings import (
    ALERTS_TOPIC,
    DEAD_LETTER_TOPIC,
    FHIR_TOPIC,
    INPUT_TOPICS,
    OUTCOMES_TOPIC,
    Settings,
)

log = structlog.get_logger("podlink")
Clock = Callable[[], datetime]


def utc_now() -> datetime:
    return datetime.now(timezone.utc)


class DeadlineEntries:
    """The deadline table's values as (input partition, deadline): what every scan reads.

    Parsing a stored deadline (30 to 40 µs) was most of a scan's cost, and few deadlines change
    between two scans, so each scan keeps what the last one parsed, keyed by the stored bytes.
    """

    def __init__(self) -> None:
        self._parsed: dict[bytes, tuple[int, Deadline]] = {}

    def read(self, stored: Iterable[bytes]) -> list[tuple[int, Deadline]]:
        parsed = {}
        for value in stored:
            parsed[value] = self._parsed.get(value) or _parse_deadline_entry(value)
        self._parsed = parsed  # forgets deadlines that changed or left with their partition
        return list(parsed.values())


def _parse_deadline_entry(value: bytes) -> tuple[int, Deadline]:
    entry = json.loads(value)
    return entry["partition"], Deadline.model_validate(entry["deadline"])


class Worker:
    """One podlink worker: a Faust app plus what its timer needs to decide about alerts."""

    def __init__(self, settings: Settings, clock: Clock = utc_now) -> None:
        self.settings = settings
        self.policy = settings.policy()
        self.clock = clock
        self.catch_up = CatchUp(quiet_seconds=settings.catch_up_quiet_seconds)
        self.metrics = Metrics()
        self.ledger = AlertLedger(settings.kafka_bootstrap, ALERTS_TOPIC, client_options(settings))
        self._ledger_started = False
        self._stored_deadlines = DeadlineEntries()
        self._recovery_started = time.monotonic()
        self._recovered_records = 0
        self.app = self._build_app()

    def _build_app(self) -> faust.App:
        s = self.settings
        app = faust.App(
            s.group_id,
            broker=[f"kafka://{host}" for host in s.kafka_bootstrap.split(",")],
            broker_credentials=faust_credentials(s),
            store="rocksdb://" if s.store == "rocksdb" else "memory://",
            datadir=str(s.data_dir),
            topic_partitions=s.partitions,
            topic_replication_factor=s.replication_factor,
            broker_session_timeout=s.session_timeout_seconds,
            broker_heartbeat_interval=s.session_timeout_seconds / 4,
            consumer_auto_offset_reset="earliest",
            recovery_consistency_check=s.recovery_consistency_check,
            table_standby_replicas=s.standby_replicas,
            key_serializer="raw",
            value_serializer="raw",
            web_enabled=True,
            web_port=s.web_port,
            web_bind=s.web_bind,
            # Faust's own pages would serve table values (patient data) and the cluster layout.
            web_tables_enabled=False,
            web_router_enabled=False,
            web_stats_enabled=False,
            web_graph_enabled=False,
            autodiscover=False,
        )
        self.inputs = app.topic(*INPUT_TOPICS, key_type=bytes, value_type=bytes)
        self.fhir = app.topic(FHIR_TOPIC, key_type=bytes, value_type=bytes)
        self.outcomes = app.topic(OUTCOMES_TOPIC, key_type=bytes, value_type=bytes)
        self.dead_letters = app.topic(DEAD_LETTER_TOPIC, key_type=bytes, value_type=bytes)
        self.episodes = app.Table("episodes", key_type=bytes, value_type=bytes, partitions=s.partitions,
                                  on_changelog_event=self._on_changelog_event)
        self.deadlines = app.Table("deadlines", key_type=bytes, value_type=bytes, partitions=s.partitions,
                                   on_changelog_event=self._on_changelog_event)

        @app.agent(self.inputs, name="episode-processor")
        async def episode_processor(stream: faust.StreamT) -> None:
            async for event in stream.events():
                self.handle(event.message)

        @app.timer(s.deadline_scan_seconds, name="deadline-scan")
        async def deadline_scan() -> None:
            await self.scan_deadlines()

        @app.on_partitions_revoked.connect  # type: ignore[arg-type]  # mode's Signal typing
        async def on_revoked(sender: Any, revoked: set[TP], **_: Any) -> None:
            for tp in revoked:
                self.catch_up.forget(tp)

        @app.on_partitions_assigned.connect  # type: ignore[arg-type]  # mode's Signal typing
        async def on_assigned(sender: Any, assigned: set[TP], **_: Any) -> None:
            self._recovery_started = time.monotonic()
            log.info("partitions assigned",
                     partitions=sorted({tp.partition for tp in assigned if tp.topic in INPUT_TOPICS}))

        @app.on_rebalance_complete.connect  # type: ignore[arg-type]  # mode's Signal typing
        async def on_recovered(sender: Any, **_: Any) -> None:
            log.info("tables recovered", changelog_records=self._recovered_records,
                     seconds=round(time.monotonic() - self._recovery_started, 3))
            self._recovered_records = 0

        return app

    # -- recovery: how much changelog a rebalance or restart had to read -----------------------

    async def _on_changelog_event(self, event: Any) -> None:
        # Standby replicas read changelogs all the time; only what active recovery read counts.
        if self.app.in_recovery:
            self._recovered_records += 1

    # -- the agent: one record in, state stored and records sent (never awaits) --------------

    def handle(self, message: Any) -> None:
        self._handle(message)
        self.catch_up.processed(TP(message.topic, message.partition), message.offset, time.monotonic())
        self.metrics.processing_latency.observe(max(time.time() - message.timestamp, 0.0))

    def _handle(self, message: Any) -> None:
        where = {"topic": message.topic, "partition": message.partition, "offset": message.offset}
        read = read_record(message.key, message.value)
        if not isinstance(read, Accepted):
            self._dead_letter(message, read.reason)
            self.metrics.record(message.topic, UNREADABLE, "dead-letter")
            log.warning("record rejected", outcome="dead-letter", reason=read.reason, **where)
            return
        event = read.event
        key = event.referral_id.encode()
        try:
            stored = self.episodes.get(key)
            episode = Episode.model_validate_json(stored) if stored else None
            position = Position(message.topic, message.partition, message.offset)
            result = process(episode, read, self.policy, position)
        except Exception as exc:  # noqa: BLE001 - one record must never stop the partition
            reason = f"podlink could not process the event ({type(exc).__name__})"
            self._dead_letter(message, reason)
            self.metrics.record(message.topic, event.type, "dead-letter")
            log.error("record failed", outcome="dead-letter", reason=reason,
                      referral=event.referral_id, type=event.type, **where)
            return
        if result.stores_episode:
            self.episodes[key] = result.episode.model_dump_json().encode()
        if result.deadline_changed and result.deadline is not None:
            self._store_deadline(key, result.deadline, message.partition)
        for bundle in result.fhir_messages:
            self.fhir.send_soon(key=key, value=json_bytes(bundle))
        for outcome in result.outcomes:
            self.outcomes.send_soon(key=key, value=json_bytes(outcome))
        self.metrics.record(message.topic, event.type, result.verdict)
        log.info("record", outcome=result.verdict, referral=event.referral_id, type=event.type,
                 fhir_messages=len(result.fhir_messages),
                 outcome_events=[o["type"] for o in result.outcomes],
                 deadline=result.deadline.due_at.isoformat()
                 if result.deadline_changed and result.deadline else None, **where)

    def _store_deadline(self, key: bytes, deadline: Deadline, partition: int) -> None:
        entry = {"partition": partition, "deadline": deadline.model_dump(mode="json")}
        self.deadlines[key] = json_bytes(entry)

    def _dead_letter(self, message: Any, reason: str) -> None:
        headers = [
            ("podlink-error", reason.encode()),
            ("podlink-source-topic", message.topic.encode()),
            ("podlink-source-partition", str(message.partition).encode()),
            ("podlink-source-offset", str(message.offset).encode()),
        ]
        self.dead_letters.send_soon(key=message.key, value=message.value, headers=headers)
        self.metrics.dead_letter(reason)

    # -- what the web endpoints report -------------------------------------------------------

    def is_ready(self) -> bool:
        recovery = self.app.tables.recovery  # type: ignore[attr-defined]  # on the concrete TableManager
        return recovery.completed.is_set() and not recovery.in_recovery and not self.app.rebalancing

    async def consumer_lags(self) -> dict[tuple[str, int], int]:
        """Per assigned input partition: the broker's end offset as last fetched, less our position."""
        consumer = self.app.consumer
        committed = self._committed()
        ends: dict[TP, int] = {}
        positions: dict[TP, int | None] = {}
        for tp in consumer.assignment():
            if tp.topic not in INPUT_TOPICS:
                continue
            try:
                end = consumer.highwater(tp)
            except IllegalStateError:  # revoked since assignment() answered
                continue
            if end is not None:
                ends[tp] = end
                positions[tp] = self.catch_up.position(tp, committed.get(tp))
        # Never read nor committed: the group starts such a partition at its earliest offset.
        unread = [tp for tp, position in positions.items() if position is None]
        earliest = await consumer.earliest_offsets(*unread) if unread else {}
        lags = {}
        for tp, end in ends.items():
            position = positions[tp]
            start = earliest.get(tp, 0) if position is None else position
            lags[(tp.topic, tp.partition)] = max(end - start, 0)
        return lags

    # -- the timer: wall-clock alerts, only once caught up -------------------------------------

    async def scan_deadlines(self) -> None:
        try:
            await self._scan_deadlines()
        except Exception as exc:  # noqa: BLE001 - a failed scan is retried; the worker goes on
            log.error("deadline scan failed; retrying at the next scan", error=type(exc).__name__)

    async def _scan_deadlines(self) -> None:
        if not self.is_ready():
            return
        await self._start_ledger()
        now = self.clock()
        entries = self._deadline_entries()
        self.metrics.deadlines(deadline_counts((deadline for _, deadline in entries), now))
        due = [(entry, kinds) for entry in entries
               if (kinds := due_alerts(entry[1], self.ledger.raised(entry[1].referral_id), now))]
        if not due:
            return
        if not await self.ledger.catch_up(timeout=self.settings.deadline_scan_seconds):
            log.warning("alert ledger not caught up; alerts wait for the next scan")
            return
        partitions = {partition for (partition, _), _ in due}
        ready = await self._caught_up_partitions(partitions)
        for (partition, deadline), _ in due:
            if partition in ready:
                await self._raise_alerts(deadline.referral_id.encode(), now)

    def _deadline_entries(self) -> list[tuple[int, Deadline]]:
        return self._stored_deadlines.read(self.deadlines.values())

    async def _caught_up_partitions(self, partitions: set[int]) -> set[int]:
        consumer = self.app.consumer
        assigned = consumer.assignment()
        # A partition this worker no longer holds is another worker's to alert on.
        tps = [TP(topic, p) for p in partitions for topic in INPUT_TOPICS if TP(topic, p) in assigned]
        ends = await consumer.highwaters(*tps)
        committed = self._committed()
        now = time.monotonic()
        return {
            p for p in partitions
            if all(
                TP(topic, p) in ends
                and self.catch_up.caught_up(TP(topic, p), ends[TP(topic, p)], committed.get(TP(topic, p)), now)
                for topic in INPUT_TOPICS
            )
        }

    def _committed(self) -> dict[TP, int | None]:
        # Faust seeks every assigned partition to the group's committed offset and keeps this
        # map current as it commits; it is private, so faust-streaming is pinned (pyproject).
        # Tansu closes the connection on aiokafka-admin's OffsetFetch, so asking again is no way.
        return dict(self.app.consumer._committed_offset)  # type: ignore[attr-defined]

    async def _raise_alerts(self, key: bytes, now: datetime) -> None:
        # Read the deadline again: records processed while we waited may have met or closed it.
        stored = self.deadlines.get(key)
        if stored is None:
            return
        deadline = Deadline.model_validate(json.loads(stored)["deadline"])
        for kind in due_alerts(deadline, self.ledger.raised(deadline.referral_id), now):
            alert = alert_event(deadline, kind, now)
            await self.app.producer.send_and_wait(
                ALERTS_TOPIC, key, json_bytes(alert), partition=None, timestamp=None, headers=None
            )
            self.ledger.record(deadline.referral_id, kind)
            self.metrics.alert(kind, (self.clock() - alert_due_at(deadline, kind)).total_seconds())
            log.warning("alert raised", alert=alert["type"], alert_id=alert["id"],
                        referral=deadline.referral_id, deadline=alert["data"]["deadline"],
                        deadline_local=alert["data"]["deadlineLocal"])

    async def _start_ledger(self) -> None:
        if not self._ledger_started:
            await self.ledger.start()
            self._ledger_started = True

