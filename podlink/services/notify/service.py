"""`podlink notify`: the service around the Notifier. Kafka in and out, HTTP, timers, start and stop.

Start order matters for at-most-once: the state topic is read to its end before the first alert
is read, so nothing already sent can be sent again (state.py says why).
"""
from __future__ import annotations

import asyncio
import os
import signal
import socket
import sys
from collections.abc import Callable, Mapping
from datetime import datetime, timezone
from typing import Any

import aiohttp
import structlog
from aiohttp import web
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.structs import OffsetAndMetadata, TopicPartition
from pydantic import ValidationError

from podlink.services.kafka_login import KafkaUnreachableError, check_login
from podlink.services.notify import api, board
from podlink.services.notify.channels import Channels
from podlink.services.notify.metrics import CONTENT_TYPE, NotifyMetrics
from podlink.services.notify.notifier import Notifier, Retry
from podlink.services.notify.rota import Rota, RotaError, load_rota
from podlink.services.notify.settings import NotifySettings
from podlink.services.notify.state import StateStore, ensure_state_topic
from podlink.streams.worker.cloudevents_binding import structured
from podlink.streams.worker.kafka_security import KafkaSecurityError
from podlink.streams.worker.kafka_security import client_options as aiokafka_security
from podlink.streams.worker.settings import ALERTS_TOPIC, OUTCOMES_TOPIC, Settings, describe_invalid

log = structlog.get_logger("podlink")
Clock = Callable[[], datetime]
STOP_STEP_SECONDS = 10.0
RETRY_HANDLE_SECONDS = 5.0


def utc_now() -> datetime:
    return datetime.now(timezone.utc)


class NotifyStartError(RuntimeError):
    """A reason not to start, said in one line."""


def base_url(settings: NotifySettings, rota: Rota) -> str:
    return (settings.notify_public_url or rota.public_url
            or f"http://127.0.0.1:{settings.notify_port}").rstrip("/")


def check_port(bind: str, port: int) -> None:
    with socket.socket(socket.AF_INET6 if ":" in bind else socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((bind, port))
        except OSError as exc:
            raise NotifyStartError(f"cannot serve the notify API on {bind}:{port} ({exc.strerror}); "
                                   "set PODLINK_NOTIFY_PORT or PODLINK_NOTIFY_BIND") from exc


def web_app(notifier: Notifier) -> web.Application:
    app = web.Application()
    app[api.NOTIFIER] = notifier
    api.add_routes(app)
    board.add_routes(app)

    async def metrics(request: web.Request) -> web.Response:
        return web.Response(body=notifier.metrics.exposition(), headers={"Content-Type": CONTENT_TYPE})

    async def healthz(request: web.Request) -> web.Response:
        return web.Response(text="ok\n")

    app.router.add_get("/metrics", metrics)
    app.router.add_get("/healthz", healthz)
    return app


async def serve(kafka: Settings, settings: NotifySettings, rota: Rota, environ: Mapping[str, str],
                clock: Clock = utc_now, started: Callable[[], None] | None = None) -> None:
    """Runs until cancelled."""
    options: dict[str, Any] = aiokafka_security(kafka)
    # The alerts topic is the worker's to create (with its partition count): notify waits for it
    # rather than have a consumer's metadata request auto-create it on brokers that allow that.
    waiting = False
    while ALERTS_TOPIC not in await asyncio.to_thread(
            ensure_state_topic, kafka.kafka_bootstrap, options, kafka.replication_factor):
        if not waiting:
            log.info("notify waiting for its topic", topic=ALERTS_TOPIC)
            waiting = True
        await asyncio.sleep(1)
    store = StateStore(kafka.kafka_bootstrap, options)
    await store.start()
    producer = AIOKafkaProducer(bootstrap_servers=kafka.kafka_bootstrap, acks="all", **options)
    await producer.start()
    session = aiohttp.ClientSession()

    async def publish(event: dict[str, Any]) -> None:
        value, headers = structured(event)
        try:
            await producer.send_and_wait(OUTCOMES_TOPIC, value, key=event["subject"].encode(), headers=headers)
        except Exception as exc:  # noqa: BLE001 - an outcome event lost is logged, the service goes on
            log.error("outcome event not published", type=event["type"], error=type(exc).__name__)

    notifier = Notifier(rota, store, Channels(rota, environ, settings.pagerduty_url, session), publish,
                        NotifyMetrics(), clock, base_url(settings, rota),
                        Retry(settings.notify_attempts, settings.notify_retry_seconds,
                              settings.notify_channel_timeout_seconds))
    runner = web.AppRunner(web_app(notifier), access_log=None)
    await runner.setup()
    await web.TCPSite(runner, settings.notify_bind, settings.notify_port).start()
    consumer = AIOKafkaConsumer(
        ALERTS_TOPIC, bootstrap_servers=kafka.kafka_bootstrap, group_id=settings.notify_group_id,
        enable_auto_commit=False, auto_offset_reset="earliest",
        session_timeout_ms=int(kafka.session_timeout_seconds * 1000), **options)
    await consumer.start()
    await notifier.recover()
    log.info("notify started", web=f"http://{settings.notify_bind}:{settings.notify_port}",
             contacts=len(rota.contacts), audiences=sorted(rota.tiers), known_alerts=len(store.escalations))
    if started is not None:
        started()
    ticker = asyncio.create_task(_tick(notifier, settings.notify_tick_seconds))
    try:
        async for record in consumer:
            tp = TopicPartition(record.topic, record.partition)
            try:
                await notifier.handle(record.key, record.value, (record.topic, record.partition, record.offset))
                # Committed once handled: a crash before this re-reads the alert, which the state dedups.
                await consumer.commit({tp: OffsetAndMetadata(record.offset + 1, "")})
            except Exception as exc:  # noqa: BLE001 - the state could not be written (broker away): read it again
                log.error("alert not handled, will read it again", topic=record.topic, partition=record.partition,
                          offset=record.offset, error=type(exc).__name__)
                consumer.seek(tp, record.offset)
                await asyncio.sleep(RETRY_HANDLE_SECONDS)
    finally:
        ticker.cancel()
        await asyncio.gather(ticker, return_exceptions=True)
        # Each step bounded, so a broker that is down cannot keep the process from stopping.
        for step, awaitable in (("messages under way", notifier.drain()), ("consumer", consumer.stop()),
                                ("web server", runner.cleanup()), ("http client", session.close()),
                                ("producer", producer.stop()), ("state", store.stop())):
            try:
                await asyncio.wait_for(awaitable, STOP_STEP_SECONDS)
            except (Exception, asyncio.CancelledError) as exc:  # noqa: BLE001 - stop the rest regardless
                log.warning("notify stop step failed", step=step, error=type(exc).__name__)
        log.info("notify stopped")


async def _tick(notifier: Notifier, seconds: float) -> None:
    while True:
        await asyncio.sleep(seconds)
        try:
            await notifier.tick_all()
        except Exception as exc:  # noqa: BLE001 - the next tick tries again; say why this one failed
            log.error("escalation check failed", error=type(exc).__name__)


def prepare(environ: Mapping[str, str]) -> tuple[NotifySettings, Rota]:
    """The settings and rota, or NotifyStartError saying in one line what to fix."""
    try:
        settings = NotifySettings()
    except ValidationError as exc:
        raise NotifyStartError(f"invalid setting: {describe_invalid(exc)}") from None
    try:
        rota = load_rota(settings.rota_file, environ)
    except RotaError as exc:
        raise NotifyStartError(str(exc)) from None
    check_port(settings.notify_bind, settings.notify_port)
    return settings, rota


def run_notify(kafka: Settings) -> int:
    try:
        settings, rota = prepare(os.environ)
        # One connection first, so an unreachable broker or a refused login is one line, not
        # a minute of client retries.
        check_login(kafka)
    except (NotifyStartError, KafkaSecurityError, KafkaUnreachableError) as exc:
        print(f"podlink notify: {exc}", file=sys.stderr)
        return 2
    return asyncio.run(_run_until_signalled(kafka, settings, rota))


async def _run_until_signalled(kafka: Settings, settings: NotifySettings, rota: Rota) -> int:
    task = asyncio.create_task(serve(kafka, settings, rota, os.environ))
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, task.cancel)
    try:
        await task
    except asyncio.CancelledError:
        return 0
    except Exception as exc:  # noqa: BLE001 - one line for operators, not a traceback
        print(f"podlink notify: stopped: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    return 0
