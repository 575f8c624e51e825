"""`podlink report` on an Apache Kafka that demands a SASL login over TLS: it reads with the
worker's Kafka security settings, and a wrong password is one line that does not show it."""
from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
from collections.abc import Iterator

import pytest
from kafka.admin import KafkaAdminClient, NewTopic
from podlink_devtools.apache_kafka import ApacheKafkaBroker, SecuredListeners

from podlink.streams.worker.kafka_security import client_options
from podlink.streams.worker.settings import OUTCOMES_TOPIC, Settings
from tests.support.brokers import produce
from tests.support.tls import write_tls_files
from tests.unit.services.report.outcome_events import meeting_held, registered

pytestmark = pytest.mark.broker

USER = "podlink"
PASSWORD = f"pw-{secrets.token_hex(8)}"  # random: found in output only if printed


@pytest.fixture(scope="module")
def sasl_ssl(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, dict[str, str]]]:
    tls = write_tls_files(tmp_path_factory.mktemp("tls"))
    listeners = SecuredListeners(ca_file=tls.ca, cert_file=tls.broker_cert, key_file=tls.broker_key,
                                 users={USER: PASSWORD})
    env = {"PODLINK_KAFKA_SECURITY_PROTOCOL": "SASL_SSL", "PODLINK_KAFKA_SASL_MECHANISM": "SCRAM-SHA-512",
           "PODLINK_KAFKA_SASL_USERNAME": USER, "PODLINK_KAFKA_SASL_PASSWORD": PASSWORD,
           "PODLINK_KAFKA_SSL_CA_FILE": str(tls.ca)}
    with ApacheKafkaBroker(secured=listeners) as broker:
        yield broker.bootstraps["SASL_SSL"], env


def _report(bootstrap: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "podlink.services.cli", "report", "--bootstrap", bootstrap],
                          capture_output=True, text=True, timeout=120, env={**os.environ, **env})


def test_the_report_reads_the_topic_over_sasl_ssl_and_a_wrong_password_is_one_line(sasl_ssl):
    bootstrap, env = sasl_ssl
    fields = {name.removeprefix("PODLINK_").lower(): value for name, value in env.items()}
    options = client_options(Settings(kafka_bootstrap=bootstrap, **fields))
    admin = KafkaAdminClient(bootstrap_servers=bootstrap, **options)
    try:
        admin.create_topics([NewTopic(OUTCOMES_TOPIC, 2, 1)])
    finally:
        admin.close()
    events = [registered("REF-SEC-1"), meeting_held("REF-SEC-1", "M1", network={"sibling": 1}),
              meeting_held("REF-SEC-1", "M2")]
    produce(bootstrap, OUTCOMES_TOPIC, [(e["subject"].encode(), json.dumps(e).encode()) for e in events],
            client_options=options)

    done = _report(bootstrap, env)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert (report["meetings"], report["withNetwork"], report["byRelationship"]["siblings"]) == (2, 1, 1)

    wrong = _report(bootstrap, {**env, "PODLINK_KAFKA_SASL_PASSWORD": "not-the-password"})
    assert wrong.returncode == 2 and wrong.stdout == ""
    assert wrong.stderr.count("\n") == 1 and "Traceback" not in wrong.stderr
    assert wrong.stderr.startswith("podlink report: cannot read pod.outcomes.v1: cannot connect to Kafka at ")
    assert f"the broker refused the SASL SCRAM-SHA-512 login of user '{USER}'" in wrong.stderr
    assert PASSWORD not in wrong.stderr and "not-the-password" not in wrong.stderr
