"""`podlink deliver` against a real HTTP server playing the EPR, on a real broker: retries with
the same X-Request-Id, order per referral, other referrals flowing past a stuck one, dead
letters with the EPR's answer, outcome events, nothing lost across a restart, and redrive."""
from __future__ import annotations

import json
import subprocess
import sys
import urllib.request
import uuid
from pathlib import Path

from kafka import KafkaProducer
from prometheus_client.parser import text_string_to_metric_families

from podlink.services.deliver.bars import correlation_id
from podlink.services.embedded_broker import free_port
from tests.support.broker_io import wait_until
from tests.support.brokers import consume_until_done
from tests.support.epr_server import (
    BAD_REQUEST, FATAL, OK, SERVER_ERROR, TOO_MANY, TRANSIENT, UNAVAILABLE, FakeEpr, Reply,
)
from tests.support.service_process import ServiceProcess

FHIR_TOPIC = "epr.fhir-messages.v1"
TOKEN = "test-epr-token"


def _bundle(bundle_id: str) -> bytes:
    return json.dumps({"resourceType": "Bundle", "id": bundle_id, "type": "message", "entry": [
        {"resource": {"resourceType": "MessageHeader", "eventCoding": {"code": "meeting-held"}}}]}).encode()


def _send(bootstrap: str, records: list[tuple[str, str]]) -> None:
    """(referral id, bundle id) records, all on partition 0: one partition, several referrals."""
    producer = KafkaProducer(bootstrap_servers=bootstrap)
    for referral, bundle in records:
        producer.send(FHIR_TOPIC, key=referral.encode(), value=_bundle(bundle), partition=0)
    producer.flush(30)
    producer.close()


def _deliver(bootstrap: str, epr: FakeEpr, group: str, log_dir: Path) -> ServiceProcess:
    return ServiceProcess(["deliver"], {
        "PODLINK_KAFKA_BOOTSTRAP": bootstrap,
        "PODLINK_EPR_URL": epr.url,
        "PODLINK_EPR_TOKEN": TOKEN,
        "PODLINK_EPR_TIMEOUT_SECONDS": "1",
        "PODLINK_EPR_BACKOFF_SECONDS": "0.2",
        "PODLINK_EPR_BACKOFF_MAX_SECONDS": "0.5",
        "PODLINK_DELIVER_GROUP_ID": group,
        "PODLINK_DELIVER_WEB_PORT": str(free_port()),
        "PODLINK_DELIVER_WEB_BIND": "127.0.0.1",
        "PODLINK_SESSION_TIMEOUT_SECONDS": "6",
    }, log_dir)


def _metrics(deliver: ServiceProcess) -> dict[tuple[str, str], float]:
    port = deliver.env["PODLINK_DELIVER_WEB_PORT"]
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
        text = response.read().decode()
    return {(sample.name, next(iter(sample.labels.values()), "")): sample.value
            for family in text_string_to_metric_families(text) for sample in family.samples}


def _outcomes(bootstrap: str, prefix: str, count: int) -> dict[tuple[str, str], dict]:
    records = consume_until_done(bootstrap, "pod.outcomes.v1", lambda rs: len(
        [r for r in rs if r.key and r.key.decode().startswith(prefix)]) >= count, timeout=60)
    events = [json.loads(r.value) for r in records if r.key and r.key.decode().startswith(prefix)]
    return {(e["type"].rsplit(".", 1)[1], e["data"]["bundleId"]): e for e in events}


def test_delivery_retries_orders_dead_letters_and_survives_a_restart(broker, tmp_path):
    p = f"D{uuid.uuid4().hex[:8]}-"
    ref = {name: p + name for name in ("A", "B", "C", "S", "F", "H")}
    with FakeEpr() as epr:
        epr.script = {
            p + "a1": [TOO_MANY, OK], p + "a2": [SERVER_ERROR, SERVER_ERROR, OK],
            p + "b1": [BAD_REQUEST], p + "c1": [TRANSIENT, OK], p + "c2": [FATAL],
            p + "s1": [UNAVAILABLE],  # stuck until the test lets it through
            p + "h1": [Reply(200, hang=3.0), OK],  # longer than the 1 s timeout, then answers
        }
        deliver = _deliver(broker.bootstrap, epr, f"deliver-{p}", tmp_path).start()
        try:
            deliver.wait_for_log(lambda line: line.get("event") == "deliver started", timeout=60)
            _send(broker.bootstrap, [
                (ref["A"], p + "a1"), (ref["S"], p + "s1"), (ref["A"], p + "a2"), (ref["B"], p + "b1"),
                (ref["S"], p + "s2"), (ref["C"], p + "c1"), (ref["B"], p + "b2"), (ref["C"], p + "c2"),
                (ref["F"], p + "f1"), (ref["A"], p + "a3"), (ref["H"], p + "h1"),
            ])
            wait_until(lambda: all(epr.of(p + b) for b in ("a3", "b2", "c2", "f1")) and len(epr.of(p + "h1")) >= 2,
                       60, "every referral but the stuck one got through")

            # Retries: the same request again, same X-Request-Id, same X-Correlation-Id per referral.
            a1 = epr.of(p + "a1")
            assert len(a1) == 2 and {r.request_id for r in a1} == {p + "a1"}
            assert a1[1].at - a1[0].at >= 0.95, "429 Retry-After: 1 was not honoured"
            assert len(epr.of(p + "a2")) == 3
            assert len(epr.of(p + "c1")) == 2 and len(epr.of(p + "c2")) == 1
            assert len(epr.of(p + "b1")) == 1, "a 400 is not retried"
            first = epr.of(p + "a1")[0].headers
            assert first["Content-Type"] == "application/fhir+json"
            assert first["Authorization"] == f"Bearer {TOKEN}"
            assert {r.headers["X-Correlation-Id"] for b in ("a1", "a2", "a3") for r in epr.of(p + b)} == {
                correlation_id(ref["A"])}
            assert epr.of(p + "f1")[0].headers["X-Correlation-Id"] != first["X-Correlation-Id"]
            # Order per referral: A's messages in order, each only after the one before succeeded.
            assert [i for i in epr.ids(p + "a")] == [p + "a1"] * 2 + [p + "a2"] * 3 + [p + "a3"]
            assert epr.ids(p + "b") == [p + "b1", p + "b2"]
            # The stuck referral holds up only itself, on the same partition as the others.
            assert epr.of(p + "s2") == [] and len(epr.of(p + "s1")) >= 3

            outcomes = _outcomes(broker.bootstrap, p, 9)  # a1-a3, b1-b2, c1-c2, f1, h1
            assert outcomes[("succeeded", p + "a1")]["data"] == {
                "referralId": ref["A"], "bundleId": p + "a1", "attempts": 2, "lastStatus": 200}
            assert outcomes[("succeeded", p + "a2")]["data"]["attempts"] == 3
            assert outcomes[("succeeded", p + "h1")]["data"]["attempts"] == 2
            assert outcomes[("failed", p + "b1")]["data"]["lastStatus"] == 400
            assert outcomes[("failed", p + "c2")]["data"]["reason"] == "BaRS fatal-error (HTTP 200)"

            letters = consume_until_done(broker.bootstrap, "podlink.dead-letter.v1", lambda rs: len(
                [r for r in rs if r.key and r.key.decode() in (ref["B"], ref["C"])]) >= 2, timeout=30)
            b1 = next(r for r in letters if r.key == ref["B"].encode())
            headers = dict(b1.headers)
            assert json.loads(b1.value)["id"] == p + "b1"
            assert headers["podlink-epr-status"] == b"400"
            assert json.loads(headers["podlink-epr-operation-outcome"])["issue"][0]["diagnostics"] == \
                "Encounter.identifier is required"
            assert headers["podlink-request-id"] == (p + "b1").encode()

            metrics = _metrics(deliver)
            # At least: this test's own (the shared broker may hold other tests' messages too).
            assert metrics[("podlink_epr_deliveries_total", "dead-letter")] >= 2
            assert metrics[("podlink_epr_deliveries_total", "delivered")] >= 7
            assert metrics[("podlink_epr_attempts_total", "429")] >= 1
            assert metrics[("podlink_epr_attempts_total", "transient-error")] >= 1
            assert metrics[("podlink_epr_attempts_total", "timeout")] >= 1
            assert metrics[("podlink_epr_messages_waiting", "")] >= 2  # s1 and s2
            assert metrics[("podlink_epr_referrals_retrying", "")] >= 1

            # A restart while s1 is stuck: s1 was never committed, so it is read and sent again.
            deliver.stop()
            sent_before = len(epr.of(p + "s1"))
            epr.script[p + "s1"] = [OK]
            deliver.start()
            wait_until(lambda: epr.of(p + "s2"), 60, "the stuck referral delivered after the restart")
            assert len(epr.of(p + "s1")) > sent_before
            assert epr.ids(p + "s")[-2:] == [p + "s1", p + "s2"]
        finally:
            deliver.stop()

        # Redrive, once the cause is fixed: the same request, the same X-Request-Id.
        env = {**deliver.env}
        # The restart re-read everything after the stuck s1 (the committed offset), so b1 was
        # sent again then, with the same X-Request-Id: the EPR de-duplicates.
        sent = len(epr.of(p + "b1"))
        dry = subprocess.run([sys.executable, "-m", "podlink.services.cli", "dead-letters", "redrive",
                              "--referral", ref["B"], "--dry-run"], env=env, capture_output=True, text=True, timeout=120)
        assert dry.returncode == 0, dry.stderr
        assert f"X-Request-Id={p}b1" in dry.stdout and "was=400" in dry.stdout
        assert len(epr.of(p + "b1")) == sent, "a dry run sends nothing"
        epr.script[p + "b1"] = [OK]
        done = subprocess.run([sys.executable, "-m", "podlink.services.cli", "dead-letters", "redrive",
                               "--referral", ref["B"]], env=env, capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stdout + done.stderr
        resent = epr.of(p + "b1")
        assert len(resent) == sent + 1 and resent[-1].request_id == p + "b1"
        assert json.loads(json.dumps(resent[-1].bundle)) == json.loads(_bundle(p + "b1"))
        assert "delivered" in done.stdout and "1 delivered of 1" in done.stderr
