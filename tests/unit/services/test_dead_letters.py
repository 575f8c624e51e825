import json
from datetime import datetime, timezone

import pytest

from podlink.services.dead_letters import (
    as_json,
    dead_letter,
    format_line,
    oldest_first,
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


def test_dead_letters_are_listed_oldest_first_up_to_the_limit():
    letters = [dead_letter(MS + d, p, o, HEADERS, b"k", b"v") for d, p, o in ((30, 0, 1), (10, 1, 0), (20, 0, 0))]
    assert [(d.partition, d.offset) for d in oldest_first(letters, None)] == [(1, 0), (0, 0), (0, 1)]
    assert len(oldest_first(letters, 2)) == 2


def test_times_must_say_their_zone():
    assert aware_time("2026-05-01T09:00Z") == datetime(2026, 5, 1, 9, tzinfo=timezone.utc)
    assert aware_time("2026-05-01T10:00+01:00") == datetime(2026, 5, 1, 9, tzinfo=timezone.utc)
    with pytest.raises(ValueError, match="no time zone"):
        aware_time("2026-05-01T09:00")
    with pytest.raises(ValueError, match="not an ISO 8601 time"):
        aware_time("yesterday")
