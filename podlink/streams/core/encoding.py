"""How podlink spells what it writes: JSON records and moments in time.

One spelling each, so equal inputs give byte-equal records (ids, FHIR messages, outcome events)
whichever part of podlink wrote them.
"""
from __future__ import annotations

import functools
import json
import re
from datetime import datetime, timezone
from typing import Any

import orjson

# The spelling is the standard library's (`_json_bytes`); orjson writes the same bytes about 15
# times faster (a message Bundle: 5 us against 78 us), except, measured over millions of floats
# and every character, for floats smaller than 1e-4 (orjson `0.00001` and `1e-7`, json `1e-05`
# and `1e-07`) and NaN or Infinity (orjson `null`). Where orjson's output may hold one of
# those, json spells the value instead: a false alarm (a None, a string with `0.0000`) costs
# only the slower spelling. A search of the whole output for number tokens took longer than
# json itself, so it looks only where a one-digit exponent ends a value (as in `1e-7,`; ids
# such as `…9e-7a…` do not) and then reads back for a number before it.
_SHORT_EXPONENT = re.compile(rb"e-[6-9](?:[,\]}]|$)")
_NUMBER_ENDING_HERE = re.compile(rb"(?:^|[:,\[])-?[0-9]+(?:\.[0-9]+)?$")
_LONGEST_MANTISSA = 24  # a separator, a sign and 17 digits with their point, with room to spare
# Dataclasses and datetimes, which orjson would write and json refuses, go to json to be
# refused as before (podlink writes neither; nor enums or UUIDs, which orjson writes too).
_ORJSON_OPTIONS = orjson.OPT_PASSTHROUGH_DATACLASS | orjson.OPT_PASSTHROUGH_DATETIME


def json_bytes(value: Any) -> bytes:
    """Compact UTF-8 JSON: the value of every record podlink publishes or stores."""
    try:
        spelled = orjson.dumps(value, option=_ORJSON_OPTIONS)
    except orjson.JSONEncodeError:
        # Keys that are not strings, integers beyond 64 bits, lone surrogates, nesting deeper
        # than 255: json writes them, or raises its own error, as it always did.
        return _json_bytes(value)
    if b"null" in spelled or b"0.0000" in spelled or _has_short_exponent(spelled):
        return _json_bytes(value)
    return spelled


def _has_short_exponent(spelled: bytes) -> bool:
    return any(
        _NUMBER_ENDING_HERE.search(spelled, max(0, found.start() - _LONGEST_MANTISSA), found.start())
        for found in _SHORT_EXPONENT.finditer(spelled)
    )


def _json_bytes(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode()


def utc_text(moment: datetime) -> str:
    """An aware moment in UTC, ISO 8601 with `Z` (a FHIR instant, a CloudEvents time)."""
    # Not from the cache: a naive moment is read in the host's time zone, which may change,
    # and a moment in a repeated hour (fold 1) equals and hashes as its fold-0 twin, an hour
    # away. Any other two equal moments are the same instant, so they share an entry.
    if moment.tzinfo is None or moment.fold:
        return _utc_text(moment)
    return _cached_utc_text(moment)


def _utc_text(moment: datetime) -> str:
    return moment.astimezone(timezone.utc).isoformat().removesuffix("+00:00") + "Z"


# A message writes the same few moments of its referral over and over (its deadlines' start
# and due times in the CarePlan and in every Task): 1.4 us each, 0.1 us from the cache.
_cached_utc_text = functools.lru_cache(maxsize=16_384)(_utc_text)
