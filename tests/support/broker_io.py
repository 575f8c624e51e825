"""What end-to-end tests do to a broker: send sample records, and read podlink's outputs back."""
from __future__ import annotations

import json
import time
from collections import Counter
from datetime import datetime, timedelta, timezone

from kafka import KafkaProducer

from podlink.services.samples import Record
from podlink.streams.core.encoding import json_bytes


def send(bootstrap: str, records: list[Record]) -> None:
    producer = KafkaProducer(bootstrap_servers=bootstrap, linger_ms=5)
    for r in records:
        producer.send(r.topic, key=r.key.encode(), value=json_bytes(r.value))
    producer.flush()
    producer.close()


def send_raw(bootstrap: str, items: list[tuple[str, bytes | None, bytes]]) -> None:
    producer = KafkaProducer(bootstrap_servers=bootstrap)
    for topic, key, value in items:
        producer.send(topic, key=key, value=value)
    producer.flush()
    producer.close()


def values(records) -> list[dict]:
    return [json.loads(r.value) for r in records]


def of(prefix: str, events: list[dict]) -> list[dict]:
    return [e for e in events if e.get("subject", "").startswith(prefix)]


def ago(hours: float) -> datetime:
    return datetime.now(timezone.utc) - timedelta(hours=hours)


def every_event_has_its_message(pathways: dict[str, list[Record]]):
    """A `done` for consume_until_done on the FHIR topic: each input event has a message.

    Replays after a crash may send some messages twice (same ids); none may be missing.
    """
    def done(records) -> bool:
        per_referral = Counter(r.key.decode() for r in records)
        return all(per_referral[ref] >= len(events) for ref, events in pathways.items())
    return done


def wait_until(condition, timeout: float, what: str):
    """Poll `condition` until it returns something truthy, and return that; raise on timeout."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if result := condition():
            return result
        time.sleep(0.25)
    raise TimeoutError(f"not within {timeout} s: {what}")
