"""A Notifier over real local webhook receivers, with its state in memory and a clock the test sets."""
from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import aiohttp

from podlink.services.notify.channels import Channels
from podlink.services.notify.metrics import NotifyMetrics
from podlink.services.notify.notifier import Notifier, Retry
from podlink.services.notify.rota import load_rota
from tests.unit.services.notify.servers import Recorder, recorder
from tests.unit.services.notify.support import SECRETS, MemoryStore, write_rota


@dataclass
class Clock:
    now: datetime

    def __call__(self) -> datetime:
        return self.now


@dataclass
class Harness:
    notifier: Notifier
    hooks: Recorder
    clock: Clock
    store: MemoryStore
    published: list[dict[str, Any]] = field(default_factory=list)

    def types(self) -> list[str]:
        return [e["type"].removeprefix("uk.nhs.podlink.") for e in self.published]


# Long enough that a local receiver answers in time on a loaded machine: at 0.5 s a stall of the
# test's loop on CI timed every request out, and each was sent again (at least once, as designed),
# so a test counting what was received saw everything twice. The test of a hanging receiver sets
# its own short timeout.
DEFAULT_RETRY = Retry(attempts=3, first_wait=0.01, timeout=10.0)


@asynccontextmanager
async def harness(folder: Path, now: datetime, store: MemoryStore | None = None,
                  retry: Retry = DEFAULT_RETRY, rota_text: str | None = None
                  ) -> AsyncIterator[Harness]:
    async with recorder() as hooks, aiohttp.ClientSession() as session:
        rota = load_rota(write_rota(folder, hooks.url, **({"text": rota_text} if rota_text else {})), SECRETS)
        published: list[dict[str, Any]] = []

        async def publish(event: dict[str, Any]) -> None:
            published.append(event)

        clock = Clock(now)
        store = store or MemoryStore()
        notifier = Notifier(rota, store, Channels(rota, SECRETS, hooks.url + "/pagerduty", session), publish,
                            NotifyMetrics(), clock, "https://board.example", retry)
        h = Harness(notifier, hooks, clock, store, published)
        yield h
        await notifier.drain()
