import pytest
from pydantic import ValidationError

from podlink.streams.worker.settings import Settings


def test_defaults(monkeypatch):
    for name in list(__import__("os").environ):
        if name.startswith("PODLINK_"):
            monkeypatch.delenv(name)
    s = Settings()
    assert s.deadline_scan_seconds == 5 and s.teams is None and s.policy_file is None


def test_teams_are_a_comma_separated_list(monkeypatch):
    monkeypatch.setenv("PODLINK_TEAMS", "POD-A, POD-B,,")
    assert Settings().teams == frozenset({"POD-A", "POD-B"})


def test_a_bad_setting_is_refused_clearly(monkeypatch):
    monkeypatch.setenv("PODLINK_DEADLINE_SCAN_SECONDS", "0")
    with pytest.raises(ValidationError, match="deadline_scan_seconds"):
        Settings()
