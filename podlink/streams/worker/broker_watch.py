"""Whether the Kafka broker answers, said in a few log lines instead of the clients' thousands.

aiokafka logs every failed reconnect, metadata refresh, fetch and coordinator lookup, about 130
error lines a second while a broker is down. Those records are recognised and dropped here;
`BrokerOutage` decides what a worker says instead: once that the broker is unreachable, now and
then for how long, once that it is back. Reachability is judged from a real round trip: a probe
asks the cluster for its metadata every PROBE_SECONDS. Failures, the clients' or the probe's,
become an outage when no probe succeeds for OUTAGE_AFTER_SECONDS; the next success ends it.
"""
from __future__ import annotations

import asyncio
import logging
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Literal

import faust
import structlog
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import (
    GroupCoordinatorNotAvailableError,
    KafkaConnectionError,
    NodeNotReadyError,
    NotCoordinatorForGroupError,
    RequestTimedOutError,
)
from mode import Service
from prometheus_client import Gauge

log = structlog.get_logger("podlink")

PROBE_SECONDS = 2.0
# A single failed request (a coordinator moving, a leader election) is no outage: the probe
# has a few chances to succeed before the worker says the broker is unreachable.
OUTAGE_AFTER_SECONDS = 3 * PROBE_SECONDS

# Every logger of aiokafka that reports connection trouble (aiokafka.client logs as "aiokafka").
CLIENT_LOGGERS = (
    "aiokafka", "aiokafka.conn", "aiokafka.cluster", "aiokafka.admin.client",
    "aiokafka.consumer.consumer", "aiokafka.consumer.fetcher", "aiokafka.consumer.group_coordinator",
    "aiokafka.producer.producer", "aiokafka.producer.sender",
)
# aiokafka 0.14's templates for a broker it cannot reach, as in the log of a killed broker.
CONNECTION_TEMPLATES = frozenset({
    'Unable connect to "%s:%s": %s',
    "Unable connect to node with id %s: %s",
    "Unable to update metadata from %s",
    "Unable to request metadata from node with id %s: %r",
    "Failed fetch messages from %s: %s",
    "Failed fetch offsets from %s: %s",
    "Group Coordinator Request failed: %s",
    "Marking the coordinator dead (node %s)for group %s.",
    "Heartbeat session expired - marking coordinator dead",
    "Heartbeat send request failed: %s. Will retry.",
    "Error sending %s to node %s [%s] -- marking coordinator dead",
})
# Any other client line whose cause is one of these says the same thing.
CONNECTION_ERRORS = (
    KafkaConnectionError, NodeNotReadyError, RequestTimedOutError, GroupCoordinatorNotAvailableError,
    NotCoordinatorForGroupError, ConnectionError, asyncio.TimeoutError,
)


def is_connection_failure(template: object, args: object) -> bool:
    """Whether a client's log record (its unformatted message and arguments) reports a broker it
    cannot reach."""
    if template in CONNECTION_TEMPLATES:
        return True
    values = args if isinstance(args, tuple) else (args,)
    return any(isinstance(value, CONNECTION_ERRORS) for value in values)


Event = Literal[
    "broker unreachable", "broker still unreachable", "broker reachable again", "kafka client errors"
]
LEVELS: dict[Event, str] = {
    "broker unreachable": "error",
    "broker still unreachable": "error",
    "broker reachable again": "info",
    "kafka client errors": "warning",
}


@dataclass(frozen=True)
class Announcement:
    """A line for the worker's log.

    `seconds`: how long the broker has been (or was) unreachable; for "kafka client errors",
    the time they were counted over. `client_errors`: the client's lines dropped meanwhile.
    """

    event: Event
    seconds: int
    client_errors: int

    @property
    def level(self) -> str:
        return LEVELS[self.event]


@dataclass
class BrokerOutage:
    """Reachability of the broker, fed with failures, successes and the time (monotonic seconds).

    Unreachable once failures have gone on for `outage_after` seconds with no success between;
    reachable again at the next success. While unreachable, a reminder every `report_every`
    seconds. While reachable, client errors that successes contradict (one broker of several
    down, say) are summed up at a success, at most every `report_every` seconds.
    """

    outage_after: float
    report_every: float
    started: float
    reachable: bool = True
    _failing_since: float | None = None
    _down_since: float = 0.0
    _last_report: float = field(init=False)
    _client_errors: int = 0

    def __post_init__(self) -> None:
        self._last_report = self.started

    def client_error(self, now: float) -> list[Announcement]:
        self._client_errors += 1
        return self.failure(now)

    def failure(self, now: float) -> list[Announcement]:
        if self._failing_since is None:
            self._failing_since = now
        if self.reachable and now - self._failing_since >= self.outage_after:
            self.reachable = False
            self._down_since = self._failing_since
            return self._say("broker unreachable", now, now - self._down_since)
        if not self.reachable and self._due(now):
            return self._say("broker still unreachable", now, now - self._down_since)
        return []

    def success(self, now: float) -> list[Announcement]:
        self._failing_since = None
        if not self.reachable:
            self.reachable = True
            return self._say("broker reachable again", now, now - self._down_since)
        if self._client_errors and self._due(now):
            return self._say("kafka client errors", now, now - self._last_report)
        return []

    def _due(self, now: float) -> bool:
        return now - self._last_report >= self.report_every

    def _say(self, event: Event, now: float, seconds: float) -> list[Announcement]:
        said = Announcement(event, round(seconds), self._client_errors)
        self._client_errors = 0
        self._last_report = now
        return [said]


class DropConnectionFailures(logging.Filter):
    """Drops the client's connection-failure records, telling `seen` of each."""

    def __init__(self, seen: Callable[[], None]) -> None:
        super().__init__()
        self._seen = seen

    def filter(self, record: logging.LogRecord) -> bool:
        if is_connection_failure(record.msg, record.args):
            self._seen()
            return False
        return True


class BrokerWatch(Service):
    """Feeds `BrokerOutage` from the clients' logs and a metadata probe; logs and sets the gauge.

    A dependency of the Faust app, so it runs from the app's start, through table recovery,
    until it stops. Faust runs its consumer on a thread of its own: records come from there too.
    """

    def __init__(self, outage: BrokerOutage, gauge: Gauge, probe_options: dict[str, Any],
                 clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__()
        self._outage = outage
        self._gauge = gauge
        self._probe_options = probe_options
        self._clock = clock
        self._lock = threading.Lock()
        self._admin: AIOKafkaAdminClient | None = None
        gauge.set(1)

    def client_error(self) -> None:
        self._apply(self._outage.client_error)

    @Service.timer(PROBE_SECONDS)
    async def probe(self) -> None:
        try:
            await asyncio.wait_for(self._ask_for_metadata(), timeout=PROBE_SECONDS * 0.9)
        except Exception:  # noqa: BLE001 - whatever stops a metadata round trip is a failure
            self._apply(self._outage.failure)
        else:
            self._apply(self._outage.success)

    async def on_shutdown(self) -> None:
        # After the probe's timer has stopped, so no probe opens a client once this has run.
        if self._admin is not None:
            await self._admin.close()

    async def _ask_for_metadata(self) -> None:
        if self._admin is None:
            admin = AIOKafkaAdminClient(**self._probe_options)
            try:
                await admin.start()
            except BaseException:
                await admin.close()
                raise
            self._admin = admin
        await self._admin.describe_cluster()

    def _apply(self, step: Callable[[float], list[Announcement]]) -> None:
        with self._lock:
            said = step(self._clock())
            self._gauge.set(1 if self._outage.reachable else 0)
        for announcement in said:
            getattr(log, announcement.level)(announcement.event, seconds=announcement.seconds,
                                             client_errors_dropped=announcement.client_errors)


def install_broker_watch(app: faust.App, gauge: Gauge, bootstrap: str, client_options: dict[str, Any],
                         report_every: float) -> None:
    """Quiets the Kafka clients' connection errors and reports reachability for `app`'s worker."""
    watch = BrokerWatch(
        BrokerOutage(OUTAGE_AFTER_SECONDS, report_every, started=time.monotonic()), gauge,
        {"bootstrap_servers": bootstrap, "client_id": "podlink-broker-watch",
         "request_timeout_ms": int(PROBE_SECONDS * 1000), **client_options})
    quiet = DropConnectionFailures(watch.client_error)
    for name in CLIENT_LOGGERS:
        logging.getLogger(name).addFilter(quiet)
    app.add_dependency(watch)
