"""A worker's HTTP endpoints for its orchestrator and monitoring: health, readiness, metrics.

Served by Faust's own web server, which starts before table recovery, so a probe can tell a
worker that is alive but still recovering (healthy, not ready) from one that is stuck.
"""
from __future__ import annotations

import asyncio
import contextlib
import socket
from typing import Any

from podlink.streams.worker.app import Worker
from podlink.streams.worker.metrics import CONTENT_TYPE


# Lags need the broker's offsets; a scrape must still answer when the broker does not, since
# that is when podlink_broker_reachable matters most.
LAG_SECONDS = 2.0


class WebPortError(RuntimeError):
    pass


def check_port(bind: str, port: int) -> None:
    """Fail before Kafka is touched, and in a sentence, if the endpoints' port is taken."""
    with socket.socket(socket.AF_INET6 if ":" in bind else socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((bind, port))
        except OSError as exc:
            raise WebPortError(f"cannot serve /healthz, /readyz and /metrics on {bind}:{port} "
                               f"({exc.strerror}); set PODLINK_WEB_PORT or PODLINK_WEB_BIND") from exc


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
        with contextlib.suppress(asyncio.TimeoutError):  # the last lags stay until the broker answers
            worker.metrics.lag(await asyncio.wait_for(worker.consumer_lags(), LAG_SECONDS))
        return view.bytes(worker.metrics.exposition(), content_type=CONTENT_TYPE)
