"""Kafka reachability for `podlink deliver` and `podlink intake`, said as the worker says it.

aiokafka logs every failed reconnect, fetch and coordinator lookup (about 60 lines a second for
one deliver while a broker is down, measured). The worker's BrokerOutage decides what to say
instead: once that the broker is unreachable, now and then how long for, once that it is back.
"""
from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

import structlog
from aiokafka.admin import AIOKafkaAdminClient

from podlink.streams.worker.broker_watch import (
    CLIENT_LOGGERS,
    OUTAGE_AFTER_SECONDS,
    PROBE_SECONDS,
    Announcement,
    BrokerOutage,
    DropConnectionFailures,
)

log = structlog.get_logger("podlink")


class KafkaWatch:
    def __init__(self, options: dict[str, Any], report_every: float) -> None:
        self._options = options
        self._outage = BrokerOutage(OUTAGE_AFTER_SECONDS, report_every, time.monotonic())
        self._filter = DropConnectionFailures(lambda: self._say(self._outage.client_error(time.monotonic())))
        self._task: asyncio.Task[None] | None = None

    @property
    def reachable(self) -> bool:
        return self._outage.reachable

    def start(self) -> None:
        for name in CLIENT_LOGGERS:
            logging.getLogger(name).addFilter(self._filter)
        self._task = asyncio.create_task(self._probe(), name="kafka-watch")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        for name in CLIENT_LOGGERS:
            logging.getLogger(name).removeFilter(self._filter)

    async def _probe(self) -> None:
        admin: AIOKafkaAdminClient | None = None
        try:
            while True:
                try:
                    if admin is None:
                        admin = AIOKafkaAdminClient(client_id="podlink-kafka-watch", **self._options)
                        await asyncio.wait_for(admin.start(), PROBE_SECONDS * 0.9)
                    await asyncio.wait_for(admin.describe_cluster(), PROBE_SECONDS * 0.9)
                except asyncio.CancelledError:
                    raise
                except Exception:  # noqa: BLE001 - whatever stops a metadata round trip is a failure
                    if admin is not None:
                        await admin.close()
                        admin = None
                    self._say(self._outage.failure(time.monotonic()))
                else:
                    self._say(self._outage.success(time.monotonic()))
                await asyncio.sleep(PROBE_SECONDS)
        finally:
            if admin is not None:
                await admin.close()

    @staticmethod
    def _say(announcements: list[Announcement]) -> None:
        for said in announcements:
            getattr(log, said.level)(said.event, seconds=said.seconds, client_errors_dropped=said.client_errors)
