"""What a finished delivery publishes: an outcome event, and for a refused message its dead
letter. Pure: records as (key, value, headers), written by the service."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from podlink.services.deliver.policy import Answer
from podlink.streams.core.outcomes import cloud_event
from podlink.streams.worker.cloudevents_binding import Headers, structured
from podlink.streams.worker.settings import DEAD_LETTER_TOPIC, OUTCOMES_TOPIC

SOURCE = "urn:podlink:deliver"
SUCCEEDED = "delivery.succeeded"
FAILED = "delivery.failed"


@dataclass(frozen=True)
class Message:
    """One FHIR message record from `epr.fhir-messages.v1`."""

    topic: str
    partition: int
    offset: int
    referral_id: str
    bundle_id: str
    value: bytes


@dataclass(frozen=True)
class KafkaRecord:
    topic: str
    key: bytes
    value: bytes
    headers: Headers


def last_status(answer: Answer) -> int | str:
    """The HTTP status, or what happened instead (`timeout`, `connection failed (...)`)."""
    return answer.status if answer.status is not None else (answer.failure or "no answer")


def outcome_event(message: Message, delivered: bool, attempts: int, answer: Answer, at: datetime,
                  reason: str | None = None) -> KafkaRecord:
    """`uk.nhs.podlink.delivery.succeeded` or `.failed`: Bundle id, attempts, last status and
    the reason of a failure (statuses and BaRS codes only, never the message's content)."""
    data: dict[str, object] = {"bundleId": message.bundle_id, "attempts": attempts,
                               "lastStatus": last_status(answer)}
    if not delivered:
        data["reason"] = reason
    event = {**cloud_event(SUCCEEDED if delivered else FAILED, message.referral_id, at, data,
                           message.bundle_id), "source": SOURCE}
    value, headers = structured(event)
    return KafkaRecord(OUTCOMES_TOPIC, message.referral_id.encode(), value, headers)


def dead_letter(message: Message, answer: Answer, attempts: int, reason: str,
                operation_outcome: bytes | None) -> KafkaRecord:
    """The Bundle as it was, with where it came from and the EPR's answer in headers (the
    podlink-source-* and podlink-error headers `podlink dead-letters` already reads)."""
    headers: Headers = [
        ("podlink-error", f"EPR refused the message: {reason}".encode()),
        ("podlink-source-topic", message.topic.encode()),
        ("podlink-source-partition", str(message.partition).encode()),
        ("podlink-source-offset", str(message.offset).encode()),
        ("podlink-request-id", message.bundle_id.encode()),
        ("podlink-attempts", str(attempts).encode()),
        ("podlink-epr-status", str(last_status(answer)).encode()),
    ]
    if operation_outcome is not None:
        headers.append(("podlink-epr-operation-outcome", operation_outcome))
    return KafkaRecord(DEAD_LETTER_TOPIC, message.referral_id.encode(), message.value, headers)
