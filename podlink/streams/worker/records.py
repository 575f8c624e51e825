"""What the worker does with the input records a batch brought: read them, process them, store
and send what they led to.

A batch is grouped by referral (by record key, which the contract holds to the referral id):
each referral's episode is loaded once, moved on by its records in the order they were read
(group_work.py, here or in the helper process: batch_sharing.py), and stored once; every
output is handed to the producer in one go.
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
from collections import Counter
from collections.abc import Callable, MutableMapping, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from typing import Any, Protocol

import structlog
from faust.types import TP

from podlink.fhir_mappings import DEFAULT_BASE_URL
from podlink.streams.core.episode import Policy, Position
from podlink.streams.worker.catchup import CatchUp
from podlink.streams.worker.cloudevents_binding import Headers
from podlink.streams.worker.codecs import DEAD_LETTER_MARK, DeadlineEntry
from podlink.streams.worker.group_work import GroupOutcome, GroupWork, Handled, Job, Readable, Refused
from podlink.streams.worker.metrics import Metrics
from podlink.streams.worker.settings import DEAD_LETTER_TOPIC

log = structlog.get_logger("podlink")

Send = Callable[[str, bytes | None, bytes | None, Headers], None]
# Room left in a producer request for the record's framing and our headers.
RECORD_OVERHEAD_BYTES = 4096
# How often the per-record tally is logged while per-record lines are not.
SUMMARY_SECONDS = 1.0


class Message(Readable, Protocol):
    timestamp: float


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


@dataclass
class Carrying:
    """What carrying out one batch's groups keeps between them."""

    logs_records: bool
    marks: dict[bytes, _Marks] = field(default_factory=dict)  # each partition's mark as the batch found it


def groups(messages: Sequence[Readable]) -> dict[bytes | None, list[tuple[int, Readable]]]:
    """The records of a batch by key, each key's in the order read, with their places in it."""
    found: dict[bytes | None, list[tuple[int, Readable]]] = {}
    for i, message in enumerate(messages):
        found.setdefault(message.key, []).append((i, message))
    return found


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
    recent_episodes: int = 128  # decoded episodes kept (group_work.GroupWork)
    _work: GroupWork = field(init=False, repr=False)
    _tally: Counter[str] = field(default_factory=Counter, init=False, repr=False)
    _tally_since: float | None = field(default=None, init=False, repr=False)

    def __post_init__(self) -> None:
        self._work = GroupWork(self.policy, self.rules_fingerprint, self.fhir_base_url, self.validate_fhir,
                              self.recent_episodes)

    def handle(self, message: Message) -> None:
        """One record: a batch of one."""
        self.handle_batch([message])

    def handle_batch(self, messages: Sequence[Message], writing_as: WritingAs = _anywhere) -> None:
        """The records of one batch, in the order the consumer returned them; `writing_as(i)`
        makes table writes go where the i-th record's would."""
        batch = self.begin()
        for key, records in groups(messages).items():
            self.carry_out(messages, self.work_out(self.job(key, records)), batch, writing_as)
        self.finish(messages, batch)

    # The steps of handle_batch, for a batch whose groups are worked out elsewhere as well
    # (shared_work.py): begin, then per group job, work_out (here or not) and carry_out, then finish.

    def begin(self) -> Carrying:
        return Carrying(log.is_enabled_for(self.record_level))

    def job(self, key: bytes | None, records: Sequence[tuple[int, Readable]]) -> Job:
        """A referral's records, with its episode as the table holds it now."""
        return Job(key, None if key is None else self.episodes.get(key), records)

    @property
    def work(self) -> GroupWork:
        return self._work

    def work_out(self, job: Job) -> GroupOutcome:
        return self._work.work_out(job)

    def carry_out(self, messages: Sequence[Message], outcome: GroupOutcome, batch: Carrying,
                  writing_as: WritingAs = _anywhere) -> None:
        """Sends, stores and counts what a group of `messages` was worked out to lead to."""
        records = [messages[i] for i in outcome.indexes]
        if outcome.failure is not None:
            _not_handled(outcome.failure, records)
            return
        try:
            self._carry_out(messages, outcome, batch.marks, writing_as, batch.logs_records)
        except Exception as exc:  # noqa: BLE001 - the last resort: say so, and go on
            _not_handled(type(exc).__name__, records)

    def finish(self, messages: Sequence[Message], batch: Carrying) -> None:
        now = time.monotonic()
        wall = time.time()
        for message in messages:
            self.catch_up.processed(TP(message.topic, message.partition), message.offset, now)
            self.metrics.processing_latency.observe(max(wall - message.timestamp, 0.0))
        if not batch.logs_records:
            self._summarise()

    def _carry_out(self, messages: Sequence[Message], outcome: GroupOutcome, marks: dict[bytes, _Marks],
                   writing_as: WritingAs, logs_records: bool) -> None:
        for record in outcome.records:
            if isinstance(record, Refused):
                context = {} if record.referral is None else {"referral": record.referral, "type": record.event_type}
                self._reject(messages, record.index, record.reason, record.event_type, marks, writing_as,
                             logs_records, **context)
                continue
            for output in record.outputs:
                self.send(*output)
            self._count(messages[record.index], record, logs_records)
        key = outcome.key
        if key is None:
            return
        if outcome.stored is not None:
            with writing_as(outcome.stored[0]):
                self.episodes[key] = outcome.stored[1]
        if outcome.entry is not None:
            i, entry, encoded = outcome.entry
            with writing_as(i):
                self.deadlines[key] = encoded
            self.on_deadlines(key, entry)
        if outcome.replayed is not None:
            self._write_again(key, outcome.replayed, writing_as, episode=outcome.stored is None,
                              entry=outcome.entry is None)

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

    def _count(self, message: Message, handled: Handled, logs_records: bool) -> None:
        context = {"referral": handled.referral, "type": handled.event_type}
        self.metrics.record(message.topic, handled.event_type, handled.verdict)
        self._tally[handled.verdict] += 1
        for failure in handled.rule_failures:
            self.metrics.rule_failed(failure.rule)
            log.error("rule failed; the event was applied without it", rule=failure.rule,
                      error=failure.error, **context)
        if logs_records:
            log.log(self.record_level, "record", outcome=handled.verdict, **context,
                    fhir_messages=handled.fhir_messages, outcome_events=list(handled.outcome_types),
                    deadline=handled.first_deadline, other_deadlines=dict(handled.other_deadlines) or None,
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


def _not_handled(error: str, messages: list[Message]) -> None:
    for message in messages:
        log.error("record not handled", error=error, **_where(message))


def _where(message: Message) -> dict[str, Any]:
    return {"topic": message.topic, "partition": message.partition, "offset": message.offset}
