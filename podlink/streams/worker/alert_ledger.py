"""Which SLA alerts have been published, read back from `pod.sla-alerts.v1` itself.

The alerts topic is the only record that cannot disagree with what on-call staff received, so
a worker that restarts, or takes over another worker's partitions, learns from it which alerts
exist before it raises any: each alert goes out at most once. Alert ids are fixed by what the
alert is about (the referral, the policy and cycle or the flag's rule and cause, the kind), so
the ledger is the set of ids on the topic.
"""
from __future__ import annotations

import asyncio
import json
from collections.abc import Mapping
from typing import Any

import structlog
from aiokafka import AIOKafkaConsumer
from mode import Service

log = structlog.get_logger("podlink")


class AlertLedger(Service):
    """Started and stopped with the Faust app, as one of its dependencies."""

    def __init__(self, bootstrap: str, topic: str, client_options: Mapping[str, Any] | None = None) -> None:
        super().__init__()
        self._topic = topic
        self._bootstrap = bootstrap
        self._client_options = dict(client_options or {})
        self._raised: set[str] = set()
        self._consumer: AIOKafkaConsumer

    async def on_start(self) -> None:
        # Made here, not in __init__: aiokafka clients belong to the running event loop.
        # Without a group, subscribe() assigns every partition, and follows new ones.
        self._consumer = AIOKafkaConsumer(
            self._topic, bootstrap_servers=self._bootstrap, enable_auto_commit=False,
            group_id=None, auto_offset_reset="earliest", **self._client_options,
        )
        await self._consumer.start()
        log.info("alert ledger started", topic=self._topic)

    async def on_stop(self) -> None:
        await self._consumer.stop()
        log.info("alert ledger stopped", topic=self._topic)

    def raised(self, alert_id: str) -> bool:
        return alert_id in self._raised

    def record(self, alert_id: str) -> None:
        self._raised.add(alert_id)

    async def catch_up(self, timeout: float) -> bool:
        """Read the topic up to its end as of now; False if that took longer than `timeout`."""
        deadline = asyncio.get_running_loop().time() + timeout
        while not self._consumer.assignment():
            if asyncio.get_running_loop().time() > deadline:
                return False
            await asyncio.sleep(0.05)
        ends = await self._consumer.end_offsets(list(self._consumer.assignment()))
        for tp, end in ends.items():
            while await self._consumer.position(tp) < end:
                if asyncio.get_running_loop().time() > deadline:
                    return False
                await asyncio.sleep(0.05)
        return True

    @Service.task
    async def _read(self) -> None:
        async for record in self._consumer:
            try:
                self._raised.add(json.loads(record.value)["id"])
            except (ValueError, KeyError, TypeError):
                continue  # not ours to judge: only podlink writes here, and it writes JSON
