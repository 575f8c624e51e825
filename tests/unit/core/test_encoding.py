from datetime import datetime, timedelta, timezone

from podlink.streams.core.encoding import json_bytes, utc_text


def test_records_are_compact_utf8_json_in_insertion_order():
    assert json_bytes({"b": [1, "é"], "a": None}) == b'{"b":[1,"\xc3\xa9"],"a":null}'


def test_moments_are_written_in_utc_with_z_whatever_the_host_time_zone(host_in_new_york):
    bst = datetime(2026, 10, 24, 12, 0, tzinfo=timezone(timedelta(hours=1)))
    assert utc_text(bst) == "2026-10-24T11:00:00Z"
