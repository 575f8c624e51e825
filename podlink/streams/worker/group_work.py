"""What one referral's records in a batch lead to, worked out without touching the tables, the
producer, the metrics or the log: the records read, the episode moved on, every output
encoded, what to store. records.py carries it out.

The decisions are a function of the records and the episode as stored (and the episodes kept
decoded, which only save work), so they can be tested, and run, apart from the I/O.
"""
from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import NamedTuple, Protocol

from podlink.fhir_mappings import DEFAULT_BASE_URL
from podlink.streams.core.contract import Rejection, read_record
from podlink.streams.core.deadlines import FIRST_MEETING
from podlink.streams.core.encoding import json_bytes
from podlink.streams.core.episode import Episode, Policy, Position, Verdict
from podlink.streams.core.rules import RuleFailure
from podlink.streams.pipeline.processor import Known, process
from podlink.streams.worker.cloudevents_binding import Headers, structured
from podlink.streams.worker.codecs import DEADLINE_ENTRY, EPISODE, DeadlineEntry
from podlink.streams.worker.metrics import UNREADABLE
from podlink.streams.worker.settings import FHIR_TOPIC, OUTCOMES_TOPIC

Output = tuple[str, bytes | None, bytes | None, Headers]


class Readable(Protocol):
    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None


@dataclass(frozen=True)
class Refused:
    """A record to dead-letter (unless it was dead-lettered before): `index` in the batch."""

    index: int
    reason: str
    event_type: str
    referral: str | None = None


@dataclass(frozen=True)
class Handled:
    """A record processed: its verdict, what to send, and what its log line says."""

    index: int
    event_type: str
    referral: str
    verdict: Verdict
    outputs: tuple[Output, ...]
    rule_failures: tuple[RuleFailure, ...]
    outcome_types: tuple[str, ...]
    first_deadline: str | None  # the first-meeting deadline it opened, due when (ISO 8601)
    other_deadlines: tuple[tuple[str, str], ...]  # the others it opened: (policy, due when)
    fhir_messages: int


@dataclass
class GroupOutcome:
    """A referral's records in a batch, worked out, in the order they were read."""

    key: bytes | None
    indexes: tuple[int, ...]  # the places in the batch of the group's records
    records: list[Handled | Refused] = field(default_factory=list)
    stored: tuple[int, bytes] | None = None  # the episode to store, as the record at that index
    entry: tuple[int, DeadlineEntry, bytes] | None = None  # the deadline entry to store, likewise
    replayed: int | None = None  # the last record read again after the episode had it
    # The error (its type's name) that stopped the whole group: none of it is carried out.
    failure: str | None = None


class Job(NamedTuple):
    """A referral's records to work out, and its episode as stored (None: none yet)."""

    key: bytes | None
    stored: bytes | None
    records: Sequence[tuple[int, Readable]]


class _Recent:
    """The episodes worked out last, decoded, with their evaluations: a referral's events
    often come in consecutive batches, and decoding and evaluating an episode again costs
    more than the event itself. An entry is used only while the table still holds the very
    bytes it was stored as, so nothing written elsewhere (another worker, a rebalance) is ever
    taken for it."""

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
class GroupWork:
    policy: Policy
    rules_fingerprint: str = ""
    fhir_base_url: str = DEFAULT_BASE_URL  # the trust's namespace for podlink's FHIR terms
    validate_fhir: bool = True  # every message through fhir.resources and the R4 JSON Schema
    # How many decoded episodes are kept. Each is about 125 objects the garbage collector
    # tracks: 1,024 made a full collection take about 105 ms, 128 about 3 ms, for the same CPU
    # time an event (docs/performance.md, third round).
    recent_episodes: int = 128
    _recent: _Recent = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._recent = _Recent(self.recent_episodes)

    def work_out(self, job: Job) -> GroupOutcome:
        """Never raises: an error that stops the group is its outcome's `failure`."""
        try:
            return self._work_out(job)
        except Exception as exc:  # noqa: BLE001 - the last resort: records.py says so, and goes on
            return GroupOutcome(job.key, tuple(i for i, _ in job.records), failure=type(exc).__name__)

    def _work_out(self, job: Job) -> GroupOutcome:
        key = job.key
        outcome = GroupOutcome(key, tuple(i for i, _ in job.records))
        episode: Episode | None = None
        loaded = False
        changed: int | None = None  # the last record that changed the episode
        known: Known | None = None  # the last evaluation, reused by the next record
        entry: tuple[int, DeadlineEntry] | None = None  # the last deadline entry worked out
        for i, message in job.records:
            try:
                read = read_record(message.key, message.value)
            except Exception as exc:  # noqa: BLE001 - e.g. RecursionError on deeply nested JSON
                read = Rejection(f"podlink could not read the record ({type(exc).__name__})")
            if isinstance(read, Rejection):
                outcome.records.append(Refused(i, read.reason, UNREADABLE))
                continue
            event = read.event
            try:
                if not loaded:
                    episode, known = self._load(key, job.stored)
                    loaded = True
                result = process(episode, read, self.policy,
                                 Position(message.topic, message.partition, message.offset),
                                 fhir_base_url=self.fhir_base_url, validate_fhir=self.validate_fhir,
                                 known=known)
                outputs = [(FHIR_TOPIC, key, json_bytes(bundle), []) for bundle in result.fhir_messages]
                outputs += [(OUTCOMES_TOPIC, key, *structured(event_out)) for event_out in result.outcomes]
            except Exception as exc:  # noqa: BLE001 - one event must never stop the partition
                outcome.records.append(Refused(i, f"podlink could not process the event ({type(exc).__name__})",
                                               event.type, event.referral_id))
                continue
            if result.stores_episode:
                episode, changed = result.episode, i
                known = result.evaluated or known
            elif result.verdict == "replayed":
                outcome.replayed = i
            if result.watch_changed and result.watch is not None:
                entry = (i, DeadlineEntry(message.partition, result.watch, self.rules_fingerprint))
            opened = {d.policy: d.due_at.isoformat() for d in result.opened}
            outcome.records.append(Handled(
                i, event.type, event.referral_id, result.verdict, tuple(outputs), result.rule_failures,
                tuple(o["type"] for o in result.outcomes), opened.pop(FIRST_MEETING, None),
                tuple(opened.items()), len(result.fhir_messages),
            ))
        if changed is not None and episode is not None and key is not None:
            encoded = EPISODE.encode(episode)
            outcome.stored = (changed, encoded)
            self._recent.put(key, encoded, episode, known)
        if entry is not None:
            outcome.entry = (*entry, DEADLINE_ENTRY.encode(entry[1]))
        return outcome

    def _load(self, key: bytes | None, stored: bytes | None) -> tuple[Episode | None, Known | None]:
        if not stored or key is None:
            return None, None
        return self._recent.get(key, stored) or (EPISODE.decode(stored), None)
