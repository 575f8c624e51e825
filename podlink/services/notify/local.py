"""`podlink notify` for `podlink run`: a rota whose two contacts are webhooks on a local receiver
that prints each delivery, so a first look shows who would be paged, when, and escalation."""
from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import os
import secrets
import threading
from collections.abc import Callable
from pathlib import Path

import structlog
from aiohttp import web

from podlink.services import logs
from podlink.services.embedded_broker import free_port
from podlink.services.notify.channels import signature
from podlink.services.notify.rota import load_rota
from podlink.services.notify.service import NotifyStartError, check_port, serve
from podlink.services.notify.settings import NotifySettings
from podlink.streams.worker.settings import Settings

log = structlog.get_logger("podlink")
SECRET_ENV = "PODLINK_RUN_WEBHOOK_SECRET"
ROTA = """\
contacts:
  duty-worker:
    webhook: {{url: "{receiver}/duty-worker", secret_env: {secret_env}}}
    token_sha256: "{token_sha256}"
  team-manager:
    webhook: {{url: "{receiver}/team-manager", secret_env: {secret_env}}}
tiers:
  on-call:
    - {{contacts: [duty-worker], escalate_after: 2m, when: always}}
    - {{contacts: [team-manager], when: always}}
  team:
    - {{contacts: [team-manager]}}
repeat_every: 10m
"""


def _receiver(secret: str) -> web.Application:
    async def delivery(request: web.Request) -> web.Response:
        body = await request.read()
        signed = hmac.compare_digest(request.headers.get("X-Podlink-Signature", ""), signature(secret, body))
        try:
            summary = json.loads(body).get("summary", "?")
        except ValueError:
            summary = "(not JSON)"
        logs.say(f"  WEBHOOK → {request.match_info['who']}: {summary}"
                 f"{'' if signed else '  (BAD SIGNATURE)'}")
        return web.Response(status=204)

    app = web.Application()
    app.router.add_post("/{who}", delivery)
    return app


def start_local_notify(kafka: Settings, folder: Path) -> Callable[[], None]:
    """Starts notify and its receiver on a thread of their own; returns what stops them.

    Raises NotifyStartError when PODLINK_NOTIFY_PORT names a port that is taken."""
    settings = NotifySettings(rota_file=folder / "rota.yaml", notify_bind="127.0.0.1", notify_tick_seconds=5.0)
    try:
        check_port(settings.notify_bind, settings.notify_port)
    except NotifyStartError:
        if "PODLINK_NOTIFY_PORT" in os.environ:
            raise
        # A first look should not fail for a default port someone else holds: it prints the URL.
        settings = settings.model_copy(update={"notify_port": free_port()})
    secret, token = secrets.token_hex(16), secrets.token_urlsafe(16)
    receiver_port = free_port()
    settings.rota_file.write_text(ROTA.format(
        receiver=f"http://127.0.0.1:{receiver_port}", secret_env=SECRET_ENV,
        token_sha256=hashlib.sha256(token.encode()).hexdigest()))
    environ = {SECRET_ENV: secret}
    rota = load_rota(settings.rota_file, environ)
    loop = asyncio.new_event_loop()
    stopped = threading.Event()
    main: list[asyncio.Task[None]] = []

    async def run() -> None:
        runner = web.AppRunner(_receiver(secret), access_log=None)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", receiver_port).start()
        main.append(asyncio.current_task())  # type: ignore[arg-type]
        try:
            await serve(kafka, settings, rota, environ)
        except asyncio.CancelledError:
            pass
        except Exception as exc:  # noqa: BLE001 - the worker goes on; say why notify stopped
            log.error("notify stopped", error=type(exc).__name__)
        finally:
            await runner.cleanup()

    def thread() -> None:
        try:
            loop.run_until_complete(run())
        finally:
            loop.close()
            stopped.set()

    threading.Thread(target=thread, name="podlink-notify", daemon=True).start()
    board = f"http://127.0.0.1:{settings.notify_port}"
    logs.say("\n".join([
        f"  on-call:   {board}/board (SLA board), {board}/alerts (open alerts as JSON)",
        "    a local webhook receiver prints what the duty worker and team manager are sent;",
        f"    acknowledge as the duty worker: curl -X POST -H 'Authorization: Bearer {token}' "
        f"{board}/alerts/ALERT_ID/ack",
    ]))

    def stop() -> None:
        if main and not loop.is_closed():
            loop.call_soon_threadsafe(main[0].cancel)
        stopped.wait(15)

    return stop
