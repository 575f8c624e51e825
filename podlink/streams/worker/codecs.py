"""What the worker's tables store, as bytes: one codec per table value.

RocksDB and the tables' changelog topics keep what earlier versions wrote, and a worker must
load it after an upgrade, so these formats change only with a migration.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Callable, Generic, TypeVar

from pydantic import TypeAdapter

from podlink.streams.core.deadlines import Deadline
from podlink.streams.core.encoding import json_bytes
from podlink.streams.core.episode import Episode
from podlink.streams.core.rules import Flag
from podlink.streams.pipeline.processor import Watch

T = TypeVar("T")


@dataclass(frozen=True)
class Codec(Generic[T]):
    encode: Callable[[T], bytes]
    decode: Callable[[bytes], T]


@dataclass(frozen=True)
class DeadlineEntry:
    """What the timer watches for a referral, the input partition it was read from (which
    worker alerts) and the rules it was worked out under (a changed policy file recomputes it)."""

    partition: int
    watch: Watch
    rules: str = ""


_FLAGS: TypeAdapter[tuple[Flag, ...]] = TypeAdapter(tuple[Flag, ...])


def _encode_deadline_entry(entry: DeadlineEntry) -> bytes:
    return json_bytes({
        "partition": entry.partition,
        "rules": entry.rules,
        "closed": entry.watch.closed,
        "deadlines": [d.model_dump(mode="json") for d in entry.watch.deadlines],
        "flags": _FLAGS.dump_python(entry.watch.flags, mode="json"),
    })


def _decode_deadline_entry(stored: bytes) -> DeadlineEntry:
    entry = json.loads(stored)
    if "deadline" in entry:
        # Stored before the deadline engine: the first-meeting deadline alone.
        deadline = Deadline.model_validate(entry["deadline"])
        return DeadlineEntry(entry["partition"], Watch((deadline,), (), deadline.closed_at is not None))
    watch = Watch(tuple(Deadline.model_validate(d) for d in entry["deadlines"]),
                  _FLAGS.validate_python(entry["flags"]), entry["closed"])
    return DeadlineEntry(entry["partition"], watch, entry["rules"])


EPISODE: Codec[Episode] = Codec(lambda episode: episode.model_dump_json().encode(), Episode.model_validate_json)
DEADLINE_ENTRY: Codec[DeadlineEntry] = Codec(_encode_deadline_entry, _decode_deadline_entry)
# The highest offset of an input partition that was dead-lettered, as decimal digits.
DEAD_LETTER_MARK: Codec[int] = Codec(lambda offset: str(offset).encode(), int)
