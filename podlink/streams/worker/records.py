"""What the worker does with one input record: read it, process it, store and send what it led to.

Every record ends somewhere and is counted once: applied, pending, duplicate, replayed, out of
scope, or on the dead-letter topic with a reason. No exception leaves `handle`: an exception
would crash the Faust agent, whose restart drops the records it had fetched.
"""
from __future__ import annotations

import time
from collections.abc import Callable, MutableMapping
from dataclasses import dataclass
from typing import Any, Protocol

import structlog
from faust.types import TP

from podlink.streams.core.contract import Accepted, Rejection, read_record
from podlink.streams.core.deadlines import FIRST_MEETING
from podlink.streams.core.encoding import json_bytes
from podlink.fhir_mappings import DEFAULT_BASE_URL
from podlink.streams.core.episode import Policy, Position
from podlink.streams.pipeline.processor import Result, process
from podlink.streams.worker.catchup import CatchUp
from podlink.streams.worker.cloudevents_binding import Headers, structured
from podlink.streams.worker.codecs import DEAD_LETTER_MARK, DEADLINE_ENTRY, EPISODE, DeadlineEntry
from podlink.streams.worker.metrics import UNREADABLE, Metrics
from podlink.streams.worker.settings import DEAD_LETTER_TOPIC, FHIR_TOPIC, OUTCOMES_TOPIC

log = structlog.get_logger("podlink")

Send = Callable[[str, bytes | None, bytes | None, Headers], None]
# Room left in a producer request for the record's framing and our headers.
RECORD_OVERHEAD_BYTES = 4096


class Message(Protocol):
    topic: str
    partition: int
    offset: int
    timestamp: float
    key: bytes | None
    value: bytes | None


@dataclass
class RecordHandler:
    policy: Policy
    episodes: MutableMapping[bytes, bytes]
    deadlines: MutableMapping[bytes, bytes]
    # Per input partition, the highest offset dead-lettered: a re-read (replay, rebalance)
    # must not dead-letter a record again. Changelogged to the input record's partition, so
    # a partition's mark moves with it to whichever worker takes it.
    dead_letter_marks: MutableMapping[bytes, bytes]
    send: Send
    metrics: Metrics
    catch_up: CatchUp
    max_record_bytes: int  # what the producer sends at most
    # Told of each deadline entry written: the deadline timer's index.
    on_deadlines: Callable[[bytes, DeadlineEntry], None] = lambda key, entry: None
    rules_fingerprint: str = ""
    fhir_base_url: str = DEFAULT_BASE_URL  # the trust's namespace for podlink's FHIR terms

    def handle(self, message: Message) -> None:
        try:
            self._handle(message)
        except Exception as exc:  # noqa: BLE001 - the last resort: say so, and go on
            log.error("record not handled", error=type(exc).__name__, **_where(message))
        self.catch_up.processed(TP(message.topic, message.partition), message.offset, time.monotonic())
        self.metrics.processing_latency.observe(max(time.time() - message.timestamp, 0.0))

    def _handle(self, message: Message) -> None:
        try:
            read = read_record(message.key, message.value)
        except Exception as exc:  # noqa: BLE001 - e.g. RecursionError on deeply nested JSON
            read = Rejection(f"podlink could not read the record ({type(exc).__name__})")
        if isinstance(read, Rejection):
            self._reject(message, read.reason, UNREADABLE)
            return
        event = read.event
        key = event.referral_id.encode()
        context = {"referral": event.referral_id, "type": event.type}
        try:
            result = self._process(key, read, message)
        except Exception as exc:  # noqa: BLE001 - one event must never stop the partition
            self._reject(message, f"podlink could not process the event ({type(exc).__name__})",
                         event.type, **context)
            return
        self.metrics.record(message.topic, event.type, result.verdict)
        for failure in result.rule_failures:
            self.metrics.rule_failed(failure.rule)
            log.error("rule failed; the event was applied without it", rule=failure.rule,
                      error=failure.error, **context)
        opened = {d.policy: d.due_at.isoformat() for d in result.opened}
        log.info("record", outcome=result.verdict, **context,
                 fhir_messages=len(result.fhir_messages),
                 outcome_events=[o["type"] for o in result.outcomes],
                 deadline=opened.pop(FIRST_MEETING, None), other_deadlines=opened or None,
                 **_where(message))

    def _process(self, key: bytes, read: Accepted, message: Message) -> Result:
        stored = self.episodes.get(key)
        episode = EPISODE.decode(stored) if stored else None
        result = process(episode, read, self.policy, Position(message.topic, message.partition, message.offset),
                         fhir_base_url=self.fhir_base_url)
        if result.stores_episode:
            self.episodes[key] = EPISODE.encode(result.episode)
        if result.watch_changed and result.watch is not None:
            entry = DeadlineEntry(message.partition, result.watch, self.rules_fingerprint)
            self.deadlines[key] = DEADLINE_ENTRY.encode(entry)
            self.on_deadlines(key, entry)
        for bundle in result.fhir_messages:
            self.send(FHIR_TOPIC, key, json_bytes(bundle), [])
        for outcome in result.outcomes:
            self.send(OUTCOMES_TOPIC, key, *structured(outcome))
        return result

    def _reject(self, message: Message, reason: str, event_type: str, **context: str) -> None:
        mark_key = Position(message.topic, message.partition, message.offset).partition_key.encode()
        mark = self.dead_letter_marks.get(mark_key)
        if mark is not None and message.offset <= DEAD_LETTER_MARK.decode(mark):
            self.metrics.record(message.topic, event_type, "replayed")
            log.info("record rejected", outcome="replayed", reason=reason, **context, **_where(message))
            return
        self.send(DEAD_LETTER_TOPIC, message.key, *self._dead_letter(message, reason))
        self.dead_letter_marks[mark_key] = DEAD_LETTER_MARK.encode(message.offset)
        self.metrics.dead_letter(reason)
        self.metrics.record(message.topic, event_type, "dead-letter")
        log.warning("record rejected", outcome="dead-letter", reason=reason, **context, **_where(message))

    def _dead_letter(self, message: Message, reason: str) -> tuple[bytes | None, Headers]:
        headers = [
            ("podlink-error", reason.encode()),
            ("podlink-source-topic", message.topic.encode()),
            ("podlink-source-partition", str(message.partition).encode()),
            ("podlink-source-offset", str(message.offset).encode()),
        ]
        size = len(message.key or b"") + len(message.value or b"")
        if size + RECORD_OVERHEAD_BYTES <= self.max_record_bytes:
            return message.value, headers
        # Too large to send on: the source topic still holds it at the offset in the headers.
        return None, [*headers, ("podlink-value-omitted", f"{len(message.value or b'')} bytes".encode())]


def _where(message: Message) -> dict[str, Any]:
    return {"topic": message.topic, "partition": message.partition, "offset": message.offset}
