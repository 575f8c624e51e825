"""`podlink worker` on an Apache Kafka that demands SASL logins or client certificates.

One broker serves every case, a listener per protocol; the tests share its topics and keep
apart by referral id.
"""
from __future__ import annotations

import json
import secrets
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from podlink_devtools.apache_kafka import ApacheKafkaBroker, SecuredListeners

from podlink.services.samples import pathway
from podlink.streams.worker.kafka_security import client_options
from podlink.streams.worker.settings import ALERTS_TOPIC, FHIR_TOPIC, Settings
from tests.support.brokers import consume_until, produce
from tests.support.tls import TlsFiles, write_tls_files
from tests.support.worker_process import WorkerProcess

pytestmark = pytest.mark.broker

USER = "podlink"
# Random, so that finding one in a log can only mean it was printed.
PASSWORD = f"pw-{secrets.token_hex(8)}"
WRONG_PASSWORD = f"wrong-{secrets.token_hex(8)}"


@dataclass(frozen=True)
class SecuredKafka:
    broker: ApacheKafkaBroker
    tls: TlsFiles
    stranger_ca: Path  # a CA that signed nothing the broker shows


@pytest.fixture(scope="module")
def secured_kafka(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SecuredKafka]:
    tls = write_tls_files(tmp_path_factory.mktemp("tls"))
    stranger = write_tls_files(tmp_path_factory.mktemp("stranger-tls"))
    listeners = SecuredListeners(ca_file=tls.ca, cert_file=tls.broker_cert, key_file=tls.broker_key,
                                 users={USER: PASSWORD})
    with ApacheKafkaBroker(secured=listeners) as broker:
        yield SecuredKafka(broker, tls, stranger.ca)


def scram_ssl(k: SecuredKafka) -> dict[str, str]:
    return {"PODLINK_KAFKA_SECURITY_PROTOCOL": "SASL_SSL", "PODLINK_KAFKA_SASL_MECHANISM": "SCRAM-SHA-512",
            "PODLINK_KAFKA_SASL_USERNAME": USER, "PODLINK_KAFKA_SASL_PASSWORD": PASSWORD,
            "PODLINK_KAFKA_SSL_CA_FILE": str(k.tls.ca)}


def plain(k: SecuredKafka) -> dict[str, str]:
    return {"PODLINK_KAFKA_SECURITY_PROTOCOL": "SASL_PLAINTEXT", "PODLINK_KAFKA_SASL_MECHANISM": "PLAIN",
            "PODLINK_KAFKA_SASL_USERNAME": USER, "PODLINK_KAFKA_SASL_PASSWORD": PASSWORD}


def mutual_tls(k: SecuredKafka) -> dict[str, str]:
    return {"PODLINK_KAFKA_SECURITY_PROTOCOL": "SSL", "PODLINK_KAFKA_SSL_CA_FILE": str(k.tls.ca),
            "PODLINK_KAFKA_SSL_CERT_FILE": str(k.tls.client_cert),
            "PODLINK_KAFKA_SSL_KEY_FILE": str(k.tls.client_key)}


def settings_of(bootstrap: str, env: dict[str, str]) -> Settings:
    fields = {name.removeprefix("PODLINK_").lower(): value for name, value in env.items()}
    return Settings(kafka_bootstrap=bootstrap, **fields)


@pytest.mark.parametrize("security", [scram_ssl, plain, mutual_tls])
def test_a_worker_processes_a_referral_over_a_secured_listener(secured_kafka, start_worker, prefix, security):
    env = security(secured_kafka)
    bootstrap = secured_kafka.broker.bootstraps[env["PODLINK_KAFKA_SECURITY_PROTOCOL"]]
    # The test's own clients log in the same way, from the same settings.
    options = client_options(settings_of(bootstrap, env))
    worker = start_worker(bootstrap, **env)

    # Received 30 hours ago: past its deadline, so the alert path (the ledger's own consumer,
    # then the producer) has to get through too.
    referral = f"{prefix}-SECURE"
    received = pathway(referral, datetime.now(timezone.utc) - timedelta(hours=30), "breached")[0]
    produce(bootstrap, received.topic, [(referral.encode(), json.dumps(received.value).encode())],
            client_options=options)

    message = consume_until(bootstrap, FHIR_TOPIC, lambda r: r.key == referral.encode(), timeout=90,
                            client_options=options)
    bundle = json.loads(message.value)
    assert bundle["resourceType"] == "Bundle" and bundle["type"] == "message"
    alert = consume_until(bootstrap, ALERTS_TOPIC, lambda r: r.key == referral.encode(), timeout=60,
                          client_options=options)
    assert json.loads(alert.value)["type"] == "uk.nhs.podlink.sla.breached"
    log = worker.log_text()
    assert PASSWORD not in log
    assert "deadline scan failed" not in log


def refused(secured_kafka: SecuredKafka, tmp_path: Path, protocol: str, env: dict[str, str]) -> str:
    """What a worker that cannot log in says, once it has exited with status 2."""
    worker = WorkerProcess(secured_kafka.broker.bootstraps[protocol], tmp_path / "worker",
                           f"podlink-test-{uuid.uuid4().hex[:8]}", env).start()
    try:
        assert worker.proc is not None
        assert worker.proc.wait(60) == 2, worker.log_text()[-3000:]
    finally:
        worker.stop()
    return worker.log_text()


@pytest.mark.parametrize("security", [scram_ssl, plain])
def test_a_wrong_password_stops_the_worker_with_a_clear_error(secured_kafka, tmp_path, security):
    env = {**security(secured_kafka), "PODLINK_KAFKA_SASL_PASSWORD": WRONG_PASSWORD}
    said = refused(secured_kafka, tmp_path, env["PODLINK_KAFKA_SECURITY_PROTOCOL"], env)
    mechanism = env["PODLINK_KAFKA_SASL_MECHANISM"]
    assert f"the broker refused the SASL {mechanism} login of user 'podlink'" in said
    assert "PODLINK_KAFKA_SASL_PASSWORD" in said
    assert WRONG_PASSWORD not in said and PASSWORD not in said


def test_a_broker_that_requires_a_client_certificate_refuses_a_worker_without_one(secured_kafka, tmp_path):
    env = {"PODLINK_KAFKA_SECURITY_PROTOCOL": "SSL", "PODLINK_KAFKA_SSL_CA_FILE": str(secured_kafka.tls.ca)}
    said = refused(secured_kafka, tmp_path, "SSL", env)
    assert "the broker closed the connection" in said and "PODLINK_KAFKA_SSL_CERT_FILE" in said


def test_a_broker_certificate_from_another_ca_is_not_trusted(secured_kafka, tmp_path):
    env = {**scram_ssl(secured_kafka), "PODLINK_KAFKA_SSL_CA_FILE": str(secured_kafka.stranger_ca)}
    said = refused(secured_kafka, tmp_path, "SASL_SSL", env)
    assert "certificate is not trusted" in said and "PODLINK_KAFKA_SSL_CA_FILE" in said
    assert PASSWORD not in said
