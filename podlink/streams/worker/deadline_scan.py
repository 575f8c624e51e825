"""The deadline timer's decisions: which alerts go out now, and only once they are safe to send.

An alert pages a person, so it waits until the worker has read both input topics of the
referral's partition to their end (a later record in a backlog may meet or close the
deadline), until the alert ledger has read what was already raised, and it is recorded as
raised only once the broker has it.
"""
from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from datetime import datetime
from typing import Protocol

import structlog
from faust.types import TP

from podlink.streams.core.alerts import alert_event
from podlink.streams.core.deadlines import Deadline, alert_due_at, due_alerts
from podlink.streams.worker.catchup import CatchUp
from podlink.streams.worker.cloudevents_binding import Headers, structured
from podlink.streams.worker.codecs import DEADLINE_ENTRY, DeadlineEntry
from podlink.streams.worker.metrics import Metrics, deadline_counts
from podlink.streams.worker.settings import INPUT_TOPICS

log = structlog.get_logger("podlink")
Clock = Callable[[], datetime]


class Consumer(Protocol):
    """The group consumer, as far as catching up goes."""

    def assignment(self) -> set[TP]: ...
    async def highwaters(self, *tps: TP) -> Mapping[TP, int]: ...
    def committed(self) -> Mapping[TP, int | None]: ...


class Ledger(Protocol):
    def raised(self, referral_id: str) -> frozenset[str]: ...
    def record(self, referral_id: str, kind: str) -> None: ...
    async def catch_up(self, timeout: float) -> bool: ...


class DeadlineEntries:
    """The deadline table's values as entries: what every scan reads.

    Parsing a stored deadline (30 to 40 µs) was most of a scan's cost, and few deadlines change
    between two scans, so each scan keeps what the last one parsed, keyed by the stored bytes.
    """

    def __init__(self) -> None:
        self._parsed: dict[bytes, DeadlineEntry] = {}

    def read(self, stored: Iterable[bytes]) -> list[DeadlineEntry]:
        parsed = {}
        for value in stored:
            parsed[value] = self._parsed.get(value) or DEADLINE_ENTRY.decode(value)
        self._parsed = parsed  # forgets deadlines that changed or left with their partition
        return list(parsed.values())


class DeadlineScan:
    def __init__(self, *, deadlines: Mapping[bytes, bytes], consumer: Consumer,
                 send_alert: Callable[[bytes, bytes, Headers], Awaitable[None]],
                 ledger: Ledger, catch_up: CatchUp, metrics: Metrics, clock: Clock,
                 is_ready: Callable[[], bool], ledger_timeout: float) -> None:
        self.deadlines = deadlines
        self.consumer = consumer
        self.send_alert = send_alert  # returns once the broker has the alert
        self.ledger = ledger
        self.catch_up = catch_up
        self.metrics = metrics
        self.clock = clock
        self.is_ready = is_ready
        self.ledger_timeout = ledger_timeout
        self._stored = DeadlineEntries()

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
        entries = self._stored.read(self.deadlines.values())
        self.metrics.deadlines(deadline_counts((entry.deadline for entry in entries), now))
        due = [entry for entry in entries
               if due_alerts(entry.deadline, self.ledger.raised(entry.deadline.referral_id), now)]
        if not due:
            return True
        if not await self.ledger.catch_up(timeout=self.ledger_timeout):
            log.warning("alert ledger not caught up; alerts wait for the next scan")
            return False
        partitions = {entry.partition for entry in due}
        ready = await self._caught_up_partitions(partitions)
        for entry in due:
            if entry.partition in ready:
                await self._raise_alerts(entry.deadline.referral_id.encode(), now)
        # A partition this worker no longer holds is another worker's to alert on.
        held = {tp.partition for tp in self.consumer.assignment() if tp.topic in INPUT_TOPICS}
        return ready == partitions & held

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
        # Read the deadline again: records processed while we waited may have met or closed it.
        stored = self.deadlines.get(key)
        if stored is None:
            return
        deadline: Deadline = DEADLINE_ENTRY.decode(stored).deadline
        for kind in due_alerts(deadline, self.ledger.raised(deadline.referral_id), now):
            alert = alert_event(deadline, kind, now)
            await self.send_alert(key, *structured(alert))
            self.ledger.record(deadline.referral_id, kind)
            self.metrics.alert(kind, (self.clock() - alert_due_at(deadline, kind)).total_seconds())
            log.warning("alert raised", alert=alert["type"], alert_id=alert["id"],
                        referral=deadline.referral_id, deadline=alert["data"]["deadline"],
                        deadline_local=alert["data"]["deadlineLocal"])
