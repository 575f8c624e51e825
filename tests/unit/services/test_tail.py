"""`podlink tail`: which topics it reads, and a record as one JSON object."""
from __future__ import annotations

from kafka.consumer.fetcher import ConsumerRecord

from podlink.services.runner import welcome
from podlink.services.tail import as_json, heading, unknown_topic


def _record(value: bytes | None, headers: list[tuple[str, bytes]] | None = None) -> ConsumerRecord:
    return ConsumerRecord(topic="epr.fhir-messages.v1", partition=1, leader_epoch=0, offset=7,
                          timestamp=1_777_626_000_123, timestamp_type=0, key=b"REF-1", value=value,
                          headers=headers or [], checksum=None, serialized_key_size=5,
                          serialized_value_size=0, serialized_header_size=-1)


def test_a_record_as_json_parses_a_json_value_and_keeps_other_values_as_text():
    record = as_json(_record(b'{"resourceType":"Bundle","id":"b-1"}', [("podlink-error", b"why")]))
    assert record == {
        "topic": "epr.fhir-messages.v1", "partition": 1, "offset": 7,
        "timestamp": "2026-05-01T09:00:00.123000Z", "key": "REF-1",
        "headers": {"podlink-error": "why"},
        "value": {"resourceType": "Bundle", "id": "b-1"},
    }
    assert as_json(_record(b"{ not json"))["value"] == "{ not json"
    assert as_json(_record(None))["value"] is None


def test_a_heading_says_where_when_in_london_and_the_key():
    # 09:00 UTC on 1 May 2026 is 10:00 BST, a Friday.
    assert heading(_record(b"{}", [("h", b"v")])).plain == (
        "epr.fhir-messages.v1/1@7  Fri 01 May 10:00:00  key=REF-1\n  h: v")


def test_only_podlinks_topics_can_be_tailed():
    assert unknown_topic("pod.sla-alerts.v1") is None
    message = unknown_topic("pod.sla-alerts")
    assert message is not None and message.startswith("unknown topic 'pod.sla-alerts': podlink's topics are ")
    assert "epr.fhir-messages.v1" in message and "\n" not in message


def test_podlink_run_says_where_its_endpoints_are_and_how_to_tail_its_topics():
    text = welcome("127.0.0.1:9999", 6066)
    assert "  metrics:   http://127.0.0.1:6066/metrics" in text.splitlines()
    assert "  readiness: http://127.0.0.1:6066/readyz" in text.splitlines()
    assert "    PODLINK_KAFKA_BOOTSTRAP=127.0.0.1:9999 podlink tail epr.fhir-messages.v1 --follow" in text.splitlines()
