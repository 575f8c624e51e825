import json

import pytest

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
    (b"\xc3\x28", "value is not"),
])
def test_unreadable_values_are_rejected(value, reason):
    result = read_record(b"REF-1", value)
    assert isinstance(result, Rejection) and result.reason.startswith(reason)


def test_a_record_keyed_by_something_other_than_the_referral_is_rejected():
    raw = load(valid_files()[0])
    result = read_record(b"another-key", json.dumps(raw).encode())
    assert isinstance(result, Rejection) and "key" in result.reason


def test_an_impossible_date_that_matches_the_pattern_is_rejected_without_echoing_it():
    raw = load(CONTRACTS / "examples" / "admission-ended.json")
    raw["data"]["endedAt"] = "2026-13-45T23:40:00Z"
    result = _read(raw)
    assert isinstance(result, Rejection) and "2026-13-45" not in result.reason


@pytest.mark.parametrize("number, valid", [
    ("9995260182", True), ("9995260183", False), ("943476591", False), ("943476591a", False),
    ("9434765919", True), ("4010232137", True),
])
def test_nhs_number_check_digit(number, valid):
    assert nhs_number_is_valid(number) is valid
