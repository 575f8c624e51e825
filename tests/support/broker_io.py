"""What end-to-end tests do to a broker: send sample records, and read podlink's outputs back."""
from __future__ import annotations

import json
import time
from collections import Counter
from datetime import datetime, timedelta, timezone

from podlink.services.samples import Record, send_records

# The names the tests use: sample Records, or raw (topic, key, value) records.
send = send_raw = send_records


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
