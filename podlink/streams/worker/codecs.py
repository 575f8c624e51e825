"""What the worker's tables store, as bytes: one codec per table value.

RocksDB and the tables' changelog topics keep what earlier versions wrote, and a worker must
load it after an upgrade, so these formats change only with a migration.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Callable, Generic, TypeVar

from podlink.streams.core.deadlines import Deadline
from podlink.streams.core.encoding import json_bytes
from podlink.streams.core.episode import Episode

T = TypeVar("T")


@dataclass(frozen=True)
class Codec(Generic[T]):
    encode: Callable[[T], bytes]
    decode: Callable[[bytes], T]


@dataclass(frozen=True)
class DeadlineEntry:
    """A referral's deadline and the input partition it was read from (which worker alerts)."""

    partition: int
    deadline: Deadline


def _encode_deadline_entry(entry: DeadlineEntry) -> bytes:
    return json_bytes({"partition": entry.partition, "deadline": entry.deadline.model_dump(mode="json")})


def _decode_deadline_entry(stored: bytes) -> DeadlineEntry:
    entry = json.loads(stored)
    return DeadlineEntry(entry["partition"], Deadline.model_validate(entry["deadline"]))


EPISODE: Codec[Episode] = Codec(lambda episode: episode.model_dump_json().encode(), Episode.model_validate_json)
DEADLINE_ENTRY: Codec[DeadlineEntry] = Codec(_encode_deadline_entry, _decode_deadline_entry)
# The highest offset of an input partition that was dead-lettered, as decimal digits.
DEAD_LETTER_MARK: Codec[int] = Codec(lambda offset: str(offset).encode(), int)
