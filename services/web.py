"""A worker's HTTP endpoints for its orchestrator and monitoring: health, readiness, metrics.

Served by Faust's own web server, which starts before table recovery, so a probe can tell a
worker that is alive but still recovering (healthy, not ready) from one that is stuck.
"""
from __future__ import annotations

from typing import Any

from streams.app import Worker
from streams.metrics import CONTENT_TYPE


def add_endpoints(worker: Worker) -> None:
    app = worker.app

    @app.page("/healthz")
    async def healthz(view: Any, request: Any) -> Any:
        return view.text("ok\n")

    @app.page("/readyz")
    async def readyz(view: Any, request: Any) -> Any:
        if worker.is_ready():
            return view.text("ready\n")
        return view.text("recovering tables or rebalancing\n", status=503)

    @app.page("/metrics")
    async def metrics(view: Any, request: Any) -> Any:
        worker.metrics.ready.set(1 if worker.is_ready() else 0)
        worker.metrics.lag(await worker.consumer_lags())
        return view.bytes(worker.metrics.exposition(), content_type=CONTENT_TYPE)
