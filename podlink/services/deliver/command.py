"""`podlink deliver`: settings checked, topics made, the loop run until SIGINT or SIGTERM."""
from __future__ import annotations

import asyncio
import sys

import structlog
from aiohttp import web
from kafka.errors import KafkaError

from podlink.services.deliver.metrics import DeliverMetrics
from podlink.services.deliver.service import Deliverer
from podlink.services.deliver.settings import DeliverSettings
from podlink.services.kafka_login import error_text
from podlink.services.kafka_options import client_options as kafka_client_options
from podlink.services.kafka_watch import KafkaWatch
from podlink.services.topics import ensure_topics
from podlink.streams.worker.kafka_security import client_options
from podlink.streams.worker.metrics import CONTENT_TYPE
from podlink.services.settings_errors import load_or_report
from podlink.services.signals import stop_on_signals
from podlink.streams.worker.settings import Settings

log = structlog.get_logger("podlink.deliver")


def run_deliver(kafka: Settings) -> int:
    settings = load_or_report(DeliverSettings, "deliver")
    if settings is None:
        return 2
    try:
        asyncio.run(serve(kafka, settings))
    except KeyboardInterrupt:
        pass
    except OSError as exc:
        print(f"podlink deliver: cannot serve /metrics on {settings.deliver_web_bind}:"
              f"{settings.deliver_web_port} ({exc.strerror}); set PODLINK_DELIVER_WEB_PORT", file=sys.stderr)
        return 2
    except KafkaError as exc:
        print(f"podlink deliver: cannot reach Kafka at {kafka.kafka_bootstrap}: {error_text(exc)}", file=sys.stderr)
        return 2
    return 0


async def serve(kafka: Settings, settings: DeliverSettings, stop: asyncio.Event | None = None) -> None:
    stop = stop or stop_on_signals()
    # The FHIR topic may not exist yet when deliver starts before any worker.
    await asyncio.to_thread(ensure_topics, kafka.kafka_bootstrap, kafka.partitions,
                            kafka.replication_factor, client_options(kafka))
    metrics = DeliverMetrics()
    runner = await _metrics_server(metrics, settings)
    watch = KafkaWatch(kafka_client_options(kafka), kafka.broker_outage_log_seconds)
    watch.start()
    try:
        await Deliverer(kafka, settings, metrics).run(stop)
    finally:
        await watch.stop()
        await runner.cleanup()


async def _metrics_server(metrics: DeliverMetrics, settings: DeliverSettings) -> web.AppRunner:
    async def metrics_page(request: web.Request) -> web.Response:
        return web.Response(body=metrics.exposition(), headers={"Content-Type": CONTENT_TYPE})

    async def healthz(request: web.Request) -> web.Response:
        return web.Response(text="ok\n")

    app = web.Application()
    app.router.add_get("/metrics", metrics_page)
    app.router.add_get("/healthz", healthz)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, settings.deliver_web_bind, settings.deliver_web_port).start()
    return runner
