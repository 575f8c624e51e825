import pytest
from pydantic import ValidationError

from podlink.streams.worker.settings import Settings


def test_defaults(monkeypatch):
    for name in list(__import__("os").environ):
        if name.startswith("PODLINK_"):
            monkeypatch.delenv(name)
    s = Settings()
    assert s.deadline_scan_seconds == 5 and s.teams is None and s.policy().deadline_hours == 24


def test_teams_are_a_comma_separated_list(monkeypatch):
    monkeypatch.setenv("PODLINK_TEAMS", "POD-A, POD-B,,")
    assert Settings().policy().teams == frozenset({"POD-A", "POD-B"})


def test_a_policy_file_overrides_the_deadline_rules(tmp_path, monkeypatch):
    policy = tmp_path / "policy.yaml"
    policy.write_text("deadline_hours: 4\nat_risk_hours: 1\ndeadline_starts_at: first-contact\n")
    monkeypatch.setenv("PODLINK_POLICY_FILE", str(policy))
    p = Settings().policy()
    assert (p.deadline_hours, p.at_risk_hours, p.deadline_starts_at) == (4, 1, "first-contact")


def test_a_bad_setting_is_refused_clearly(monkeypatch):
    monkeypatch.setenv("PODLINK_DEADLINE_SCAN_SECONDS", "0")
    with pytest.raises(ValidationError, match="deadline_scan_seconds"):
        Settings()
