import pytest
from pydantic import ValidationError

from podlink.streams.worker.settings import Settings, describe_invalid


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


def test_the_fhir_base_url_is_the_trusts_namespace_without_a_trailing_slash(monkeypatch):
    monkeypatch.delenv("PODLINK_FHIR_BASE_URL", raising=False)
    assert Settings().fhir_base_url == "https://podlink.example.org/fhir"
    monkeypatch.setenv("PODLINK_FHIR_BASE_URL", "https://fhir.trust.example/podlink/")
    assert Settings().fhir_base_url == "https://fhir.trust.example/podlink"


@pytest.mark.parametrize("value", ["fhir.trust.example/podlink", "https://fhir.trust.example/podlink#x"])
def test_a_fhir_base_url_that_is_not_one_is_refused_naming_the_setting(monkeypatch, value):
    monkeypatch.setenv("PODLINK_FHIR_BASE_URL", value)
    with pytest.raises(ValidationError) as caught:
        Settings()
    assert describe_invalid(caught.value).startswith("PODLINK_FHIR_BASE_URL: the FHIR base URL must")
