"""Real local servers for channel tests: an HTTP recorder (webhooks, PagerDuty, GOV.UK Notify's
API) and an SMTP server with STARTTLS and login (aiosmtpd), all on 127.0.0.1 and free ports."""
from __future__ import annotations

import asyncio
import json
import ssl
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from email.message import Message
from pathlib import Path
from typing import Any

from aiohttp import web
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

from podlink.services.embedded_broker import free_port


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Recorder:
    """Answers each path with the statuses queued for it (then 200), or hangs for `hang` paths."""

    url: str = ""
    received: list[Received] = field(default_factory=list)
    statuses: dict[str, list[int]] = field(default_factory=dict)
    hang: set[str] = field(default_factory=set)
    answer: dict[str, Any] = field(default_factory=dict)

    def at(self, path: str) -> list[Received]:
        return [r for r in self.received if r.path == path]


@asynccontextmanager
async def recorder() -> AsyncIterator[Recorder]:
    rec = Recorder()

    async def handle(request: web.Request) -> web.Response:
        rec.received.append(Received(request.path, dict(request.headers), await request.read()))
        if request.path in rec.hang:
            await asyncio.sleep(3600)
        queued = rec.statuses.get(request.path)
        status = queued.pop(0) if queued else 200
        return web.json_response(rec.answer.get(request.path, {}), status=status)

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handle)
    # A hanging handler must not hold the test up at shutdown (aiohttp waits 60 s by default).
    runner = web.AppRunner(app, shutdown_timeout=0.5)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    rec.url = f"http://127.0.0.1:{port}"
    try:
        yield rec
    finally:
        await runner.cleanup()


@dataclass
class Mailbox:
    port: int
    messages: list[Message] = field(default_factory=list)
    logins: list[str] = field(default_factory=list)


class _Handler:
    def __init__(self, box: Mailbox) -> None:
        self.box = box

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802 - aiosmtpd's name
        self.box.messages.append(message_from_bytes(envelope.content, policy=policy.default))
        return "250 OK"


def smtp_server(tls_cert: Path, tls_key: Path, username: str, password: str) -> tuple[Controller, Mailbox]:
    """An SMTP server that requires STARTTLS before AUTH LOGIN/PLAIN, and that login."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(str(tls_cert), str(tls_key))
    box = Mailbox(free_port())

    def authenticate(server: Any, session: Any, envelope: Any, mechanism: str, auth_data: Any) -> AuthResult:
        ok = isinstance(auth_data, LoginPassword) and (auth_data.login.decode(), auth_data.password.decode()) == (
            username, password)
        if ok:
            box.logins.append(username)
        return AuthResult(success=ok, handled=False)

    controller = Controller(_Handler(box), hostname="127.0.0.1", port=box.port, tls_context=context,
                            require_starttls=True, auth_required=True, authenticator=authenticate,
                            auth_require_tls=True)
    return controller, box
