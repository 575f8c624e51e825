"""A command's settings, when one is invalid: the operator is told which, never its value."""
from __future__ import annotations

import io

import pytest

from podlink.services.intake.settings import IntakeSettings
from podlink.services.settings_errors import load_or_report

# A token hash one digit short: nearly a secret.
NEARLY_A_HASH = "ab" * 31 + "c"


def test_an_invalid_setting_is_named_with_the_command_and_its_value_left_out(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PODLINK_INTAKE_TOKENS", f"epr-a={NEARLY_A_HASH}")
    err = io.StringIO()

    assert load_or_report(IntakeSettings, "intake", err) is None

    told = err.getvalue()
    assert told.startswith("podlink intake: invalid setting: PODLINK_INTAKE_TOKENS: each entry must be")
    assert NEARLY_A_HASH not in told


def test_valid_settings_are_returned_and_nothing_is_said(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PODLINK_INTAKE_TOKENS", "epr-a=" + "ab" * 32)
    monkeypatch.setenv("PODLINK_INTAKE_PORT", "7001")
    err = io.StringIO()

    loaded = load_or_report(IntakeSettings, "intake", err)

    assert loaded is not None
    assert (loaded.intake_port, loaded.intake_tokens) == (7001, {"epr-a": "ab" * 32})
    assert err.getvalue() == ""
