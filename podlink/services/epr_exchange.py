"""The EPR exchange inside `podlink run`: a built-in EPR stub, `deliver` sending to it, and
`intake`, in one thread of their own beside the worker (which owns the main thread)."""
from __future__ import annotations

import asyncio
import secrets
import threading
from dataclasses import dataclass

import structlog

from podlink.services.deliver.command import serve as serve_deliver
from podlink.services.deliver.settings import DeliverSettings
from podlink.services.deliver.stub import start_stub
from podlink.services.embedded_broker import free_port
from podlink.services.intake.auth import token_hash
from podlink.services.intake.command import serve as serve_intake
from podlink.services.intake.settings import IntakeSettings
from podlink.streams.worker.settings import Settings

log = structlog.get_logger("podlink")
LOCAL = "127.0.0.1"


@dataclass(frozen=True)
class Exchange:
    stub_url: str
    intake_url: str
    intake_token: str  # made up for this run: an EPR of `podlink run` is the person trying it
    deliver_metrics: str


def start_exchange(kafka: Settings, stop: threading.Event) -> Exchange:
    stub_port = free_port()
    token = secrets.token_urlsafe(16)
    deliver = DeliverSettings(epr_url=f"http://{LOCAL}:{stub_port}/fhir").model_copy(update={
        "epr_token": None, "epr_ca_file": None,
        "epr_cert_file": None, "epr_key_file": None, "deliver_web_bind": LOCAL,
        # A first look: retries come back within seconds, not minutes.
        "epr_backoff_max_seconds": 5.0,
    })
    intake = IntakeSettings().model_copy(update={
        "intake_bind": LOCAL, "intake_tokens": {"podlink-run": token_hash(token)},
        "intake_tls_cert_file": None, "intake_tls_key_file": None, "intake_tls_client_ca_file": None,
    })
    exchange = Exchange(f"http://{LOCAL}:{stub_port}/fhir", f"http://{LOCAL}:{intake.intake_port}/fhir", token,
                        f"http://{LOCAL}:{deliver.deliver_web_port}/metrics")
    thread = threading.Thread(target=asyncio.run, args=(_run(kafka, deliver, intake, stub_port, stop),),
                              name="epr-exchange", daemon=True)
    thread.start()
    return exchange


async def _run(kafka: Settings, deliver: DeliverSettings, intake: IntakeSettings, stub_port: int,
               stop: threading.Event) -> None:
    done = asyncio.Event()
    loop = asyncio.get_running_loop()
    threading.Thread(target=lambda: (stop.wait(), loop.call_soon_threadsafe(done.set)), daemon=True).start()
    stub = await start_stub(LOCAL, stub_port)
    try:
        results = await asyncio.gather(serve_deliver(kafka, deliver, done), serve_intake(kafka, intake, done),
                                       return_exceptions=True)
        for result in results:
            if isinstance(result, Exception):
                log.error("EPR exchange stopped", error=f"{type(result).__name__}: {result}")
    finally:
        await stub.cleanup()


def exchange_welcome(exchange: Exchange) -> str:
    """What `podlink run` prints about the exchange: where messages go, how to send one back."""
    return "\n".join([
        f"  EPR stub:  {exchange.stub_url}/$process-message (podlink deliver sends every FHIR message here)",
        f"  deliver:   {exchange.deliver_metrics}",
        f"  intake:    {exchange.intake_url}/$process-message, bearer token {exchange.intake_token}",
        f"             capability statement: {exchange.intake_url}/metadata (docs/epr-exchange.md)",
    ])
