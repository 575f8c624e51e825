"""Records a hostile or broken producer might send, between valid ones: each ends on the
dead-letter topic once, with a reason, and no valid neighbour is lost."""
from __future__ import annotations

from collections import Counter
from collections.abc import Iterator

import pytest
from kafka import KafkaProducer

from podlink.services.embedded_broker import EmbeddedBroker
from podlink.services.samples import pathway
from podlink.streams.core.encoding import json_bytes
from podlink.streams.worker.settings import CARE_TOPIC, DEAD_LETTER_TOPIC, FHIR_TOPIC, SPA_TOPIC
from tests.support.broker_io import ago, every_event_has_its_message, send, send_raw, wait_until
from tests.support.brokers import consume_until_done
from tests.support.worker_metrics import counting, total

TWO_MIB = 2 * 1024 * 1024


@pytest.fixture
def tansu() -> Iterator[str]:
    """A broker of our own: the worker's counts must cover only this test's records."""
    with EmbeddedBroker() as broker:
        yield broker.bootstrap


def poison(prefix: str) -> list[tuple[str, bytes, bytes]]:
    referral = pathway(f"{prefix}-BIGNUM", ago(2), "on-time")[0]
    # An otherwise valid referral.received holding a number of 5,000 digits.
    long_number = json_bytes(referral.value).replace(b"{", b'{"weight":' + b"9" * 5000 + b",", 1)
    return [
        (SPA_TOPIC, f"{prefix}-NESTED".encode(), b"[" * 100_000 + b"]" * 100_000),
        (SPA_TOPIC, referral.key.encode(), long_number),
        (CARE_TOPIC, f"{prefix}-LATIN1".encode(), b'{"subject": "caf\xe9"}'),
        (SPA_TOPIC, f"{prefix}-EMPTY".encode(), b""),
        (CARE_TOPIC, f"{prefix}-ARRAY".encode(), b'["uk.nhs.pod.meeting.held"]'),
    ]


def send_large(bootstrap: str, topic: str, key: bytes, value: bytes) -> None:
    # The clients' default request limit is 1 MiB; a producer allowed more can still send it.
    producer = KafkaProducer(bootstrap_servers=bootstrap, max_request_size=4 * TWO_MIB)
    producer.send(topic, key=key, value=value).get(timeout=30)
    producer.close()


def test_every_poison_record_is_dead_lettered_once_and_every_valid_event_flows(tansu, start_worker, prefix):
    worker = start_worker(tansu, PODLINK_RECOVERY_CONSISTENCY_CHECK="false")
    bad = poison(prefix)
    large = (SPA_TOPIC, f"{prefix}-LARGE".encode(), b"x" * TWO_MIB)
    pathways = {f"{prefix}-{i}": pathway(f"{prefix}-{i}", ago(2), "on-time", n=i) for i in range(len(bad) + 2)}
    valid = list(pathways.values())
    for i, record in enumerate(bad):  # a valid pathway, a poison record, a valid pathway ...
        send(tansu, valid[i])
        send_raw(tansu, [record])
    send_large(tansu, *large)
    for events in valid[len(bad):]:
        send(tansu, events)
    sent = sum(len(events) for events in valid) + len(bad) + 1

    consume_until_done(tansu, FHIR_TOPIC, every_event_has_its_message(pathways), timeout=120)
    metrics = wait_until(counting(worker.web_url, sent), 60, "every record counted")
    assert total(metrics, "podlink_records_total") == sent
    assert total(metrics, "podlink_records_total", outcome="dead-letter") == len(bad) + 1
    assert total(metrics, "podlink_dead_letters_total") == len(bad) + 1

    dead = consume_until_done(tansu, DEAD_LETTER_TOPIC, lambda rs: len(rs) >= len(bad) + 1, timeout=60)
    assert Counter(r.key for r in dead) == Counter(key for _, key, _ in [*bad, large])
    for record in dead:
        headers = dict(record.headers)
        assert headers["podlink-error"]
        if record.key == large[1]:
            # Larger than the worker's producer sends: the source topic keeps it at this offset.
            assert record.value is None and headers["podlink-value-omitted"] == f"{TWO_MIB} bytes".encode()
            assert headers["podlink-source-topic"] == SPA_TOPIC.encode()
        else:
            assert record.value == next(v for _, k, v in bad if k == record.key)
