import json
from datetime import datetime, timezone

import pytest

from podlink.services.dead_letters import (
    DeadLetter,
    as_json,
    dead_letter,
    format_line,
    listing,
    redrive_line,
    undelivered,
)
from podlink.services.kafka_options import aware_time

VALUE = b'{"data":{"patient":{"nhsNumber":"9990000026","name":"Sample Person"}}}'
HEADERS = [("podlink-error", b"contract: data.patient.nhsNumber fails the modulus 11 check"),
           ("podlink-source-topic", b"spa.referral-events.v1"),
           ("podlink-source-partition", b"2"), ("podlink-source-offset", b"17")]
MS = 1_777_626_000_123  # 2026-05-01T09:00:00.123Z


def test_a_line_says_when_where_why_and_how_big_but_not_the_value():
    line = format_line(dead_letter(MS, 0, 5, HEADERS, b"REF-1", VALUE))
    assert line == (f"2026-05-01T09:00:00.123Z  spa.referral-events.v1/2@17  key=REF-1  "
                    f"value={len(VALUE)} bytes  reason=contract: data.patient.nhsNumber fails the modulus 11 check")
    assert "9990000026" not in line and "Sample" not in line


def test_the_value_is_shown_only_when_asked():
    letter = dead_letter(MS, 0, 5, HEADERS, b"REF-1", VALUE)
    assert format_line(letter, show_value=True).endswith("value: " + VALUE.decode())
    assert "value" not in as_json(letter) and as_json(letter, show_value=True)["value"] == VALUE.decode()
    unkept = dead_letter(MS, 0, 5, HEADERS, b"REF-1", VALUE, keep_value=False)
    assert unkept.value is None and unkept.value_bytes == len(VALUE)


def test_json_output_carries_the_same_facts_and_the_dead_letters_own_position():
    record = as_json(dead_letter(MS, 1, 5, HEADERS, None, None))
    assert json.loads(json.dumps(record)) == {
        "timestamp": "2026-05-01T09:00:00.123Z", "source_topic": "spa.referral-events.v1",
        "source_partition": 2, "source_offset": 17,
        "reason": "contract: data.patient.nhsNumber fails the modulus 11 check",
        "key": None, "value_bytes": None, "dead_letter_partition": 1, "dead_letter_offset": 5,
    }


def test_missing_headers_and_odd_bytes_still_give_a_line():
    line = format_line(dead_letter(MS, 0, 0, [], b"\xff", b"\x00\x01"))
    assert line == "2026-05-01T09:00:00.123Z  ?/?@?  key=\\xff  value=2 bytes  reason=?"


def _from(source_offset: int, delay_ms: int, partition: int, offset: int) -> DeadLetter:
    headers = [*HEADERS[:3], ("podlink-source-offset", str(source_offset).encode())]
    return dead_letter(MS + delay_ms, partition, offset, headers, b"k", b"v")


def test_dead_letters_are_listed_oldest_first_up_to_the_limit():
    letters = [_from(o, d, p, o) for d, p, o in ((30, 0, 1), (10, 1, 0), (20, 0, 2))]
    shown, total, repeats = listing(letters, None)
    assert [(d.partition, d.offset) for d in shown] == [(1, 0), (0, 2), (0, 1)]
    assert (total, repeats) == (3, 0)
    assert [(d.partition, d.offset) for d in listing(letters, 2)[0]] == [(1, 0), (0, 2)]
    assert [(d.partition, d.offset) for d in listing(letters, 1)[0]] == [(1, 0)]


@pytest.mark.parametrize("limit", [0, -1])
def test_a_limit_below_one_is_refused_rather_than_dropping_records(limit):
    with pytest.raises(ValueError, match="1 or more"):
        listing([_from(1, 0, 0, 0)], limit)


def test_repeats_of_one_source_record_are_listed_once_the_first_kept():
    # Source offsets 7, 7, 8, 7: written by replays of an older podlink; the first of each stays.
    letters = [_from(7, 0, 0, 0), _from(7, 10, 1, 0), _from(8, 20, 0, 1), _from(7, 30, 0, 2)]
    shown, total, repeats = listing(letters, None)
    assert [(d.source_offset, d.partition, d.offset) for d in shown] == [(7, 0, 0), (8, 0, 1)]
    assert (total, repeats) == (2, 2)
    assert listing(letters, 1) == ([letters[0]], 2, 2)


def test_dead_letters_without_a_known_source_are_never_merged():
    nameless = [dead_letter(MS + d, 0, d, [], b"k", b"v") for d in (0, 1)]
    assert listing(nameless, None) == (nameless, 2, 0)


def test_times_must_say_their_zone():
    assert aware_time("2026-05-01T09:00Z") == datetime(2026, 5, 1, 9, tzinfo=timezone.utc)
    assert aware_time("2026-05-01T10:00+01:00") == datetime(2026, 5, 1, 9, tzinfo=timezone.utc)
    with pytest.raises(ValueError, match="no time zone"):
        aware_time("2026-05-01T09:00")
    with pytest.raises(ValueError, match="not an ISO 8601 time"):
        aware_time("yesterday")


def _undelivered_letter(offset: int, ms: int, key: bytes, request_id: str | None, source: str = "epr.fhir-messages.v1"):
    headers = [("podlink-error", b"EPR refused the message: HTTP 400"), ("podlink-source-topic", source.encode()),
               ("podlink-source-partition", b"0"), ("podlink-source-offset", str(offset).encode()),
               ("podlink-epr-status", b"400")]
    if request_id:
        headers.append(("podlink-request-id", request_id.encode()))
    letter = dead_letter(ms, 0, offset, headers, key, b"{}")
    return letter, {(0, offset): {name: value.decode() for name, value in headers}}


def test_redrive_takes_delivers_dead_letters_oldest_first_each_message_once():
    rows = [
        _undelivered_letter(3, MS + 3000, b"REF-B", "bundle-b1"),
        _undelivered_letter(1, MS + 1000, b"REF-A", "bundle-a1"),
        _undelivered_letter(2, MS + 2000, b"REF-A", "bundle-a1"),  # dead-lettered again after a restart
        _undelivered_letter(4, MS + 4000, b"REF-A", None, "spa.referral-events.v1"),  # the worker's own
        _undelivered_letter(5, MS + 5000, b"REF-A", "bundle-a2"),
    ]
    letters = [letter for letter, _ in rows]
    headers = {k: v for _, h in rows for k, v in h.items()}
    found = undelivered(letters, headers, None)
    assert [(u.request_id, u.letter.offset) for u in found] == [("bundle-a1", 1), ("bundle-b1", 3), ("bundle-a2", 5)]
    assert [u.request_id for u in undelivered(letters, headers, "REF-A")] == ["bundle-a1", "bundle-a2"]
    assert redrive_line(found[0]) == (
        "2026-05-01T09:00:01.123Z  referral=REF-A  X-Request-Id=bundle-a1  was=400  "
        "reason=EPR refused the message: HTTP 400")
