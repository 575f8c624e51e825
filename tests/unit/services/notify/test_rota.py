"""The rota is read strictly: each mistake is one line naming the file, the line and the problem."""
from __future__ import annotations

import subprocess
import sys
from datetime import time, timedelta
from pathlib import Path

import pytest

from podlink.services.notify.rota import RotaError, load_rota
from tests.unit.services.notify.support import ROTA, SECRETS, write_rota

REPO = Path(__file__).resolve().parents[4]
EXAMPLE_SECRETS = {name: "x" for name in (
    "PODLINK_WEBHOOK_SECRET_DUTY", "PODLINK_PAGERDUTY_KEY_MANAGER", "PODLINK_PAGERDUTY_KEY_CONSULTANT",
    "PODLINK_SMTP_PASSWORD", "PODLINK_GOVUK_NOTIFY_API_KEY")}


def test_the_example_rota_reads_as_written() -> None:
    rota = load_rota(REPO / "docs" / "rota.example.yaml", EXAMPLE_SECRETS)
    on_call = rota.tiers["on-call"]
    assert [t.contacts for t in on_call] == [("duty-worker",), ("team-manager",), ("consultant",)]
    assert on_call[0].escalate_after == timedelta(minutes=15)
    assert on_call[1].escalate_after == timedelta(minutes=30)
    assert on_call[2].escalate_after is None
    assert [(t.days, t.hours) for t in on_call[2].when] == [
        ("nights", None), ("weekends", None), ("bank holidays", None)]
    assert on_call[1].when[0].hours.start == time(9) and on_call[1].when[0].hours.end == time(17)
    assert rota.repeat_every == timedelta(hours=1)
    assert rota.contacts["duty-worker"].channels() == ("webhook", "email", "sms")
    assert rota.contacts["team-manager"].channels() == ("pagerduty", "notify_email")
    assert rota.public_url == "https://podlink.example.nhs.uk"
    assert rota.smtp is not None and rota.smtp.port == 587


def _problem(tmp_path: Path, text: str, environ: dict[str, str] = SECRETS) -> str:
    path = tmp_path / "rota.yaml"
    path.write_text(text)
    with pytest.raises(RotaError) as caught:
        load_rota(path, environ)
    return str(caught.value).replace(str(path), "rota.yaml")


def _edit(old: str, new: str) -> str:
    assert old in ROTA
    return ROTA.replace(old, new).format(hook="http://127.0.0.1:9", duty="a" * 64, manager="b" * 64,
                                         consultant="c" * 64)


@pytest.mark.parametrize(("old", "new", "expected"), [
    ("repeat_every: 60m", "repeat_every: 60m\nescalation: fast",
     "rota.yaml:20: rota: unknown key 'escalation' (expected one of: bank_holidays, contacts, nights, "
     "notify, public_url, repeat_every, smtp, tiers, timezone)"),
    ("escalate_after: 15m", "escalate_after: 15 minutes",
     "rota.yaml:14: tiers.on-call[0].escalate_after: '15 minutes' is not a duration such as 15m, 1h or 90s"),
    ("repeat_every: 60m", "repeat_every: 0m",
     "rota.yaml:19: repeat_every: '0m' is not a duration such as 15m, 1h or 90s"),
    ("contacts: [consultant]", "contacts: [registrar]",
     "rota.yaml:16: tiers.on-call[2].contacts: 'registrar' is not in contacts"),
    ('when: "weekdays 09:00-17:00"', 'when: "weekdays 9-5"',
     "rota.yaml:15: tiers.on-call[1].when: '9-5' is not a time range such as 09:00-17:00"),
    ('when: "nights, weekends, bank holidays"', 'when: "nights, holidays"',
     "rota.yaml:16: tiers.on-call[2].when: 'holidays' is not one of always, weekdays, weekends, nights, "
     "bank holidays or a time range such as 09:00-17:00 (optionally after a set of days)"),
    ('when: "weekdays 09:00-17:00"', 'when: "weekdays 09:00-25:00"',
     "rota.yaml:15: tiers.on-call[1].when: '09:00-25:00' is not a time range such as 09:00-17:00"),
    ("bank_holidays: [2026-12-25, 2026-12-28]", "bank_holidays: [2026-12-25, 2026-12-32]",
     "rota.yaml:20: bank_holidays: '2026-12-32' is not a date such as 2026-12-25"),
    ("secret_env: TEST_SECRET_MANAGER", "secret_env: TEST_SECRET_MISSING",
     "rota.yaml:7: contacts.team-manager.webhook.secret_env: environment variable TEST_SECRET_MISSING is not set"),
    ("timezone: Europe/London", "timezone: Europe/Londres",
     "rota.yaml:1: timezone: 'Europe/Londres' is not a known time zone"),
    ("    token_sha256: \"{manager}\"", "    token_sha256: \"{manager}\"\n    pager: yes",
     "rota.yaml:9: contacts.team-manager: unknown key 'pager' (expected one of: email, notify_email, "
     "pagerduty, sms, token_sha256, webhook)"),
    ("  team:\n", "  on-call:\n",
     "rota.yaml:17: tiers: on-call is given twice"),
    ("    - {{contacts: [team-manager]}}", "    - {{contacts: [team-manager], when: sometimes}}",
     "rota.yaml:18: tiers.team[0].when: 'sometimes' is not one of always, weekdays, weekends, nights, "
     "bank holidays or a time range such as 09:00-17:00 (optionally after a set of days)"),
    ("    webhook: {{url: \"{hook}/duty\", secret_env: TEST_SECRET_DUTY}}\n", "    email: duty@nhs.net\n",
     "rota.yaml:4: contacts.duty-worker.email: needs an smtp section in the rota"),
])
def test_each_mistake_is_named_with_its_file_and_line(tmp_path: Path, old: str, new: str, expected: str) -> None:
    assert _problem(tmp_path, _edit(old, new)) == expected


def test_a_yaml_syntax_error_is_one_line_with_its_line(tmp_path: Path) -> None:
    assert _problem(tmp_path, "contacts:\n  a: {webhook: [\ntiers: {}\n") == (
        "rota.yaml:4: not valid YAML: expected ',' or ']', but got '<stream end>'")


def test_an_empty_or_missing_file_is_refused(tmp_path: Path) -> None:
    assert _problem(tmp_path, "") == "rota.yaml:1: the rota is empty"
    with pytest.raises(RotaError, match=r"nowhere\.yaml: cannot read the rota: No such file or directory"):
        load_rota(tmp_path / "nowhere.yaml", {})


def test_podlink_notify_refuses_a_bad_rota_in_one_line_with_status_2(tmp_path: Path) -> None:
    path = write_rota(tmp_path, text=ROTA.replace("escalate_after: 30m", "escalate_after: half an hour"))
    env = {"PATH": "/usr/bin:/bin", "PODLINK_ROTA_FILE": str(path), **SECRETS}
    done = subprocess.run([sys.executable, "-m", "podlink.services.cli", "notify"], env=env,
                          capture_output=True, text=True, timeout=60, cwd=REPO)
    assert done.returncode == 2
    assert done.stderr == (f"podlink notify: {path}:15: tiers.on-call[1].escalate_after: 'half an hour' "
                           "is not a duration such as 15m, 1h or 90s\n")
    assert "Traceback" not in done.stdout
