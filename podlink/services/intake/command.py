"""`podlink intake`: settings checked, its topic made, the server run until SIGINT or SIGTERM."""
from __future__ import annotations

import asyncio
import ssl
import sys

import structlog
from aiohttp import web

from podlink.fhir_mappings.conformance import published_resources
from podlink.fhir_mappings.inbound import Systems
from podlink.services.intake.app import Intake, build_app
from podlink.services.intake.kafka_io import Kafka
from podlink.services.intake.settings import IntakeSettings
from podlink.services.kafka_options import client_options
from podlink.services.kafka_watch import KafkaWatch
from podlink.services.settings_errors import load_or_report
from podlink.services.signals import stop_on_signals
from podlink.streams.worker.settings import Settings

log = structlog.get_logger("podlink.intake")


def run_intake(kafka: Settings) -> int:
    settings = load_or_report(IntakeSettings, "intake")
    if settings is None:
        return 2
    if not settings.intake_tokens and settings.intake_tls_client_ca_file is None:
        print("podlink intake: no EPR can sign in: set PODLINK_INTAKE_TOKENS (name=<sha256 hex>) "
              "or PODLINK_INTAKE_TLS_CLIENT_CA_FILE", file=sys.stderr)
        return 2
    try:
        asyncio.run(serve(kafka, settings))
    except KeyboardInterrupt:
        pass
    except OSError as exc:
        print(f"podlink intake: cannot listen on {settings.intake_bind}:{settings.intake_port} "
              f"({exc.strerror}); set PODLINK_INTAKE_PORT or PODLINK_INTAKE_BIND", file=sys.stderr)
        return 2
    return 0


def tls_context(settings: IntakeSettings) -> ssl.SSLContext | None:
    if settings.intake_tls_cert_file is None:
        return None
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(settings.intake_tls_cert_file, settings.intake_tls_key_file)
    if settings.intake_tls_client_ca_file is not None:
        context.load_verify_locations(settings.intake_tls_client_ca_file)
        # A bearer token still works without a certificate; a certificate, when presented, is verified.
        context.verify_mode = ssl.CERT_OPTIONAL
    return context


async def serve(kafka: Settings, settings: IntakeSettings, stop: asyncio.Event | None = None) -> None:
    stop = stop or stop_on_signals()
    broker = Kafka(client_options(kafka), settings.intake_publish_timeout_seconds, kafka.replication_factor)
    broker.start()
    watch = KafkaWatch(client_options(kafka), kafka.broker_outage_log_seconds)
    watch.start()
    intake = Intake(settings, broker, Systems.of(kafka.fhir_base_url), published_resources(kafka.fhir_base_url))
    runner = web.AppRunner(build_app(intake), access_log=None)
    await runner.setup()
    await web.TCPSite(runner, settings.intake_bind, settings.intake_port, ssl_context=tls_context(settings)).start()
    log.info("intake started", port=settings.intake_port, epr_systems=sorted(settings.intake_tokens),
             tls=settings.intake_tls_cert_file is not None)
    try:
        await stop.wait()
    finally:
        await runner.cleanup()
        await broker.stop()
        await watch.stop()
        log.info("intake stopped")
