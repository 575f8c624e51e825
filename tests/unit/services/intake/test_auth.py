import hashlib

import pytest
from pydantic import ValidationError

from podlink.services.intake.auth import bearer_name, token_hash
from podlink.services.intake.settings import IntakeSettings

MAIN = hashlib.sha256(b"main-secret").hexdigest()
LAB = hashlib.sha256(b"lab-secret").hexdigest()
TOKENS = {"epr-main": MAIN, "epr-lab": LAB}


def test_token_hash_is_hex_sha256():
    # sha256("abc"), from FIPS 180-2's test vectors
    assert token_hash("abc") == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"


def test_the_token_names_its_epr():
    assert bearer_name("Bearer main-secret", TOKENS) == "epr-main"
    assert bearer_name("bearer lab-secret", TOKENS) == "epr-lab"


@pytest.mark.parametrize("header", [None, "", "Bearer", "Bearer ", "Basic main-secret", "Bearer main-secreT",
                                    f"Bearer {MAIN}", "main-secret"])
def test_anything_else_is_no_one(header):
    assert bearer_name(header, TOKENS) is None


def test_tokens_setting_parses_names_and_hashes(monkeypatch):
    monkeypatch.setenv("PODLINK_INTAKE_TOKENS", f" epr-main={MAIN.upper()} , epr-lab={LAB}")
    assert IntakeSettings().intake_tokens == {"epr-main": MAIN, "epr-lab": LAB}


@pytest.mark.parametrize("value", ["epr-main", f"epr-main:{MAIN}", "epr-main=abc", f"bad name={MAIN}"])
def test_malformed_tokens_setting_is_refused_without_echoing_it(monkeypatch, value):
    monkeypatch.setenv("PODLINK_INTAKE_TOKENS", value)
    with pytest.raises(ValidationError) as error:
        IntakeSettings()
    assert "name=<64 hex digits" in str(error.value)


def test_defaults():
    settings = IntakeSettings()
    assert (settings.intake_port, settings.intake_max_bytes) == (6068, 1024 * 1024)
