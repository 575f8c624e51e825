"""`podlink dead-letters`: what is on `podlink.dead-letter.v1`, without the patient data by default;
`podlink dead-letters redrive`: re-send the FHIR messages the EPR refused.

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

from podlink.services.settings_errors import load_or_report
from podlink.services.topic_reader import NoSuchTopic, read_topic
from podlink.streams.worker.settings import DEAD_LETTER_TOPIC, FHIR_TOPIC, Settings

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


@dataclass(frozen=True)
class Undelivered:
    """A FHIR message `podlink deliver` dead-lettered because the EPR refused it."""

    letter: DeadLetter
    request_id: str
    epr_status: str | None


def undelivered(letters: list[DeadLetter], headers: dict[tuple[int, int], dict[str, str]],
                referral: str | None) -> list[Undelivered]:
    """Deliver's dead letters (from the FHIR topic, with a request id), oldest first, each
    message once, optionally of one referral only. `headers` are each letter's headers by its
    (partition, offset) on the dead-letter topic."""
    found: list[Undelivered] = []
    seen: set[str] = set()
    for letter in oldest_first(letters):
        named = headers.get((letter.partition, letter.offset), {})
        request_id = named.get("podlink-request-id")
        if letter.source_topic != FHIR_TOPIC or not request_id or request_id in seen:
            continue
        if referral is not None and _text(letter.key) != referral:
            continue
        seen.add(request_id)
        found.append(Undelivered(letter, request_id, named.get("podlink-epr-status")))
    return found


def redrive_line(item: Undelivered) -> str:
    letter = item.letter
    return (f"{_when(letter.timestamp)}  referral={_text(letter.key)}  X-Request-Id={item.request_id}"
            f"  was={item.epr_status or '?'}  reason={letter.reason or '?'}")


def run_redrive(settings: Settings, since: datetime | None, referral: str | None, dry_run: bool,
                out: TextIO = sys.stdout, err: TextIO = sys.stderr) -> int:
    """Re-send deliver's dead letters to the EPR with their original X-Request-Id (the Bundle
    id), so the EPR can de-duplicate. A referral whose message fails again has its later
    messages left for the next redrive, keeping the referral's order."""
    from podlink.services.deliver.settings import DeliverSettings
    deliver = load_or_report(DeliverSettings, "deliver")
    if deliver is None:
        return 2
    try:
        records = list(read_topic(settings, DEAD_LETTER_TOPIC, "podlink-dead-letters-redrive", since))
    except NoSuchTopic:
        print(f"{NONE_FOUND} ({DEAD_LETTER_TOPIC} does not exist yet)", file=out)
        return 0
    except Exception as exc:  # noqa: BLE001 - say what failed, not a traceback, to operators
        print(f"podlink dead-letters redrive: cannot read {DEAD_LETTER_TOPIC} from "
              f"{settings.kafka_bootstrap}: {type(exc).__name__}: {exc}", file=err)
        return 2
    letters = [dead_letter(r.timestamp, r.partition, r.offset, r.headers, r.key, r.value) for r in records]
    headers = {(r.partition, r.offset): {n: v.decode("utf-8", "replace") for n, v in r.headers if v is not None}
               for r in records}
    items = undelivered(letters, headers, referral)
    if not items:
        print("no undelivered FHIR messages to redrive", file=out)
        return 0
    if dry_run:
        for item in items:
            print(f"would re-send  {redrive_line(item)}", file=out)
        print(f"podlink dead-letters redrive: {len(items)} message(s) would be re-sent to "
              f"{deliver.endpoint()} (dry run: nothing sent)", file=err)
        return 0
    import asyncio

    from podlink.services.deliver.outputs import Message
    from podlink.services.deliver.redrive import redrive
    messages = [Message(FHIR_TOPIC, i.letter.source_partition or 0, i.letter.source_offset or 0,
                        _text(i.letter.key) or "", i.request_id, i.letter.value or b"") for i in items]
    results = asyncio.run(redrive(settings, deliver, messages))
    for item, result in zip(items, results):
        print(f"{result:<13} {redrive_line(item)}", file=out)
    sent = sum(1 for r in results if r == "delivered")
    print(f"podlink dead-letters redrive: {sent} delivered of {len(items)}", file=err)
    return 0 if sent == len(items) else 1
