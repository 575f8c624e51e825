"""`podlink dead-letters`: what is on `podlink.dead-letter.v1`, without the patient data by default.

A dead letter keeps the original record's value, which can hold NHS numbers, names and free
text. So the listing shows where the record came from, why it was refused and how big it was;
the value itself only on request (`--show-values`), for the operator who must get it fixed.
"""
from __future__ import annotations

import json
import sys
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Sequence, TextIO

from kafka import KafkaConsumer, TopicPartition

from podlink.services.kafka_options import client_options
from podlink.streams.worker.settings import DEAD_LETTER_TOPIC, Settings

VALUES_WARNING = (
    "podlink dead-letters: --show-values prints the original records, which may hold patient "
    "data (NHS numbers, names, free text). Keep this output off tickets, chat and shared files."
)
NONE_FOUND = "no dead letters"


@dataclass(frozen=True)
class DeadLetter:
    timestamp: datetime
    partition: int  # where the dead letter itself is, on the dead-letter topic
    offset: int
    source_topic: str | None
    source_partition: int | None
    source_offset: int | None
    reason: str | None
    key: bytes | None
    value_bytes: int | None  # None: the record has no value
    value: bytes | None  # kept only when it is to be shown: it can hold patient data


def dead_letter(timestamp_ms: int, partition: int, offset: int, headers: Sequence[tuple[str, bytes]],
                key: bytes | None, value: bytes | None, keep_value: bool = True) -> DeadLetter:
    """A dead-letter record as podlink wrote it (headers podlink-error, podlink-source-*)."""
    named = {name: raw.decode("utf-8", "replace") for name, raw in headers if raw is not None}

    def number(name: str) -> int | None:
        text = named.get(name)
        return int(text) if text is not None and text.isdigit() else None

    return DeadLetter(
        timestamp=datetime.fromtimestamp(timestamp_ms / 1000, timezone.utc),
        partition=partition, offset=offset,
        source_topic=named.get("podlink-source-topic"),
        source_partition=number("podlink-source-partition"),
        source_offset=number("podlink-source-offset"),
        reason=named.get("podlink-error"), key=key,
        value_bytes=None if value is None else len(value), value=value if keep_value else None,
    )


def _text(raw: bytes | None) -> str | None:
    return None if raw is None else raw.decode("utf-8", "backslashreplace")


def _when(moment: datetime) -> str:
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _source(letter: DeadLetter) -> str:
    return f"{letter.source_topic or '?'}/{_or_unknown(letter.source_partition)}@{_or_unknown(letter.source_offset)}"


def _or_unknown(n: int | None) -> str:
    return "?" if n is None else str(n)


def format_line(letter: DeadLetter, show_value: bool = False) -> str:
    """One line: when, source topic/partition@offset, key, value size, reason (value if asked)."""
    size = "no value" if letter.value_bytes is None else f"{letter.value_bytes} bytes"
    key = _text(letter.key)
    line = (f"{_when(letter.timestamp)}  {_source(letter)}  key={key if key is not None else '-'}"
            f"  value={size}  reason={letter.reason or '?'}")
    if show_value:
        line += f"  value: {_text(letter.value)}"
    return line


def as_json(letter: DeadLetter, show_value: bool = False) -> dict[str, Any]:
    record: dict[str, Any] = {
        "timestamp": _when(letter.timestamp),
        "source_topic": letter.source_topic,
        "source_partition": letter.source_partition,
        "source_offset": letter.source_offset,
        "reason": letter.reason,
        "key": _text(letter.key),
        "value_bytes": letter.value_bytes,
        "dead_letter_partition": letter.partition,
        "dead_letter_offset": letter.offset,
    }
    if show_value:
        record["value"] = _text(letter.value)
    return record


def oldest_first(letters: list[DeadLetter], limit: int | None) -> list[DeadLetter]:
    ordered = sorted(letters, key=lambda d: (d.timestamp, d.partition, d.offset))
    return ordered if limit is None else ordered[:limit]


def read_dead_letters(settings: Settings, since: datetime | None, keep_values: bool,
                      quiet_seconds: float = 0.5) -> list[DeadLetter] | None:
    """Every dead letter (from `since`, if given); None when the topic does not exist.

    Reads with assign() and no consumer group: looking commits nothing and leaves no group.
    """
    consumer = KafkaConsumer(**client_options(settings), group_id=None, enable_auto_commit=False,
                             allow_auto_create_topics=False, fetch_max_wait_ms=100,
                             client_id="podlink-dead-letters")
    try:
        partitions = consumer.partitions_for_topic(DEAD_LETTER_TOPIC)
        if not partitions:
            return None
        tps = [TopicPartition(DEAD_LETTER_TOPIC, p) for p in sorted(partitions)]
        consumer.assign(tps)
        _seek_start(consumer, tps, since)
        ends = consumer.end_offsets(tps)
        # Filtered here as well: Tansu answers a time after the last record with an offset.
        since_ms = int(since.timestamp() * 1000) if since else None
        letters: list[DeadLetter] = []
        while True:
            batches = consumer.poll(timeout_ms=int(quiet_seconds * 1000))
            for batch in batches.values():
                letters.extend(
                    dead_letter(r.timestamp, r.partition, r.offset, r.headers, r.key, r.value, keep_values)
                    for r in batch if since_ms is None or r.timestamp >= since_ms)
            # Stop once past every end offset and a poll came back empty: some brokers (Tansu)
            # answer end offsets below the last record, so the end offset alone is not enough.
            if not batches and all(consumer.position(tp) >= ends[tp] for tp in tps):
                return letters
    finally:
        consumer.close()


def _seek_start(consumer: KafkaConsumer, tps: list[TopicPartition], since: datetime | None) -> None:
    if since is None:
        consumer.seek_to_beginning(*tps)
        return
    found = consumer.offsets_for_times({tp: int(since.timestamp() * 1000) for tp in tps})
    for tp in tps:
        at = found.get(tp)
        if at is None:
            consumer.seek_to_end(tp)  # nothing on this partition since then
        else:
            consumer.seek(tp, at.offset)


def run_dead_letters(settings: Settings, since: datetime | None, limit: int | None,
                     show_values: bool, json_lines: bool, out: TextIO = sys.stdout,
                     err: TextIO = sys.stderr) -> int:
    started = time.monotonic()
    try:
        letters = read_dead_letters(settings, since, keep_values=show_values)
    except Exception as exc:  # noqa: BLE001 - say what failed, not a traceback, to operators
        print(f"podlink dead-letters: cannot read {DEAD_LETTER_TOPIC} from {settings.kafka_bootstrap}: "
              f"{type(exc).__name__}: {exc}", file=err)
        return 2
    if not letters:
        print(NONE_FOUND if letters is not None else f"{NONE_FOUND} ({DEAD_LETTER_TOPIC} does not exist yet)",
              file=out)
        return 0
    if show_values:
        print(VALUES_WARNING, file=err)
    shown = oldest_first(letters, limit)
    for letter in shown:
        print(json.dumps(as_json(letter, show_values)) if json_lines else format_line(letter, show_values),
              file=out)
    print(f"podlink dead-letters: {len(shown)} shown of {len(letters)} on {DEAD_LETTER_TOPIC} "
          f"({time.monotonic() - started:.1f} s)", file=err)
    return 0
