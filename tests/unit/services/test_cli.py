"""What the command line refuses, and how it names what to fix."""
from __future__ import annotations

import argparse

import pytest
from pydantic import ValidationError

from podlink.services.cli import main, positive_int
from podlink.streams.worker.settings import Settings, describe_invalid


def _invalid(**values: object) -> str:
    with pytest.raises(ValidationError) as caught:
        Settings(**values)
    return describe_invalid(caught.value)


def test_a_setting_error_names_the_environment_variable_to_fix():
    message = _invalid(partitions=0)
    assert message == "PODLINK_PARTITIONS: Input should be greater than or equal to 1 (got 0)"


def test_a_bad_setting_from_the_environment_stops_the_cli_naming_the_variable(monkeypatch, capsys):
    monkeypatch.setenv("PODLINK_PARTITIONS", "many")
    assert main(["dead-letters"]) == 2
    assert capsys.readouterr().err.startswith("podlink: invalid setting: PODLINK_PARTITIONS: ")


@pytest.mark.parametrize("text", ["0", "-1"])
def test_limits_below_one_are_refused(text):
    with pytest.raises(argparse.ArgumentTypeError, match=f"must be 1 or more, not {text}"):
        positive_int(text)


def test_a_limit_must_be_a_whole_number():
    assert positive_int("1") == 1
    with pytest.raises(argparse.ArgumentTypeError, match="not a whole number"):
        positive_int("two")


@pytest.mark.parametrize("command", [["dead-letters", "--limit", "-1"], ["tail", "pod.outcomes.v1", "--limit", "0"]])
def test_the_commands_refuse_a_limit_below_one(command, capsys):
    with pytest.raises(SystemExit) as exited:
        main(command)
    assert exited.value.code == 2
    assert "argument --limit: must be 1 or more" in capsys.readouterr().err
