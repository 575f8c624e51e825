"""What trust IT watch a worker by: /healthz, /readyz, /metrics, and one log line per record."""
from __future__ import annotations

import json
import time
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from typing import Any, TypeVar
from urllib.error import URLError

from kafka import KafkaProducer

from podlink.services.samples import SCENARIOS, Record, pathway
from podlink.streams.worker.settings import CARE_TOPIC, INPUT_TOPICS, SPA_TOPIC
from tests.support.worker_metrics import get, samples, total

T = TypeVar("T")
SENSITIVE_KEYS = {"nhsNumber", "given", "family", "name", "phone", "postalCode", "birthDate", "text",
                  "display", "ward"}


def wait_for(probe: Callable[[], T | None], timeout: float, what: str) -> T:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            found = probe()
        except (URLError, ConnectionError):
            found = None
        if found:
            return found
        time.sleep(0.2)
    raise TimeoutError(f"{what} not seen within {timeout} s")


def produce(bootstrap: str, items: list[tuple[str, bytes, bytes]]) -> set[tuple[str, int, int]]:
    """Sends the records; returns where each landed (topic, partition, offset)."""
    producer = KafkaProducer(bootstrap_servers=bootstrap, linger_ms=5)
    futures = [producer.send(topic, key=key, value=value) for topic, key, value in items]
    producer.flush()
    landed = {(m.topic, m.partition, m.offset) for m in (f.get(timeout=30) for f in futures)}
    producer.close()
    return landed


def encoded(records: list[Record]) -> list[tuple[str, bytes, bytes]]:
    return [(r.topic, r.key.encode(), json.dumps(r.value).encode()) for r in records]


def sensitive_values(node: Any, key: str = "") -> set[str]:
    """Every string under a key that carries a name, an identifier, a phone or free text."""
    if isinstance(node, dict):
        return set().union(*(sensitive_values(v, k) for k, v in node.items()))
    if isinstance(node, list):
        return set().union(*(sensitive_values(v, key) for v in node))
    return {str(node)} if key in SENSITIVE_KEYS and isinstance(node, (str, int)) else set()


def ago(hours: float) -> datetime:
    return datetime.now(timezone.utc) - timedelta(hours=hours)


def test_a_worker_is_healthy_then_ready_and_its_metrics_count_what_it_did(fresh_broker, start_worker, prefix):
    worker = start_worker(fresh_broker.bootstrap)
    wait_for(lambda: get(f"{worker.web_url}/healthz")[0] == 200, 60, "/healthz 200")
    wait_for(lambda: get(f"{worker.web_url}/readyz")[0] == 200, 60, "/readyz 200")

    records = pathway(f"{prefix}-late", ago(30), "breached") + pathway(f"{prefix}-ok", ago(2), "on-time")
    produce(fresh_broker.bootstrap, encoded(records) + [(SPA_TOPIC, b"x", b"{ not json")])
    worker.wait_for_log(lambda line: line.get("event") == "alert raised", timeout=60)

    def metrics_after_everything() -> dict[Any, float] | None:
        status, text = get(f"{worker.web_url}/metrics")
        m = samples(text)
        done = status == 200 and total(m, "podlink_records_total") == len(records) + 1
        return m if done and total(m, "podlink_alerts_total") >= 1 else None

    m = wait_for(metrics_after_everything, 60, "every record and the alert counted in /metrics")
    assert total(m, "podlink_records_total", topic=SPA_TOPIC, type="uk.nhs.spa.referral.received",
                 outcome="applied") == 2
    # Care events may be read before their referral (another topic): those wait, as "pending".
    assert total(m, "podlink_records_total", topic=CARE_TOPIC, type="uk.nhs.pod.meeting.held") == 3
    assert total(m, "podlink_records_total", topic=SPA_TOPIC, outcome="dead-letter") == 1
    assert total(m, "podlink_dead_letters_total", reason="value is not JSON (line N, column N)") == 1
    assert total(m, "podlink_processing_latency_seconds_count") == len(records) + 1
    assert total(m, "podlink_alerts_total", kind="breached") == 1
    # Received 30 hours ago: the alert was due 6 hours before the worker saw it, and says so.
    assert total(m, "podlink_alert_latency_seconds_count", kind="breached") == 1
    assert total(m, "podlink_alert_latency_seconds_sum", kind="breached") >= 6 * 3600 - 60
    assert total(m, "podlink_open_episodes") == 2
    assert total(m, "podlink_deadlines_breached") == 1
    assert total(m, "podlink_deadlines_at_risk") == 0
    assert total(m, "podlink_ready") == 1
    lags = {(dict(ls)["topic"], dict(ls)["partition"]): v for (n, ls), v in m.items()
            if n == "podlink_consumer_lag"}
    assert set(lags) == {(t, str(p)) for t in INPUT_TOPICS for p in range(3)}
    assert set(lags.values()) == {0}
    # Faust's own pages would serve table values, which hold patient data.
    assert get(f"{worker.web_url}/table/episodes/")[0] == 404
    assert get(f"{worker.web_url}/router/")[0] == 404


def test_logs_and_metrics_carry_no_patient_identifier_or_free_text(fresh_broker, start_worker, prefix):
    records = [r for i, scenario in enumerate(SCENARIOS)
               for r in pathway(f"{prefix}-{i}", ago(30), scenario, n=800 + i)]
    # A referral that breaks the contract only by its NHS number's check digit, and one whose
    # key is not its subject: their patient data must not leak through the rejection either.
    broken = json.loads(json.dumps(pathway(f"{prefix}-bad", ago(1), "on-time", n=899)[0].value))
    broken["data"]["patient"]["nhsNumber"] = "9990000019"
    misfiled = pathway(f"{prefix}-key", ago(1), "on-time", n=898)[0]
    extra = [(SPA_TOPIC, broken["subject"].encode(), json.dumps(broken).encode()),
             (SPA_TOPIC, b"another-key", json.dumps(misfiled.value).encode())]
    secrets = set().union(*(sensitive_values(r.value) for r in records), sensitive_values(broken),
                          sensitive_values(misfiled.value))
    assert len(secrets) > 40 and any(" 900" in s for s in secrets)  # phones and names are in play

    worker = start_worker(fresh_broker.bootstrap)
    landed = produce(fresh_broker.bootstrap, encoded(records) + extra)
    worker.wait_for_log(lambda line: line.get("event") == "alert raised", timeout=60)

    def all_logged() -> list[dict[str, Any]] | None:
        lines = [line for line in worker.log_lines() if "offset" in line]
        return lines if {(l["topic"], l["partition"], l["offset"]) for l in lines} >= landed else None

    lines = wait_for(all_logged, 90, "a log line for every record")
    # One line per record, with what trust IT need to find it and what became of it.
    assert len(lines) == len(landed)
    for line in lines:
        assert {"topic", "partition", "offset", "outcome"} <= set(line)
        assert line["outcome"] == "dead-letter" or {"referral", "type"} <= set(line)
    assert sum(line["outcome"] == "dead-letter" for line in lines) == 2

    _, metrics_text = get(f"{worker.web_url}/metrics")
    log_text = worker.log_text()
    assert "podlink_records_total" in metrics_text
    assert [s for s in secrets if s in log_text] == []
    assert [s for s in secrets if s in metrics_text] == []
