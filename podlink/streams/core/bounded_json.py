"""Parsing a record's JSON within bounds, so no value a producer sends can crash the reader.

Python's `json` recurses once per nesting level (100,000 nested arrays raise RecursionError),
refuses integers longer than 4,300 digits with a ValueError, and accepts `NaN` and `Infinity`,
which are not JSON. Each bound below is checked before or while parsing, and a value that
breaks one raises `Unreadable` with a reason that names the rule, never the value.
"""
from __future__ import annotations

import json
import math
import re
from collections.abc import Callable
from typing import Any

from podlink.streams.core.encoding import json_bytes

# Kafka's default `max.message.bytes` is 1 MiB, and the contract's largest example is 1.4 KB:
# a bigger value is no event a producer could send on a default topic, and refusing it
# unread stops one record from holding a worker's memory and time.
MAX_RECORD_BYTES = 1 << 20
# The contract's deepest path is 5 levels (the event, data, patient, name, given); 32 leaves
# room for later versions while Python's parser stays far from its recursion limit.
MAX_DEPTH = 32
# A binary64 number needs at most 24 characters (sign, 17 significant digits, point, exponent);
# a longer literal adds no precision, only parsing time (a long integer is quadratic to read).
MAX_NUMBER_CHARS = 32

# A JSON string with its escapes (the unrolled form does not backtrack), and the brackets left.
_STRING = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)
_NOT_BRACKET = re.compile(r"[^\[\]{}]+")
# Surrogates come only from `\uD800` to `\uDFFF` escapes: only a value with one needs the
# whole check (writing it out again), which cost a fifth of reading a record.
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")


class Unreadable(ValueError):
    """A value that breaks one of the reader's bounds; `reason` names the rule."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def load_bounded(value: bytes) -> Any:
    """The JSON value of a record, or Unreadable if it is not JSON within the bounds."""
    if len(value) > MAX_RECORD_BYTES:
        raise Unreadable(f"value is larger than {MAX_RECORD_BYTES} bytes")
    try:
        text = value.decode("utf-8")
    except UnicodeDecodeError:
        raise Unreadable("value is not UTF-8") from None
    if _deeper_than(text, MAX_DEPTH):
        raise Unreadable(f"value nests deeper than {MAX_DEPTH} levels")
    try:
        parsed = _DECODER.decode(text)
    except json.JSONDecodeError as exc:
        raise Unreadable(f"value is not JSON (line {exc.lineno}, column {exc.colno})") from None
    if _SURROGATE_ESCAPE.search(text):
        try:
            json_bytes(parsed)
        except UnicodeEncodeError:
            # A lone `\ud800` parses to a surrogate, which no output could be written with.
            raise Unreadable("value has a string escape that is not a Unicode character") from None
    return parsed


def _deeper_than(text: str, limit: int) -> bool:
    # Counted without recursion and before parsing; brackets inside strings do not nest.
    if text.count("[") + text.count("{") <= limit:
        return False  # too few opening brackets anywhere to nest that deep (nearly every event)
    depth = 0
    for bracket in _NOT_BRACKET.sub("", _STRING.sub("", text)):
        depth += 1 if bracket in "[{" else -1
        if depth > limit:
            return True
    return False


def _number(kind: Callable[[str], Any]) -> Callable[[str], Any]:
    def parse(literal: str) -> Any:
        if len(literal) > MAX_NUMBER_CHARS:
            raise Unreadable(f"value has a number longer than {MAX_NUMBER_CHARS} characters")
        number = kind(literal)
        if not math.isfinite(number):
            raise Unreadable("value has a number too large for a double")
        return number
    return parse


def _not_json(constant: str) -> Any:
    raise Unreadable("value has NaN or Infinity, which are not JSON")


# What json.loads(text, parse_int=..., ...) builds for every call, built once.
_DECODER = json.JSONDecoder(parse_int=_number(int), parse_float=_number(float), parse_constant=_not_json)
