"""Deliver's mutual TLS to the EPR: the EPR's certificate checked against PODLINK_EPR_CA_FILE,
and podlink's client certificate presented (an EPR that requires one refuses a client without)."""
from __future__ import annotations

import asyncio
import ssl

from aiohttp import web

from podlink.services.deliver.http_client import EprClient
from podlink.services.deliver.policy import Backoff, Delivered, Retry, decide
from podlink.services.deliver.settings import DeliverSettings
from podlink.services.embedded_broker import free_port
from tests.support.tls import write_tls_files


async def _exchange(tmp_path, with_client_cert: bool, trust_ca: bool):
    tls = write_tls_files(tmp_path)
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH, cafile=str(tls.ca))
    server_context.load_cert_chain(tls.broker_cert, tls.broker_key)
    server_context.verify_mode = ssl.CERT_REQUIRED
    seen: list[str] = []

    async def process(request: web.Request) -> web.Response:
        cert = request.transport.get_extra_info("peercert")
        seen.append(dict(x[0] for x in cert["subject"])["commonName"])
        return web.json_response({"resourceType": "Bundle"}, status=200)

    app = web.Application()
    app.router.add_post("/fhir/$process-message", process)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port, ssl_context=server_context).start()
    settings = DeliverSettings(
        epr_url=f"https://127.0.0.1:{port}/fhir", epr_timeout_seconds=5,
        epr_ca_file=tls.ca if trust_ca else None,
        epr_cert_file=tls.client_cert if with_client_cert else None,
        epr_key_file=tls.client_key if with_client_cert else None)
    try:
        async with EprClient(settings) as client:
            reply = await client.post("bundle-1", "REF-1", b'{"resourceType":"Bundle","id":"bundle-1"}')
    finally:
        await runner.cleanup()
    return reply, seen


def test_mutual_tls_delivers(tmp_path):
    reply, seen = asyncio.run(_exchange(tmp_path, with_client_cert=True, trust_ca=True))
    assert reply.answer.status == 200 and seen == ["podlink-worker"]
    assert decide(reply.answer, 1, Backoff(), 0.5) == Delivered()


def test_no_client_certificate_is_a_failed_connection_retried(tmp_path):
    reply, seen = asyncio.run(_exchange(tmp_path, with_client_cert=False, trust_ca=True))
    assert reply.answer.status is None and seen == []
    assert isinstance(decide(reply.answer, 1, Backoff(), 0.5), Retry)


def test_an_epr_certificate_not_from_the_configured_ca_is_not_trusted(tmp_path):
    reply, seen = asyncio.run(_exchange(tmp_path, with_client_cert=True, trust_ca=False))
    assert reply.answer.status is None and seen == []
