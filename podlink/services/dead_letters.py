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

from podlink.services.topic_reader import NoSuchTopic, read_topic
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


def oldest_first(letters: list[DeadLetter]) -> list[DeadLetter]:
    return sorted(letters, key=lambda d: (d.timestamp, d.partition, d.offset))


def unique_by_source(letters: list[DeadLetter]) -> tuple[list[DeadLetter], int]:
    """Each source record's first dead letter, in order, and how many repeats were left out.

    Older podlink versions dead-lettered a record again on every replay or rebalance re-read:
    one bad record, many dead letters. A dead letter whose source position is not known is
    always kept.
    """
    seen: set[tuple[str, int, int]] = set()
    kept = []
    for letter in letters:
        if letter.source_topic is None or letter.source_partition is None or letter.source_offset is None:
            kept.append(letter)
            continue
        source = (letter.source_topic, letter.source_partition, letter.source_offset)
        if source not in seen:
            seen.add(source)
            kept.append(letter)
    return kept, len(letters) - len(kept)


def listing(letters: list[DeadLetter], limit: int | None) -> tuple[list[DeadLetter], int, int]:
    """What the listing shows: oldest first, each source record once, at most `limit`; with how
    many distinct dead letters there are and how many repeats were hidden."""
    if limit is not None and limit < 1:
        raise ValueError(f"a limit must be 1 or more, not {limit}")
    unique, repeats = unique_by_source(oldest_first(letters))
    return (unique if limit is None else unique[:limit]), len(unique), repeats


def read_dead_letters(settings: Settings, since: datetime | None, keep_values: bool) -> list[DeadLetter] | None:
    """Every dead letter (from `since`, if given); None when the topic does not exist."""
    try:
        return [dead_letter(r.timestamp, r.partition, r.offset, r.headers, r.key, r.value, keep_values)
                for r in read_topic(settings, DEAD_LETTER_TOPIC, "podlink-dead-letters", since)]
    except NoSuchTopic:
        return None


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
    shown, total, repeats = listing(letters, limit)
    for letter in shown:
        print(json.dumps(as_json(letter, show_values)) if json_lines else format_line(letter, show_values),
              file=out)
    hidden = f", {repeats} repeat(s) of the same source record hidden" if repeats else ""
    print(f"podlink dead-letters: {len(shown)} shown of {total} on {DEAD_LETTER_TOPIC}{hidden} "
          f"({time.monotonic() - started:.1f} s)", file=err)
    return 0
