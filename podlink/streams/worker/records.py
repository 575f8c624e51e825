"""What the worker does with the input records a batch brought: read them, process them, store
and send what they led to.

A batch is grouped by referral: each referral's episode is loaded once, moved on by its records
in the order they were read, and stored once; every output is handed to the producer in one go.
What is stored and sent is what handling the records one at a time would have stored and sent
(tests/unit/worker/test_batches.py holds it to that): a batch of one is the per-record path.

Every record ends somewhere and is counted once: applied, pending, duplicate, replayed, out of
scope, or on the dead-letter topic with a reason. No exception leaves `handle_batch`: it
would end the Faust agent's loop, and `take_events` acknowledges its batch however that loop
ends, so the records would be committed unhandled (app.py stops the process without committing
when the broker refuses an output, for that reason).
"""
from __future__ import annotations

import logging
import time
from collections import Counter, OrderedDict
from collections.abc import Callable, MutableMapping, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from typing import Any, Protocol

import structlog
from faust.types import TP

from podlink.streams.core.contract import Accepted, Rejection, read_record
from podlink.streams.core.deadlines import FIRST_MEETING
from podlink.streams.core.encoding import json_bytes
from podlink.fhir_mappings import DEFAULT_BASE_URL
from podlink.streams.core.episode import Episode, Policy, Position
from podlink.streams.pipeline.processor import Known, Result, process
from podlink.streams.worker.catchup import CatchUp
from podlink.streams.worker.cloudevents_binding import Headers, structured
from podlink.streams.worker.codecs import DEAD_LETTER_MARK, DEADLINE_ENTRY, EPISODE, DeadlineEntry
from podlink.streams.worker.metrics import UNREADABLE, Metrics
from podlink.streams.worker.settings import DEAD_LETTER_TOPIC, FHIR_TOPIC, OUTCOMES_TOPIC

log = structlog.get_logger("podlink")

Send = Callable[[str, bytes | None, bytes | None, Headers], None]
# Room left in a producer request for the record's framing and our headers.
RECORD_OVERHEAD_BYTES = 4096
# How often the per-record tally is logged while per-record lines are not.
SUMMARY_SECONDS = 1.0


class Message(Protocol):
    topic: str
    partition: int
    offset: int
    timestamp: float
    key: bytes | None
    value: bytes | None


# Table writes go to the store and changelog partition of the record being handled: the Faust
# agent makes the record's event the current one (app.py), a test needs nothing.
WritingAs = Callable[[int], AbstractContextManager[Any]]


def _anywhere(index: int) -> AbstractContextManager[None]:
    return nullcontext()


@dataclass
class _Marks:
    """One input partition's dead-letter mark as the batch found it, and what the batch added.

    A batch's groups are handled one referral after another, so its rejections are not made in
    offset order; within a batch a partition's offsets only grow (unless read again), so an
    offset at or below the mark the batch found, or one this batch dead-lettered, is a re-read.
    """

    found: int | None
    added: set[int] = field(default_factory=set)

    def dead_lettered(self, offset: int) -> bool:
        return (self.found is not None and offset <= self.found) or offset in self.added

    def add(self, offset: int) -> None:
        self.added.add(offset)

    @property
    def highest(self) -> int:
        return max([*self.added, *([] if self.found is None else [self.found])])


class _Recent:
    """The episodes this worker stored last, decoded, with their evaluations: a referral's
    events often come in consecutive batches, and decoding and evaluating an episode again
    costs more than the event itself. An entry is used only while the table still holds the
    very bytes it was stored as, so nothing written elsewhere (another worker, a rebalance)
    is ever taken for it."""

    def __init__(self, size: int) -> None:
        self._size = size
        self._entries: OrderedDict[bytes, tuple[bytes, Episode, Known | None]] = OrderedDict()

    def get(self, key: bytes, stored: bytes) -> tuple[Episode, Known | None] | None:
        found = self._entries.get(key)
        if found is None or found[0] != stored:
            return None
        self._entries.move_to_end(key)
        return found[1], found[2]

    def put(self, key: bytes, stored: bytes, episode: Episode, known: Known | None) -> None:
        self._entries[key] = (stored, episode, known)
        self._entries.move_to_end(key)
        if len(self._entries) > self._size:
            self._entries.popitem(last=False)


@dataclass
class _Group:
    """One referral's records in a batch: their indexes in the batch, in the order read."""

    key: bytes
    records: list[tuple[int, Accepted]] = field(default_factory=list)


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
    validate_fhir: bool = True  # every message through fhir.resources and the R4 JSON Schema
    # The level of the one line per record; at saturation that is thousands a second, so by
    # default debug, with a summary at info every SUMMARY_SECONDS instead.
    record_level: int = logging.DEBUG
    clock: Callable[[], float] = time.monotonic
    # How many decoded episodes are kept. Each is about 125 objects the garbage collector
    # tracks: 1,024 made a full collection take about 105 ms, 128 about 3 ms, for the same CPU
    # time an event (docs/performance.md, third round).
    recent_episodes: int = 128
    _recent: _Recent = field(init=False, repr=False)
    _tally: Counter[str] = field(default_factory=Counter, init=False, repr=False)
    _tally_since: float | None = field(default=None, init=False, repr=False)

    def __post_init__(self) -> None:
        self._recent = _Recent(self.recent_episodes)

    def handle(self, message: Message) -> None:
        """One record: a batch of one."""
        self.handle_batch([message])

    def handle_batch(self, messages: Sequence[Message], writing_as: WritingAs = _anywhere) -> None:
        """The records of one batch, in the order the consumer returned them; `writing_as(i)`
        makes table writes go where the i-th record's would."""
        logs_records = log.is_enabled_for(self.record_level)
        marks: dict[bytes, _Marks] = {}  # each partition's mark as the batch found it
        groups: dict[bytes, _Group] = {}
        for i, message in enumerate(messages):
            try:
                read = read_record(message.key, message.value)
            except Exception as exc:  # noqa: BLE001 - e.g. RecursionError on deeply nested JSON
                read = Rejection(f"podlink could not read the record ({type(exc).__name__})")
            if isinstance(read, Rejection):
                try:
                    self._reject(messages, i, read.reason, UNREADABLE, marks, writing_as, logs_records)
                except Exception as exc:  # noqa: BLE001 - the last resort: say so, and go on
                    _not_handled(exc, [message])
                continue
            key = read.event.referral_id.encode()
            groups.setdefault(key, _Group(key)).records.append((i, read))
        for group in groups.values():
            try:
                self._handle_group(messages, group, marks, writing_as, logs_records)
            except Exception as exc:  # noqa: BLE001 - the last resort: say so, and go on
                _not_handled(exc, [messages[i] for i, _ in group.records])
        now = time.monotonic()
        wall = time.time()
        for message in messages:
            self.catch_up.processed(TP(message.topic, message.partition), message.offset, now)
            self.metrics.processing_latency.observe(max(wall - message.timestamp, 0.0))
        if not logs_records:
            self._summarise()

    def _handle_group(self, messages: Sequence[Message], group: _Group, marks: dict[bytes, _Marks],
                      writing_as: WritingAs, logs_records: bool) -> None:
        key = group.key
        episode: Episode | None = None
        loaded = False
        changed: int | None = None  # the last record that changed the episode
        replayed: int | None = None  # the last record read again after the episode had it
        entry: tuple[int, DeadlineEntry] | None = None  # the last deadline entry written
        known: Known | None = None  # the last evaluation, reused by the next record
        for i, read in group.records:
            message = messages[i]
            event = read.event
            context = {"referral": event.referral_id, "type": event.type}
            try:
                if not loaded:
                    episode, known = self._load(key)
                    loaded = True
                result = process(episode, read, self.policy,
                                 Position(message.topic, message.partition, message.offset),
                                 fhir_base_url=self.fhir_base_url, validate_fhir=self.validate_fhir,
                                 known=known)
                outputs = [(FHIR_TOPIC, key, json_bytes(bundle), []) for bundle in result.fhir_messages]
                outputs += [(OUTCOMES_TOPIC, key, *structured(outcome)) for outcome in result.outcomes]
            except Exception as exc:  # noqa: BLE001 - one event must never stop the partition
                self._reject(messages, i, f"podlink could not process the event ({type(exc).__name__})",
                             event.type, marks, writing_as, logs_records, **context)
                continue
            if result.stores_episode:
                episode, changed = result.episode, i
                known = result.evaluated or known
            elif result.verdict == "replayed":
                replayed = i
            if result.watch_changed and result.watch is not None:
                entry = (i, DeadlineEntry(message.partition, result.watch, self.rules_fingerprint))
            for output in outputs:
                self.send(*output)
            self._count(message, event.type, result, context, logs_records)
        if changed is not None and episode is not None:
            encoded = EPISODE.encode(episode)
            with writing_as(changed):
                self.episodes[key] = encoded
            self._recent.put(key, encoded, episode, known)
        if entry is not None:
            with writing_as(entry[0]):
                self.deadlines[key] = DEADLINE_ENTRY.encode(entry[1])
            self.on_deadlines(key, entry[1])
        if replayed is not None:
            self._write_again(key, replayed, writing_as, episode=changed is None, entry=entry is None)

    def _write_again(self, key: bytes, i: int, writing_as: WritingAs, *, episode: bool, entry: bool) -> None:
        """Writes the referral's stored episode and deadline entry again, unchanged.

        A worker killed after its store had a write and before the changelog did reads the
        records again as replays, which change nothing: without this, the changelog (what
        standbys and a worker without this disk recover from) would lack that write until the
        episode next changed, and a worker taking the partition over would never apply it."""
        with writing_as(i):
            for table, again in ((self.episodes, episode), (self.deadlines, entry)):
                stored = table.get(key) if again else None
                if stored:
                    table[key] = stored

    def _load(self, key: bytes) -> tuple[Episode | None, Known | None]:
        stored = self.episodes.get(key)
        if not stored:
            return None, None
        return self._recent.get(key, stored) or (EPISODE.decode(stored), None)

    def _count(self, message: Message, event_type: str, result: Result, context: dict[str, str],
               logs_records: bool) -> None:
        self.metrics.record(message.topic, event_type, result.verdict)
        self._tally[result.verdict] += 1
        for failure in result.rule_failures:
            self.metrics.rule_failed(failure.rule)
            log.error("rule failed; the event was applied without it", rule=failure.rule,
                      error=failure.error, **context)
        if logs_records:
            opened = {d.policy: d.due_at.isoformat() for d in result.opened}
            log.log(self.record_level, "record", outcome=result.verdict, **context,
                    fhir_messages=len(result.fhir_messages),
                    outcome_events=[o["type"] for o in result.outcomes],
                    deadline=opened.pop(FIRST_MEETING, None), other_deadlines=opened or None,
                    **_where(message))

    def _reject(self, messages: Sequence[Message], i: int, reason: str, event_type: str,
                marks: dict[bytes, _Marks], writing_as: WritingAs, logs_records: bool,
                **context: str) -> None:
        message = messages[i]
        mark_key = Position(message.topic, message.partition, message.offset).partition_key.encode()
        if mark_key not in marks:
            stored = self.dead_letter_marks.get(mark_key)
            marks[mark_key] = _Marks(DEAD_LETTER_MARK.decode(stored) if stored is not None else None)
        mark = marks[mark_key]
        if mark.dead_lettered(message.offset):
            self.metrics.record(message.topic, event_type, "replayed")
            self._tally["replayed"] += 1
            if logs_records:
                log.log(self.record_level, "record rejected", outcome="replayed", reason=reason,
                        **context, **_where(message))
            return
        self.send(DEAD_LETTER_TOPIC, message.key, *self._dead_letter(message, reason))
        mark.add(message.offset)
        with writing_as(i):
            self.dead_letter_marks[mark_key] = DEAD_LETTER_MARK.encode(mark.highest)
        self.metrics.dead_letter(reason)
        self.metrics.record(message.topic, event_type, "dead-letter")
        self._tally["dead-letter"] += 1
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

    def _summarise(self) -> None:
        now = self.clock()
        if self._tally_since is None:
            self._tally_since = now
        elapsed = now - self._tally_since
        if elapsed < SUMMARY_SECONDS:
            return
        log.info("records", seconds=round(elapsed, 3), records=sum(self._tally.values()),
                 **{outcome.replace("-", "_"): n for outcome, n in sorted(self._tally.items())})
        self._tally.clear()
        self._tally_since = now


def _not_handled(exc: Exception, messages: list[Message]) -> None:
    for message in messages:
        log.error("record not handled", error=type(exc).__name__, **_where(message))


def _where(message: Message) -> dict[str, Any]:
    return {"topic": message.topic, "partition": message.partition, "offset": message.offset}
