"""The Faust app: topics, tables, the episode agent and the deadline timer, wired to pure rules.

Only bytes move here. What an event does is decided by `processor.process`; which alerts are
due by `deadlines.due_alerts`; whether a partition has been read to its end by `catchup`.
"""
from __future__ import annotations

import asyncio
import logging
import os
import sys
import time
import weakref
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import datetime, timezone
from typing import Any, NoReturn

import faust
import structlog
from aiokafka.errors import IllegalStateError
from faust.streams import _current_event
from faust.types import TP
from faust.types.events import EventT

from podlink.streams.worker.alert_ledger import AlertLedger, Sent
from podlink.streams.worker.batch_sharing import BatchSharing
from podlink.streams.worker.broker_watch import install_broker_watch
from podlink.streams.worker.catchup import CatchUp
from podlink.streams.worker.changelogged import Changelogged
from podlink.streams.worker.cloudevents_binding import Headers
from podlink.streams.worker.deadline_scan import Clock, DeadlineScan
from podlink.streams.worker.kafka_security import client_options, faust_credentials
from podlink.streams.worker.loop_lag import (
    LoopLagMonitor,
    collect_young_objects_less_often,
    freeze_start_up_objects,
)
from podlink.streams.worker.metrics import Metrics
from podlink.streams.worker.direct_reads import DirectReader, MissedRecord
from podlink.streams.worker.offset_trail import OffsetTrail
from podlink.streams.worker.outbox import Outbox
from podlink.streams.worker.progress_watch import ProgressWatch, Remedy
from podlink.streams.core.pathway import evaluation
from podlink.streams.pipeline.processor import Watch
from podlink.streams.worker.codecs import DEADLINE_ENTRY, EPISODE, DeadlineEntry
from podlink.streams.worker.policy_loading import LoadedPolicy, load_policy
from podlink.streams.worker import table_store
from podlink.streams.worker.records import RecordHandler
from podlink.streams.worker.watch_index import WatchIndex
from podlink.streams.worker.settings import (
    ALERT_LEDGER_TOPIC,
    ALERTS_TOPIC,
    DEAD_LETTER_TOPIC,
    FHIR_TOPIC,
    INPUT_TOPICS,
    OUTCOMES_TOPIC,
    Settings,
)

log = structlog.get_logger("podlink")
# sysexits EX_UNAVAILABLE: a supervisor restarts the worker, which reads the batch again.
EXIT_STOPPED_UNCOMMITTED = 69
PRODUCER_BATCH_BYTES = 256 * 1024
PRODUCER_LINGER_MS = 5
# How long slices of a batch (batch_sharing.SLICE_RECORDS) may hold the event loop before it is
# yielded to: a record costs about half a millisecond, more on a busy machine, where slices of
# 50 held it up to 200 ms (the worker's loop-lag warnings).
HOLD_SECONDS = 0.020


def utc_now() -> datetime:
    return datetime.now(timezone.utc)


@contextmanager
def _as_current(event: EventT) -> Iterator[None]:
    """Faust's tables write to the store and changelog partition of the current event, which
    in a batch Faust leaves unset: make it the event of the record being written for. Private
    to faust-streaming, so it is pinned (pyproject)."""
    token = _current_event.set(weakref.ref(event))
    try:
        yield
    finally:
        _current_event.reset(token)


def _stop_without_committing(what: str, exc: BaseException | None, **fields: Any) -> NoReturn:
    """Log `what` could not be done, at critical, and end the process at once, as a SIGKILL
    would: `take_events` acknowledges its batch however the agent's loop ends (its `finally`),
    and Faust commits what is acknowledged when it stops, so a batch not fully handled would be
    lost by any orderly stop. Restarted, the worker reads it again from the last commit (the
    tables' local stores recover from their changelogs, as after a kill)."""
    if exc is not None:
        fields["error"] = type(exc).__name__
    log.critical(f"{what}; stopping, to read the batch again when restarted", **fields)
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(EXIT_STOPPED_UNCOMMITTED)


def _outputs_not_delivered(exc: BaseException | None) -> NoReturn:
    _stop_without_committing("outputs not delivered", exc)


class GroupConsumer:
    """Faust's consumer as the deadline scan and the lag metric see it."""

    def __init__(self, app: faust.App) -> None:
        self._app = app

    def assignment(self) -> set[TP]:
        return self._app.consumer.assignment()

    async def highwaters(self, *tps: TP) -> Mapping[TP, int]:
        return await self._app.consumer.highwaters(*tps)

    def committed(self) -> dict[TP, int | None]:
        # Faust seeks every assigned partition to the group's committed offset and keeps this
        # map current as it commits; it is private, so faust-streaming is pinned (pyproject).
        # Tansu closes the connection on aiokafka-admin's OffsetFetch, so asking again is no way.
        return dict(self._app.consumer._committed_offset)  # type: ignore[attr-defined]


class Worker:
    """One podlink worker: a Faust app plus what its timer needs to decide about alerts."""

    def __init__(self, settings: Settings, clock: Clock = utc_now, loaded: LoadedPolicy | None = None) -> None:
        self.settings = settings
        self.loaded = loaded or load_policy(settings.policy_file, settings.teams)
        self.policy = self.loaded.policy
        self.clock = clock
        self.index = WatchIndex()
        # Entries stored under other rules, worked out again under these until an event rewrites them.
        self._recomputed: dict[bytes, DeadlineEntry] = {}
        self._indexing: asyncio.Future[None] | None = None
        self.catch_up = CatchUp(quiet_seconds=settings.catch_up_quiet_seconds)
        self.trail = OffsetTrail()
        self.metrics = Metrics()
        self.ledger = AlertLedger(settings.kafka_bootstrap, ALERTS_TOPIC, ALERT_LEDGER_TOPIC,
                                  client_options(settings))
        self._recovery_started = time.monotonic()
        self._recovered_records = 0
        self.app = self._build_app()
        install_broker_watch(self.app, self.metrics.broker_reachable, settings.kafka_bootstrap,
                             client_options(settings), settings.broker_outage_log_seconds)
        self.app.add_dependency(self.ledger)  # started and stopped with the app
        self.app.add_dependency(LoopLagMonitor(self.metrics))
        self.reader = DirectReader(settings.kafka_bootstrap, settings.group_id, client_options(settings))
        self.app.add_dependency(self.reader)
        self._reported_ends = self.app.consumer.highwaters
        self.app.consumer.highwaters = self._changelog_ends  # type: ignore[method-assign]
        self.progress: ProgressWatch[TP] = ProgressWatch(settings.stall_seconds)
        self._watching: tuple[int, float] | None = None  # the generation ready, and since when
        self.consumer = GroupConsumer(self.app)
        # What handling records led to, and the tables' changelog records, handed to aiokafka's
        # producer inside Faust's (whose own send takes one record at a time) as batches:
        # while a batch is handled when a partition's last one is taken, all once it is done.
        self.outbox = Outbox(lambda: self.app.producer._ensure_producer(),  # type: ignore[attr-defined]
                             _outputs_not_delivered)
        changelogged = self.outbox.add_changelog
        self.records = RecordHandler(
            policy=self.policy, episodes=Changelogged(self.episodes, changelogged),
            deadlines=Changelogged(self.deadlines, changelogged),
            dead_letter_marks=Changelogged(self.dead_letter_marks, changelogged),
            send=self.outbox.add,
            metrics=self.metrics, catch_up=self.catch_up,
            max_record_bytes=self.app.conf.producer_max_request_size,
            on_deadlines=self._deadlines_written, rules_fingerprint=self.loaded.fingerprint,
            fhir_base_url=settings.fhir_base_url, validate_fhir=settings.fhir_validation == "full",
            record_level=logging.getLevelName(settings.record_log_level.upper()),
        )
        self._held_since = time.monotonic()
        self.sharing = BatchSharing(self.records, settings.work_helper)
        self.app.add_dependency(self.sharing)
        self.deadline_scan = DeadlineScan(
            entries=self, index=self.index, consumer=self.consumer, send_alert=self._send_alert,
            send_outcome=lambda key, value, headers: self.outcomes.send_soon(key=key, value=value, headers=headers),
            ledger=self.ledger, catch_up=self.catch_up, metrics=self.metrics, clock=clock,
            is_ready=self.is_ready, ledger_timeout=settings.deadline_scan_seconds,
        )
        collect_young_objects_less_often()
        freeze_start_up_objects()  # last: everything the worker is built of exists

    def _build_app(self) -> faust.App:
        s = self.settings
        app = faust.App(
            s.group_id,
            broker=[f"kafka://{host}" for host in s.kafka_bootstrap.split(",")],
            broker_credentials=faust_credentials(s),
            store=table_store.register() if s.store == "rocksdb" else "memory://",
            datadir=str(s.data_dir),
            topic_partitions=s.partitions,
            topic_replication_factor=s.replication_factor,
            broker_session_timeout=s.session_timeout_seconds,
            broker_heartbeat_interval=s.session_timeout_seconds / 4,
            consumer_auto_offset_reset="earliest",
            recovery_consistency_check=s.recovery_consistency_check,
            table_standby_replicas=s.standby_replicas,
            # A FHIR message is about 8 KB: at aiokafka's default (16 KB batches, no linger)
            # nearly every record was a produce request of its own, each a socket write.
            producer_max_batch_size=PRODUCER_BATCH_BYTES,
            producer_linger_ms=PRODUCER_LINGER_MS,
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
        self.dead_letter_marks = app.Table("dead-letter-marks", key_type=bytes, value_type=bytes,
                                           partitions=s.partitions, on_changelog_event=self._on_changelog_event)

        @app.agent(self.inputs, name="episode-processor")
        async def episode_processor(stream: faust.StreamT) -> None:
            # A batch is acked once handled; Faust flushes the producer before it commits.
            async for events in stream.take_events(s.batch_max_records, within=s.batch_wait_seconds):
                self._held_since = time.monotonic()
                messages, writers, gaps = await self._with_missed(events)
                await self.sharing.handle(messages, lambda i: _as_current(writers[i]), self._pause)
                await self.outbox.send()
                for tp, offsets in gaps:  # handled and sent: Faust may commit past them now
                    await app.consumer._add_gap(tp, offsets.start, offsets.stop - 1)  # type: ignore[attr-defined]

        @app.timer(s.deadline_scan_seconds, name="deadline-scan")
        async def deadline_scan() -> None:
            await self.deadline_scan.run()

        @app.timer(s.stall_seconds / 4, name="progress-check")
        async def progress_check() -> None:
            await self._check_progress()

        @app.on_partitions_revoked.connect  # type: ignore[arg-type]  # mode's Signal typing
        async def on_revoked(sender: Any, revoked: set[TP], **_: Any) -> None:
            for tp in revoked:
                self.catch_up.forget(tp)
            self.trail.forget(revoked)

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
            if self._indexing is None:  # the first recovery: Faust's own objects exist now too
                freeze_start_up_objects()
            # In the background: Faust resumes the streams once this signal's handlers return,
            # and a scan meanwhile looks at what the index holds so far.
            if self._indexing is not None:
                self._indexing.cancel()
            self._indexing = asyncio.ensure_future(self._index_deadlines())

        return app

    # -- the deadline table as the timer reads it ----------------------------------------------

    async def _index_deadlines(self) -> None:
        """Index the deadline table of the partitions now held; again a second on if it fails."""
        while True:
            started = time.monotonic()
            self._recomputed.clear()
            try:
                indexed = await self.index.rebuild(self._stored_entries())
            except Exception as exc:  # noqa: BLE001 - e.g. a partition's store closed under us
                log.error("deadline index rebuild failed; trying again", error=type(exc).__name__)
                await asyncio.sleep(1.0)
                continue
            log.info("deadlines indexed", referrals=indexed, recomputed=len(self._recomputed),
                     seconds=round(time.monotonic() - started, 3))
            return

    def get(self, key: bytes) -> DeadlineEntry | None:
        if key in self._recomputed:
            return self._recomputed[key]
        stored = self.deadlines.get(key)
        return DEADLINE_ENTRY.decode(stored) if stored is not None else None

    def _deadlines_written(self, key: bytes, entry: DeadlineEntry) -> None:
        self._recomputed.pop(key, None)
        self.deadline_scan.written(key, entry)

    def _stored_entries(self) -> Iterator[tuple[bytes, DeadlineEntry | None]]:
        for key, stored in self.deadlines.items():
            entry = DEADLINE_ENTRY.decode(stored)
            if entry.rules != self.loaded.fingerprint:
                entry = self._recompute(key, entry)
            yield key, entry

    def _recompute(self, key: bytes, entry: DeadlineEntry) -> DeadlineEntry | None:
        """The entry under the rules in force: the policy file changed since it was stored."""
        stored = self.episodes.get(key)
        if stored is None:
            return None
        episode = EPISODE.decode(stored)
        recomputed = DeadlineEntry(entry.partition, Watch.of(episode, evaluation(episode, self.policy)),
                                   self.loaded.fingerprint)
        self._recomputed[key] = recomputed
        return recomputed

    async def _pause(self) -> None:
        """Between slices of a batch: what is handled is packed, and once slices have held the
        event loop for HOLD_SECONDS it goes out and the loop is yielded to (a whole batch would
        hold it for hundreds of milliseconds; a batch of 500 is a second's work on a busy machine)."""
        await self.outbox.pack()
        if time.monotonic() - self._held_since >= HOLD_SECONDS:
            await self.outbox.send_ready()
            await asyncio.sleep(0)
            self._held_since = time.monotonic()

    async def _with_missed(self, events: list[EventT]) -> tuple[list[Any], list[EventT], list[tuple[TP, range]]]:
        """The records of `events`, each preceded by any of its partition's records that the
        consumer skipped (read from the broker), with the event each is written as, and the
        offsets so read (offset_trail.py)."""
        messages: list[Any] = []
        writers: list[EventT] = []
        missed: list[tuple[TP, range]] = []
        unknown = {event.message.tp for event in events if not self.trail.knows(event.message.tp)}
        if unknown:
            for tp, offset in (await self._reading_starts(unknown)).items():
                self.trail.start(tp, offset)
        for event in events:
            message = event.message
            tp = message.tp
            offsets = self.trail.missing(tp, message.offset)
            if offsets:
                found = await self._read_missed(tp, offsets)
                messages += found
                writers += [event] * len(found)
                missed.append((tp, offsets))
            messages.append(message)
            writers.append(event)
            self.trail.given(tp, message.offset)
        return messages, writers, missed

    async def _reading_starts(self, tps: set[TP]) -> dict[TP, int]:
        try:
            return await self.reader.starts(tps)
        except Exception as exc:  # noqa: BLE001 - without it a skipped first record goes unseen
            _stop_without_committing("where input partitions start could not be read", exc,
                                     partitions=sorted(tp.partition for tp in tps))

    async def _read_missed(self, tp: TP, offsets: range) -> list[MissedRecord]:
        try:
            found = await self.reader.read(tp.topic, tp.partition, offsets)
        except Exception as exc:  # noqa: BLE001 - a commit now could pass them: stop, read them again
            _stop_without_committing("input records the consumer skipped could not be read", exc,
                                     topic=tp.topic, partition=tp.partition)
        self.metrics.records_missed.inc(len(found))
        log.warning("input records the consumer skipped, read from the broker", topic=tp.topic,
                    partition=tp.partition, first=offsets.start, last=offsets.stop - 1, records=len(found))
        return found

    async def _send_alert(self, key: bytes, value: bytes, headers: Headers) -> Sent:
        return await self.app.producer.send_and_wait(ALERTS_TOPIC, key, value, partition=None,
                                                     timestamp=None, headers=headers)

    # -- recovery: how much changelog a rebalance or restart had to read -----------------------

    async def _on_changelog_event(self, event: Any) -> None:
        # Standby replicas read changelogs all the time; only what active recovery read counts.
        if self.app.in_recovery:
            self._recovered_records += 1

    async def _changelog_ends(self, *tps: TP) -> Mapping[TP, int]:
        """End offsets as Faust's consumer reports them, with a changelog partition's corrected
        to the end of its last batch: Faust recovers tables up to these (direct_reads.py,
        `batch_ends`)."""
        ends = dict(await self._reported_ends(*tps))
        changelogs = {tp: end for tp, end in ends.items() if tp.topic not in INPUT_TOPICS and end}
        if changelogs:
            try:
                ends.update(await self.reader.batch_ends(changelogs))
            except Exception as exc:  # noqa: BLE001 - recovery goes on to the ends reported
                log.warning("changelog ends could not be read; recovering to the ends reported",
                            error=type(exc).__name__)
        return ends

    async def _check_progress(self) -> None:
        """Send the consumer back to records that wait unhandled on a quiet partition, or stop
        if it does not give them (progress_watch.py)."""
        now = time.monotonic()
        generation = self.app.consumer_generation_id
        if not self.is_ready() or self._watching is None or self._watching[0] != generation:
            # Recovering, or rebalanced since the last look: partitions start being watched anew.
            self._watching = (generation, now) if self.is_ready() else None
            self.progress.reset()
            return
        held = [tp for tp in self.consumer.assignment() if tp.topic in INPUT_TOPICS]
        quiet = self.progress.quiet(held, {tp: self.catch_up.last_handled(tp) for tp in held},
                                    self._watching[1], now)
        if not quiet:
            return
        try:
            expected = {tp: self.trail.next(tp) for tp in quiet}
            expected.update(await self.reader.starts([tp for tp, offset in expected.items() if offset is None]))
            waiting = await self.reader.waiting(expected)
        except Exception as exc:  # noqa: BLE001 - the broker watch reports an outage; look again later
            log.warning("progress check could not read the broker", error=type(exc).__name__)
            return
        if self.app.consumer_generation_id != generation or not self.is_ready():
            return  # rebalanced meanwhile: these partitions may be another worker's now
        for tp in quiet:
            remedy = self.progress.remedy(tp, waiting[tp], now)
            if remedy is Remedy.READ_AGAIN:
                self.metrics.consumer_rewinds.inc()
                log.warning("input records waiting that the consumer did not give; reading them again",
                            topic=tp.topic, partition=tp.partition, offset=waiting[tp])
                # Faust's seek, not aiokafka's: Faust drops fetched records below its read
                # offset, and only its own seek moves that back too.
                await self.app.consumer.seek(tp, waiting[tp])  # type: ignore[arg-type]
            elif remedy is Remedy.STOP:
                _stop_without_committing(
                    f"input records waited {self.settings.stall_seconds:g} s after the consumer was sent back "
                    "to them (it is not giving records)", None,
                    topic=tp.topic, partition=tp.partition, offset=waiting[tp])

    # -- what the web endpoints report -------------------------------------------------------

    def is_ready(self) -> bool:
        recovery = self.app.tables.recovery  # type: ignore[attr-defined]  # on the concrete TableManager
        return recovery.completed.is_set() and not recovery.in_recovery and not self.app.rebalancing

    async def consumer_lags(self) -> dict[tuple[str, int], int]:
        """Per assigned input partition: the broker's end offset as last fetched, less our position."""
        consumer = self.app.consumer
        committed = self.consumer.committed()
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
