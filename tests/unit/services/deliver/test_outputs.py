import json
from datetime import datetime, timezone

from podlink.services.deliver.outputs import Message, dead_letter, outcome_event
from podlink.services.deliver.policy import Answer

MESSAGE = Message("epr.fhir-messages.v1", 2, 41, "REF-9", "bundle-9", b'{"resourceType":"Bundle","id":"bundle-9"}')
AT = datetime(2026, 5, 1, 9, 0, tzinfo=timezone.utc)


def test_succeeded_event_names_bundle_attempts_and_status_only():
    record = outcome_event(MESSAGE, True, 3, Answer(200, "ok"), AT)
    event = json.loads(record.value)
    assert record.topic == "pod.outcomes.v1" and record.key == b"REF-9"
    assert record.headers == [("content-type", b"application/cloudevents+json; charset=UTF-8")]
    assert event["type"] == "uk.nhs.podlink.delivery.succeeded"
    assert event["source"] == "urn:podlink:deliver"
    assert event["subject"] == "REF-9" and event["time"] == "2026-05-01T09:00:00Z"
    assert event["data"] == {"referralId": "REF-9", "bundleId": "bundle-9", "attempts": 3, "lastStatus": 200}


def test_failed_event_carries_the_reason_and_a_status_or_failure():
    event = json.loads(outcome_event(MESSAGE, False, 5, Answer(None, failure="timeout"), AT, "timeout; gave up after 5 attempts").value)
    assert event["type"] == "uk.nhs.podlink.delivery.failed"
    assert event["data"]["lastStatus"] == "timeout"
    assert event["data"]["reason"] == "timeout; gave up after 5 attempts"


def test_event_id_is_stable_per_bundle_and_kind():
    one = json.loads(outcome_event(MESSAGE, True, 1, Answer(200), AT).value)["id"]
    again = json.loads(outcome_event(MESSAGE, True, 4, Answer(202), datetime.now(timezone.utc)).value)["id"]
    other = json.loads(outcome_event(MESSAGE, False, 1, Answer(400), AT, "HTTP 400").value)["id"]
    assert one == again != other


def test_dead_letter_keeps_the_bundle_and_the_eprs_answer():
    outcome = b'{"resourceType":"OperationOutcome"}'
    record = dead_letter(MESSAGE, Answer(400), 1, "HTTP 400", outcome)
    headers = dict(record.headers)
    assert record.topic == "podlink.dead-letter.v1" and record.key == b"REF-9" and record.value == MESSAGE.value
    assert headers == {
        "podlink-error": b"EPR refused the message: HTTP 400",
        "podlink-source-topic": b"epr.fhir-messages.v1",
        "podlink-source-partition": b"2",
        "podlink-source-offset": b"41",
        "podlink-request-id": b"bundle-9",
        "podlink-attempts": b"1",
        "podlink-epr-status": b"400",
        "podlink-epr-operation-outcome": outcome,
    }
