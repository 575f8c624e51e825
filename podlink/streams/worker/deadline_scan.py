"""The deadline timer's decisions: which alerts go out now, and only once they are safe to send.

An alert pages a person, so it waits until the worker has read both input topics of the
referral's partition to their end (a later record in a backlog may meet or close the
deadline), until the alert ledger has read what was already raised, and it is recorded as
raised only once the broker has it. A referral that can no longer alert (`can_forget`) is
forgotten by the ledger, which so holds the ids of referrals that can still alert.

Alerts are handed to the producer for up to RAISE_AT_ONCE referrals before the scan waits for
the broker to have them. Waiting for each in turn held the worker's other output behind every
alert's round trip (the producer keeps one request in flight per broker), so that a burst of
alerts stalled record handling for seconds (measured in the bench's paced phase).
"""
from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

import structlog
from faust.types import TP

from podlink.streams.core.alerts import ALERT_TYPES, alert_event, alert_id
from podlink.streams.core.deadlines import AlertKind, Deadline, alert_due_at, due_alerts
from podlink.streams.core.outcomes import flag_event, missed_event
from podlink.streams.core.rules import Flag
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
# Referrals whose alerts may be with the producer at once, not yet known to be on the broker.
RAISE_AT_ONCE = 100
Clock = Callable[[], datetime]
# Hands an alert record (key, value, headers) to the producer; what it returns is awaited for
# where the broker put the alert, once it has it.
SendAlert = Callable[[bytes, bytes, Headers], Awaitable[Awaitable[Sent]]]


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


@dataclass(frozen=True)
class _Handed:
    """An alert with the producer, and what follows once the broker has it."""

    delivery: Awaitable[Sent]
    alert_id: str
    referral: str
    then: Callable[[], None]


@dataclass
class _Raising:
    """A referral's alerts on their way: once the broker has them all, the entry they were
    raised from is looked at again from its next moment."""

    key: bytes
    entry: DeadlineEntry
    handed: list[_Handed] = field(default_factory=list)


class DeadlineScan:
    def __init__(self, *, entries: Entries, index: WatchIndex, consumer: Consumer,
                 send_alert: SendAlert,
                 send_outcome: Callable[[bytes, bytes, Headers], None],
                 ledger: Ledger, catch_up: CatchUp, metrics: Metrics, clock: Clock,
                 is_ready: Callable[[], bool], ledger_timeout: float) -> None:
        self.entries = entries
        self.index = index
        self.consumer = consumer
        self.send_alert = send_alert
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
        raising: list[_Raising] = []
        since = time.monotonic()
        try:
            for key, partition in partitions.items():
                if partition not in held:
                    self.index.forget(key)  # another worker's to alert on now
                elif partition not in ready:
                    waiting.append(key)
                else:
                    if (handed := await self._hand_over(key, now)) is not None:
                        raising.append(handed)
                    if len(raising) >= RAISE_AT_ONCE:
                        settling, raising = raising, []
                        await self._settle(settling, now)
                    if time.monotonic() - since >= HOLD_SECONDS:
                        await asyncio.sleep(0)
                        since = time.monotonic()
        except Exception:
            with contextlib.suppress(Exception):  # the first failure is the one to report
                await self._settle(raising, now)  # what the broker has is recorded as raised
            raise
        await self._settle(raising, now)
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

    async def _hand_over(self, key: bytes, now: datetime) -> _Raising | None:
        """Hand the referral's due alerts to the producer; nothing is raised until `_settle`."""
        # Read the entry again: records processed while we waited may have met or closed a deadline.
        entry = self.entries.get(key)
        if entry is None:
            return None
        raising = _Raising(key, entry)
        for deadline in entry.watch.deadlines:
            raised = frozenset(k for k in ALERT_TYPES if self.ledger.raised(alert_id(deadline, k)))
            for kind in due_alerts(deadline, raised, now):
                alert = alert_event(deadline, kind, now)
                raising.handed.append(_Handed(
                    await self.send_alert(key, *structured(alert)), alert["id"], deadline.referral_id,
                    lambda deadline=deadline, kind=kind, alert=alert: self._deadline_raised(
                        key, deadline, kind, alert, now)))
        for flag in entry.watch.flags:
            alert = flag_event(flag)
            if flag.at > now or self.ledger.raised(alert["id"]):
                continue
            if flag.only_while_open and entry.watch.closed:
                continue  # closed later in the backlog: no page for it now
            raising.handed.append(_Handed(
                await self.send_alert(key, *structured(alert)), alert["id"], flag.referral_id,
                lambda flag=flag, alert=alert: self._flag_raised(flag, alert)))
        return raising

    async def _settle(self, raising: list[_Raising], now: datetime) -> None:
        """Record every alert the broker has; then, if it refused any, raise the first refusal
        (`_scan` has every referral looked at again by the next scan, which raises what the
        ledger lacks)."""
        refused: Exception | None = None
        for r in raising:
            for handed in r.handed:
                try:
                    sent = await handed.delivery
                except Exception as exc:  # noqa: BLE001 - the others may be on the broker: record them
                    refused = refused or exc
                    continue
                self.ledger.record(handed.alert_id, handed.referral, sent)
                handed.then()
            self._looked_at(r.key, r.entry, now)
        if refused is not None:
            raise refused

    def _deadline_raised(self, key: bytes, deadline: Deadline, kind: AlertKind, alert: dict[str, Any],
                         now: datetime) -> None:
        if kind == "breached":
            self.send_outcome(key, *structured(missed_event(deadline, now)))
        self.metrics.alert(kind, (self.clock() - alert_due_at(deadline, kind)).total_seconds())
        log.warning("alert raised", alert=alert["type"], alert_id=alert["id"],
                    referral=deadline.referral_id, policy=deadline.policy,
                    due=alert["data"]["dueAt"], due_local=alert["data"]["dueAtLocal"])

    def _flag_raised(self, flag: Flag, alert: dict[str, Any]) -> None:
        self.metrics.alert("flagged", (self.clock() - flag.at).total_seconds())
        log.warning("alert raised", alert=alert["type"], alert_id=alert["id"],
                    referral=flag.referral_id, rule=flag.rule)

    def _looked_at(self, key: bytes, entry: DeadlineEntry, now: datetime) -> None:
        if self.entries.get(key) != entry:
            return  # a record changed it while its alerts were on their way, and told the index
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
