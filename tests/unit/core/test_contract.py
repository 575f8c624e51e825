import json
import random

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from podlink.streams.core.bounded_json import MAX_DEPTH, MAX_NUMBER_CHARS, MAX_RECORD_BYTES, load_bounded
from podlink.streams.core.contract import (
    Accepted,
    Rejection,
    load_schema,
    nhs_number_is_valid,
    read_record,
)
from tests.support.contract_examples import CONTRACTS, invalid_files, load, valid_files


def _read(raw: dict) -> Accepted | Rejection:
    return read_record(raw["subject"].encode(), json.dumps(raw).encode())


def test_the_schema_podlink_ships_is_the_contract_as_published():
    assert load_schema() == json.loads((CONTRACTS / "pod-events.v1.schema.json").read_text())


def test_the_examples_exist():
    assert len(valid_files()) == 16 and len(invalid_files()) == 9


@pytest.mark.parametrize("path", valid_files(), ids=lambda p: p.stem)
def test_every_valid_example_is_accepted(path):
    raw = load(path)
    result = _read(raw)
    assert isinstance(result, Accepted), getattr(result, "reason", "")
    assert result.event.type == raw["type"] and result.event.referral_id == raw["subject"]


@pytest.mark.parametrize("path", invalid_files(), ids=lambda p: p.stem)
def test_every_invalid_example_is_rejected_with_a_reason_free_of_patient_data(path):
    raw = load(path)
    result = _read(raw)
    assert isinstance(result, Rejection)
    assert result.reason.startswith("contract: ")
    patient = raw["data"].get("patient", {})
    for secret in [patient.get("nhsNumber"), "Jordan", "Example", "07700 900123", "whenever",
                   "Mental health crisis", "2026-03-28T23:40:00"]:
        if secret:
            assert secret not in result.reason


@pytest.mark.parametrize("path, expected", [
    ("nhs-number-check-digit", "data.patient.nhsNumber fails the modulus 11 check"),
    ("subject-mismatch", "data.referralId differs from subject"),
    ("bad-urgency", "data.urgency"),
    ("missing-patient", "required property patient is missing"),
    ("extra-field", "property not in the contract (diagnosis)"),
    ("network-member-without-relationship", "data.attendees.1: required property relationship"),
])
def test_the_reason_says_which_field_and_rule(path, expected):
    result = _read(load(CONTRACTS / "examples" / "invalid" / f"{path}.json"))
    assert expected in result.reason


@pytest.mark.parametrize("value, reason", [
    (None, "record has no value"),
    (b"{ not json", "value is not JSON"),
    (b"[1, 2]", "value is not a JSON object"),
    (b"\xc3\x28", "value is not UTF-8"),
    (b'{"a": NaN}', "value has NaN or Infinity, which are not JSON"),
    (b'{"a": 1e400}', "value has a number too large for a double"),
    (b'{"a": "\\ud800"}', "value has a string escape that is not a Unicode character"),
    (b'{"a": "x\\uDC00"}', "value has a string escape that is not a Unicode character"),
])
def test_unreadable_values_are_rejected(value, reason):
    result = read_record(b"REF-1", value)
    assert isinstance(result, Rejection) and result.reason.startswith(reason)


def test_a_surrogate_pair_and_an_escaped_backslash_are_read():
    # A pair is one character (U+1F600); an escaped backslash then "ud800" is plain text.
    assert load_bounded(b'{"a": "\\ud83d\\ude00", "b": "\\\\ud800"}') == {"a": "\U0001F600", "b": "\\ud800"}


@pytest.mark.parametrize("key", [b"another-key", b"\xff", None])
def test_a_record_keyed_by_something_other_than_the_referral_is_rejected(key):
    raw = load(valid_files()[0])
    result = read_record(key, json.dumps(raw).encode())
    assert result == Rejection("record key is not the event subject (the referral id)")


def test_an_event_missing_an_envelope_attribute_names_it():
    raw = load(CONTRACTS / "examples" / "admission-ended.json")
    del raw["id"]
    assert _read(raw) == Rejection("contract: (event): required property id is missing")


@pytest.mark.parametrize("extra, named", [
    ({"Jordan Example": 1}, "unnamed"),  # not a name: the producer's text is not echoed
    ({"diagnosis": 1, "notes": 2}, "diagnosis, notes"),
])
def test_properties_outside_the_contract_are_named_only_when_they_look_like_names(extra, named):
    raw = load(CONTRACTS / "examples" / "admission-ended.json")
    raw["data"] |= extra
    assert _read(raw) == Rejection(f"contract: data: property not in the contract ({named})")


def test_an_impossible_date_that_matches_the_pattern_is_rejected_without_echoing_it():
    raw = load(CONTRACTS / "examples" / "admission-ended.json")
    raw["data"]["endedAt"] = "2026-13-45T23:40:00Z"
    assert _read(raw) == Rejection("contract: data.endedAt: datetime_from_date_parsing")


@pytest.mark.parametrize("number, valid", [
    ("9995260182", True), ("9995260183", False), ("943476591", False), ("943476591a", False),
    ("9434765919", True), ("4010232137", True),
])
def test_nhs_number_check_digit(number, valid):
    assert nhs_number_is_valid(number) is valid


def test_a_check_value_of_eleven_is_check_digit_zero():
    # 9990000050: 9x10 + 9x9 + 9x8 + 0x7 + 0x6 + 0x5 + 0x4 + 0x3 + 5x2 = 253 = 11 x 23,
    # remainder 0, check value 11 - 0 = 11, which the Data Dictionary writes as 0.
    assert nhs_number_is_valid("9990000050") is True
    assert not any(nhs_number_is_valid(f"999000005{d}") for d in "123456789")


def test_a_check_value_of_ten_makes_the_number_invalid_whatever_its_last_digit():
    # 999000000: 90 + 81 + 72 = 243 = 11 x 22 + 1, remainder 1, check value 11 - 1 = 10.
    assert not any(nhs_number_is_valid(f"999000000{d}") for d in "0123456789")


def test_a_referral_whose_nhs_number_ends_in_zero_is_accepted():
    raw = load(CONTRACTS / "examples" / "referral-received.json")
    raw["data"]["patient"]["nhsNumber"] = "9990000050"
    assert isinstance(_read(raw), Accepted)


# --- poison records: bounded reading, and no input that makes the reader raise ------------


def _with_number(literal: str) -> bytes:
    """The meeting-held example as bytes, its adherence score spelt `literal`."""
    raw = load(CONTRACTS / "examples" / "meeting-held.json")
    raw["data"]["adherenceScore"] = 0.125  # a placeholder no other field spells
    return json.dumps(raw).encode().replace(b"0.125", literal.encode())


def _valid_bytes() -> bytes:
    return json.dumps(load(CONTRACTS / "examples" / "meeting-held.json")).encode()


def test_the_bounds_are_what_the_reasons_say():
    # Worked out by hand: 1 MiB = 2**20 bytes.
    assert (MAX_RECORD_BYTES, MAX_DEPTH, MAX_NUMBER_CHARS) == (1_048_576, 32, 32)


def test_a_hundred_thousand_nested_arrays_are_rejected_not_raised():
    result = read_record(b"REF-1", b"[" * 100_000 + b"]" * 100_000)
    assert result == Rejection("value nests deeper than 32 levels")


def test_a_deep_object_is_rejected_at_one_level_past_the_bound():
    def nested(levels: int) -> bytes:
        return b'{"a":' * levels + b"1" + b"}" * levels
    assert read_record(b"REF-1", nested(33)) == Rejection("value nests deeper than 32 levels")
    # 32 levels are read, then fail as an event, not on depth.
    assert read_record(b"REF-1", nested(32)).reason.startswith("contract: ")


def test_closing_brackets_end_their_level():
    # 31 levels, then an empty array beside a 2-level one: 33 deep at the most.
    too_deep = b"[" * 31 + b"[],[[]]" + b"]" * 31
    assert read_record(b"REF-1", too_deep) == Rejection("value nests deeper than 32 levels")
    at_bound = b"[" * 31 + b"[],[]" + b"]" * 31
    assert read_record(b"REF-1", at_bound) == Rejection("value is not a JSON object")


def test_brackets_inside_strings_do_not_count_as_nesting():
    raw = load(CONTRACTS / "examples" / "referral-rejected.json")
    raw["data"]["reason"] = '[{"\\' * 40
    assert isinstance(_read(raw), Accepted)


def test_a_five_thousand_digit_number_in_a_valid_event_is_rejected_not_raised():
    assert isinstance(read_record(b"REF-2026-000123", _with_number("3.5")), Accepted)
    result = read_record(b"REF-2026-000123", _with_number("3" * 5_000))
    assert result == Rejection("value has a number longer than 32 characters")


def test_a_number_of_exactly_the_bound_is_read():
    literal = "3." + "5" * 30
    assert len(literal) == 32
    assert isinstance(read_record(b"REF-2026-000123", _with_number(literal)), Accepted)
    assert read_record(b"REF-2026-000123", _with_number(literal + "5")) == Rejection(
        "value has a number longer than 32 characters")


def test_a_value_over_one_mebibyte_is_rejected_unread():
    valid = _valid_bytes()
    at_bound = valid + b" " * (1_048_576 - len(valid))
    assert isinstance(read_record(b"REF-2026-000123", at_bound), Accepted)
    assert read_record(b"REF-2026-000123", at_bound + b" ") == Rejection(
        "value is larger than 1048576 bytes")
    assert read_record(b"REF-2026-000123", valid + b" " * (2 << 20)) == Rejection(
        "value is larger than 1048576 bytes")


def test_invalid_utf8_inside_an_otherwise_valid_event_is_rejected():
    value = _valid_bytes().replace(b"MTG-1", b"MTG-\xff")
    assert read_record(b"REF-2026-000123", value) == Rejection("value is not UTF-8")


def test_an_unexpected_failure_while_reading_is_a_rejection_naming_only_its_kind(monkeypatch):
    import podlink.streams.core.contract as contract

    def explode(raw):
        raise KeyError("9434765919")
    monkeypatch.setattr(contract, "contract_problem", explode)
    assert read_record(b"REF-1", b"{}") == Rejection("value could not be read (KeyError)")


# Values a hostile or broken producer might send, each marked so a leak is easy to find.
SECRETS = ["9434765919", "Jordan Example", "07700 900123", "CT1 1AA", "Mental health crisis"]
_secret = st.sampled_from(SECRETS) | st.text(min_size=1, max_size=8).map(lambda t: "S3cr3t" + t)
_leaf = (st.none() | st.booleans() | st.integers() | st.floats() | _secret
         | st.sampled_from(["2026-13-45T23:40:00Z", "2026-03-28T23:40:00Z", "REF-2026-000123"]))
_json = st.recursive(_leaf, lambda inner: st.lists(inner, max_size=3)
                     | st.dictionaries(st.sampled_from(["data", "id", "type", "x"]), inner, max_size=3),
                     max_leaves=8)


def _paths(value, prefix=()):
    yield prefix
    if isinstance(value, dict):
        for k, v in value.items():
            yield from _paths(v, prefix + (k,))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from _paths(v, prefix + (i,))


def _mutated(raw, path, replacement, delete):
    if not path:
        return replacement
    parent = raw
    for part in path[:-1]:
        parent = parent[part]
    if delete and isinstance(parent, dict):
        del parent[path[-1]]
    else:
        parent[path[-1]] = replacement
    return raw


@st.composite
def _hostile_records(draw):
    raw = load(draw(st.sampled_from(valid_files())))
    path = draw(st.sampled_from(list(_paths(raw))))
    value = json.dumps(_mutated(raw, path, draw(_json), draw(st.booleans()))).encode()
    if draw(st.booleans()):  # and then break the bytes: insert, cut or overwrite at random
        rng = random.Random(draw(st.integers(0, 2**32)))
        at = rng.randrange(len(value) + 1)
        junk = bytes(rng.randrange(256) for _ in range(rng.randrange(1, 6)))
        value = rng.choice([value[:at] + junk + value[at:], value[:at], value[:at] + junk + value[at + 5:]])
    key = draw(st.sampled_from([b"REF-2026-000123", None, b"\xff", b"9434765919"]))
    return key, value


def _assert_read_safely(key, value):
    result = read_record(key, value)
    assert isinstance(result, (Accepted, Rejection))
    if isinstance(result, Rejection):
        text = value.decode("utf-8", "replace")
        assert not [s for s in SECRETS if s in text and s in result.reason], result.reason
        assert "S3cr3t" not in result.reason
        for patient_value in ["Jordan", "Example", "2026-13-45"]:
            assert patient_value not in result.reason


@settings(max_examples=400, deadline=None, database=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow])
@given(_hostile_records())
def test_a_mutated_contract_example_is_read_or_rejected_never_raised(record):
    _assert_read_safely(*record)


@settings(max_examples=300, deadline=None, database=None, derandomize=True)
@given(st.binary(max_size=200) | st.text(alphabet='[]{}",:0123456789.eE-\\ntrufalse', max_size=200).map(str.encode))
def test_any_bytes_are_read_or_rejected_never_raised(value):
    _assert_read_safely(b"REF-1", value)


def test_event_moments_keep_their_offset_and_instant_under_datetimes_own_time_zones():
    from datetime import datetime, timedelta, timezone

    from podlink.streams.core.encoding import utc_text
    from podlink.streams.core.episode import Episode
    from tests.support.contract_examples import example

    value = example("contact-made")
    value["data"]["contactAt"] = "2026-06-01T10:30:00+01:00"
    value["time"] = "2026-06-01T09:31:00Z"
    read = read_record(value["subject"].encode(), json.dumps(value).encode())
    assert isinstance(read, Accepted), read
    contact = read.event.data.contactAt
    assert (contact.tzinfo, read.event.time.tzinfo) == (timezone(timedelta(hours=1)), timezone.utc)
    assert contact == datetime(2026, 6, 1, 9, 30, tzinfo=timezone.utc)
    assert utc_text(contact) == "2026-06-01T09:30:00Z"
    stored = Episode(referral_id=value["subject"], first_contact=read.event.data).model_dump_json()
    assert '"contactAt":"2026-06-01T10:30:00+01:00"' in stored
