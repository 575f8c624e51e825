import json
import time
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from podlink.streams.core.encoding import json_bytes, utc_text


def test_records_are_compact_utf8_json_in_insertion_order():
    assert json_bytes({"b": [1, "é"], "a": None}) == b'{"b":[1,"\xc3\xa9"],"a":null}'


def test_moments_are_written_in_utc_with_z_whatever_the_host_time_zone(host_in_new_york):
    bst = datetime(2026, 10, 24, 12, 0, tzinfo=timezone(timedelta(hours=1)))
    assert utc_text(bst) == "2026-10-24T11:00:00Z"


# --- json_bytes: orjson where it spells as the standard library does, json elsewhere --------


def stdlib(value):
    """The spelling podlink has always written (and the golden files hold)."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode()


# Floats of every size, the small ones orjson spells otherwise among them, and NaN and Infinity.
FLOATS = st.floats() | st.floats(min_value=-1e-4, max_value=1e-4) | st.floats(min_value=-1e-3, max_value=1e-3)
# Integers beyond 64 bits, which orjson refuses.
INTEGERS = st.integers() | st.integers(min_value=2**63 - 10, max_value=2**66)
# Any character but a lone surrogate (no output can hold one: see the test below); ids, codes,
# moments and free text as podlink writes them, including escapes and control characters.
TEXT = st.text(st.characters(exclude_categories=("Cs",))) | st.sampled_from(
    ["e-7,", "1e-7", "0.0000", "null", "ab9e-7c", "2026-03-30T01:00:00.000012Z", "\u2028\x7f\x00\"\\"])
SCALARS = st.none() | st.booleans() | INTEGERS | FLOATS | TEXT
VALUES = st.recursive(
    SCALARS,
    lambda inner: st.lists(inner, max_size=5) | st.lists(inner, max_size=5).map(tuple)
    | st.dictionaries(TEXT, inner, max_size=5),
    max_leaves=30,
)


@settings(max_examples=3000, deadline=None)
@given(VALUES)
def test_records_are_spelled_as_the_standard_library_spells_them(value):
    assert json_bytes(value) == stdlib(value)


@pytest.mark.parametrize("value", [
    1e-05, -1e-05, 9.999999999999999e-05, 1e-7, [1, 1e-7], {"a": 1e-9}, 1e16, -0.0, 5e-324,
    float("nan"), {"a": float("inf")}, [float("-inf")], 2**64, -(2**64), {1: "a", None: 2, 1.5: 3, True: 4},
    [[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[1e-7]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]],
])
def test_values_orjson_spells_otherwise_keep_the_standard_spelling(value):
    # Each of these differs between the two libraries (or orjson refuses it).
    assert json_bytes(value) == stdlib(value)


def test_subclasses_of_json_types_keep_the_standard_spelling():
    class Code(str):
        def __str__(self) -> str:
            return "not this"

    class Count(int):
        """An int subclass with nothing of its own, as an IntEnum's members are ints."""

    value = {Code("k"): [Code("v"), Count(3)], "d": type("D", (dict,), {})(a=1)}
    assert json_bytes(value) == stdlib(value) == b'{"k":["v",3],"d":{"a":1}}'


def test_nesting_deeper_than_orjson_allows_is_still_written():
    value: list = []
    for _ in range(300):
        value = [value]
    assert json_bytes(value) == stdlib(value)


def test_what_json_cannot_write_is_still_refused_as_before():
    # The record reader relies on this error for strings with a lone surrogate (bounded_json.py).
    with pytest.raises(UnicodeEncodeError):
        json_bytes({"a": "\ud800"})
    with pytest.raises(TypeError):
        json_bytes({"at": datetime(2026, 1, 1, tzinfo=timezone.utc)})
    with pytest.raises(TypeError):
        json_bytes([Point(1, 2)])


@dataclass
class Point:
    x: int
    y: int


# --- utc_text: cached, but only where equal moments are the same instant -------------------


def test_equal_instants_in_other_offsets_are_written_alike():
    utc = datetime(2026, 3, 30, 1, 0, tzinfo=timezone.utc)
    assert utc_text(utc) == "2026-03-30T01:00:00Z"
    assert utc_text(utc.astimezone(timezone(timedelta(hours=-5)))) == "2026-03-30T01:00:00Z"


def test_the_two_moments_of_a_repeated_hour_are_an_hour_apart():
    # 01:30 happens twice in London on 25 October 2026: at 00:30 UTC (BST), then 01:30 UTC.
    # The two compare equal and hash alike, so a cache must not answer one with the other.
    first = datetime(2026, 10, 25, 1, 30, tzinfo=ZoneInfo("Europe/London"))
    assert utc_text(first) == "2026-10-25T00:30:00Z"
    assert utc_text(first.replace(fold=1)) == "2026-10-25T01:30:00Z"


def test_a_naive_moment_is_read_in_the_host_time_zone_of_the_moment(monkeypatch):
    naive = datetime(2026, 1, 15, 12, 0)
    monkeypatch.setenv("TZ", "UTC")
    time.tzset()
    try:
        assert utc_text(naive) == "2026-01-15T12:00:00Z"
        monkeypatch.setenv("TZ", "America/New_York")
        time.tzset()
        assert utc_text(naive) == "2026-01-15T17:00:00Z"
    finally:
        monkeypatch.undo()
        time.tzset()
