"""The deadline timer's decisions: which alerts go out now, and only once they are safe to send.

An alert pages a person, so it waits until the worker has read both input topics of the
referral's partition to their end (a later record in a backlog may meet or close the
deadline), until the alert ledger has read what was already raised, and it is recorded as
raised only once the broker has it. A referral that can no longer alert (`can_forget`) is
forgotten by the ledger, which so holds the ids of referrals that can still alert.
"""
from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Mapping
from datetime import datetime
from typing import Protocol

import structlog
from faust.types import TP

from podlink.streams.core.alerts import ALERT_TYPES, alert_event, alert_id
from podlink.streams.core.deadlines import alert_due_at, due_alerts
from podlink.streams.core.outcomes import flag_event, missed_event
from podlink.streams.pipeline.alert_settling import can_forget
from podlink.streams.worker.alert_ledger import Sent
from podlink.streams.worker.catchup import CatchUp
from podlink.streams.worker.cloudevents_binding import Headers, structured
from podlink.streams.worker.codecs import DeadlineEntry
from podlink.streams.worker.metrics import Metrics
from podlink.streams.worker.settings import INPUT_TOPICS
from podlink.streams.worker.watch_index import WatchIndex

log = structlog.get_logger("podlink")
# How long raising what is due may hold the event loop before yielding to it.
HOLD_SECONDS = 0.010
Clock = Callable[[], datetime]


class Consumer(Protocol):
    """The group consumer, as far as catching up goes."""

    def assignment(self) -> set[TP]: ...
    async def highwaters(self, *tps: TP) -> Mapping[TP, int]: ...
    def committed(self) -> Mapping[TP, int | None]: ...


class Ledger(Protocol):
    def raised(self, alert_id: str) -> bool: ...
    def record(self, alert_id: str, referral: str, sent: Sent) -> None: ...
    def forget(self, referral: str) -> None: ...
    def holds(self, referral: str) -> bool: ...
    async def catch_up(self, timeout: float) -> bool: ...


class Entries(Protocol):
    """The deadline table as the scan reads it (with entries recomputed under new rules)."""

    def get(self, key: bytes) -> DeadlineEntry | None: ...


class DeadlineScan:
    def __init__(self, *, entries: Entries, index: WatchIndex, consumer: Consumer,
                 send_alert: Callable[[bytes, bytes, Headers], Awaitable[Sent]],
                 send_outcome: Callable[[bytes, bytes, Headers], None],
                 ledger: Ledger, catch_up: CatchUp, metrics: Metrics, clock: Clock,
                 is_ready: Callable[[], bool], ledger_timeout: float) -> None:
        self.entries = entries
        self.index = index
        self.consumer = consumer
        self.send_alert = send_alert  # returns where the broker put the alert, once it has it
        self.send_outcome = send_outcome
        self.ledger = ledger
        self.catch_up = catch_up
        self.metrics = metrics
        self.clock = clock
        self.is_ready = is_ready
        self.ledger_timeout = ledger_timeout

    async def run(self) -> None:
        try:
            if await self._scan():
                self.metrics.deadline_scans.inc()
        except Exception as exc:  # noqa: BLE001 - a failed scan is retried; the worker goes on
            log.error("deadline scan failed; retrying at the next scan", error=type(exc).__name__)

    async def _scan(self) -> bool:
        """Raise what is due and safe to raise; False if any alert had to wait for the next scan."""
        if not self.is_ready():
            return False
        now = self.clock()
        self.metrics.deadlines(self.index.counts(now))
        keys = self.index.due(now)
        if not keys:
            return True
        try:
            return await self._look_at(keys, now)
        except BaseException:
            self._again(keys, now)  # nothing looked at is lost: the next scan looks again
            raise

    async def _look_at(self, keys: list[bytes], now: datetime) -> bool:
        if not await self.ledger.catch_up(timeout=self.ledger_timeout):
            log.warning("alert ledger not caught up; alerts wait for the next scan")
            self._again(keys, now)
            return False
        # Entries are read from the table only where alerts may go out now: a backlog can leave
        # thousands due while its partitions are still being read, and each scan read them all
        # (a third of a second at a time in a bench profile). The index knows their partitions.
        partitions = {}
        for key in keys:
            partition = self.index.partition(key)
            if partition is None:
                entry = self.entries.get(key)
                if entry is None:
                    continue
                partition = entry.partition
            partitions[key] = partition
        held = {tp.partition for tp in self.consumer.assignment() if tp.topic in INPUT_TOPICS}
        ready = await self._caught_up_partitions(set(partitions.values()) & held)
        waiting = []
        since = time.monotonic()
        for key, partition in partitions.items():
            if partition not in held:
                self.index.forget(key)  # another worker's to alert on now
            elif partition not in ready:
                waiting.append(key)
            else:
                await self._raise_alerts(key, now)
                if time.monotonic() - since >= HOLD_SECONDS:
                    await asyncio.sleep(0)
                    since = time.monotonic()
        self._again(waiting, now)
        return not waiting

    def _again(self, keys: list[bytes], now: datetime) -> None:
        for key in keys:
            self.index.wake_at(key, now.timestamp())

    async def _caught_up_partitions(self, partitions: set[int]) -> set[int]:
        assigned = self.consumer.assignment()
        tps = [TP(topic, p) for p in partitions for topic in INPUT_TOPICS if TP(topic, p) in assigned]
        ends = await self.consumer.highwaters(*tps)
        committed = self.consumer.committed()
        now = time.monotonic()
        return {
            p for p in partitions
            if all(
                TP(topic, p) in ends
                and self.catch_up.caught_up(TP(topic, p), ends[TP(topic, p)], committed.get(TP(topic, p)), now)
                for topic in INPUT_TOPICS
            )
        }

    async def _raise_alerts(self, key: bytes, now: datetime) -> None:
        # Read the entry again: records processed while we waited may have met or closed a deadline.
        entry = self.entries.get(key)
        if entry is None:
            return
        for deadline in entry.watch.deadlines:
            raised = frozenset(k for k in ALERT_TYPES if self.ledger.raised(alert_id(deadline, k)))
            for kind in due_alerts(deadline, raised, now):
                alert = alert_event(deadline, kind, now)
                sent = await self.send_alert(key, *structured(alert))
                self.ledger.record(alert["id"], deadline.referral_id, sent)
                if kind == "breached":
                    self.send_outcome(key, *structured(missed_event(deadline, now)))
                self.metrics.alert(kind, (self.clock() - alert_due_at(deadline, kind)).total_seconds())
                log.warning("alert raised", alert=alert["type"], alert_id=alert["id"],
                            referral=deadline.referral_id, policy=deadline.policy,
                            due=alert["data"]["dueAt"], due_local=alert["data"]["dueAtLocal"])
        for flag in entry.watch.flags:
            alert = flag_event(flag)
            if flag.at > now or self.ledger.raised(alert["id"]):
                continue
            if flag.only_while_open and entry.watch.closed:
                continue  # closed later in the backlog: no page for it now
            sent = await self.send_alert(key, *structured(alert))
            self.ledger.record(alert["id"], flag.referral_id, sent)
            self.metrics.alert("flagged", (self.clock() - flag.at).total_seconds())
            log.warning("alert raised", alert=alert["type"], alert_id=alert["id"],
                        referral=flag.referral_id, rule=flag.rule)
        if self.entries.get(key) != entry:
            return  # a record changed it while its alerts were sent, and told the index
        self.index.put(key, entry, after=now)
        if can_forget(entry.watch, self.ledger.raised):
            self.ledger.forget(key.decode())

    def written(self, key: bytes, entry: DeadlineEntry) -> None:
        """A record wrote the referral's entry. A closed one whose ids the ledger holds is looked
        at by the next scan even with no moment left (a warning whose deadline was then met in
        time leaves none), so that they are forgotten once the scan knows what was raised and
        has read the input to its end."""
        self.index.put(key, entry)
        if entry.watch.closed and self.ledger.holds(key.decode()):
            self.index.wake_at(key, 0.0)
