"""The policy file as an operator meets it: the rules in force, or one line saying what is wrong."""
from __future__ import annotations

import os
import subprocess
import sys
from datetime import timedelta

import pytest

from podlink.streams.core.policies import DeadlinePolicy
from podlink.streams.core.policy_file import default_policy_text
from podlink.streams.worker.policy_loading import PolicyError, load_policy

POLICY_NAMES = ["first-meeting", "first-contact", "risk-assessment", "risk-review", "cpa-coordinator",
                "cpa-review", "post-discharge-follow-up", "high-risk-referral", "medication-before-three-meetings"]


def _write(tmp_path, text: str):
    path = tmp_path / "policies.yaml"
    path.write_text(text)
    return path


def _refusal(tmp_path, text: str) -> str:
    path = _write(tmp_path, text)
    with pytest.raises(PolicyError) as refused:
        load_policy(path, None)
    message = str(refused.value)
    assert "\n" not in message and "Traceback" not in message
    return message.removeprefix(f"{path}:")


def _first_meeting(text: str) -> str:
    # The shipped file, with its first-meeting policy changed.
    old = "    due: 24h\n    warn_before: 6h\n"
    assert old in default_policy_text()
    return default_policy_text().replace(old, text, 1)


def test_without_a_file_the_shipped_policies_and_hooks_are_in_force():
    loaded = load_policy(None, frozenset({"POD-A"}))
    assert [r.name for r in loaded.policy.rules] == POLICY_NAMES
    assert loaded.policy.teams == frozenset({"POD-A"})
    first = loaded.policy.rules[0].hook
    assert isinstance(first, DeadlinePolicy)
    assert first.due.after is not None and first.due.after.elapsed() == timedelta(hours=24)
    assert first.warn_before.elapsed() == timedelta(hours=6)
    assert loaded.summary()[0] == "first-meeting: from referral.received, due 24h, warn 6h before, to on-call (critical)"


def test_a_changed_file_changes_the_fingerprint_and_the_same_file_keeps_it(tmp_path):
    default = load_policy(None, None).fingerprint
    assert load_policy(_write(tmp_path, default_policy_text()), None).fingerprint == default
    changed = load_policy(_write(tmp_path, _first_meeting("    due: 48h\n    warn_before: 6h\n")), None)
    assert changed.fingerprint != default


def test_every_worker_process_gives_the_shipped_rules_the_same_fingerprint():
    # Stored deadline entries carry it: another fingerprint after a restart means every entry
    # is worked out again as if the rules had changed. Sets hash strings by a per-process seed.
    program = "from podlink.streams.worker.policy_loading import load_policy; print(load_policy(None, None).fingerprint)"
    prints = {subprocess.run([sys.executable, "-c", program], env={**os.environ, "PYTHONHASHSEED": seed},
                             capture_output=True, text=True, check=True).stdout for seed in ("1", "2", "3")}
    assert len(prints) == 1


# Line numbers in the shipped file: first-meeting's `due` is on line 31, `warn_before` on 32,
# `audience` on 33 (34 once a line is added before it).
@pytest.mark.parametrize("change, line, problem", [
    ("    due_hour: 24h\n    warn_before: 6h\n", 31,
     "unknown key 'due_hour'"),
    ("    PODLINK_DEADLINE_HOURS: 24\n    due: 24h\n    warn_before: 6h\n", 31,
     "unknown key 'PODLINK_DEADLINE_HOURS'"),
    ("    due: 24h\n    warn_before: 30h\n", 32,
     "warn_before (30h) must be shorter than the time the deadline allows"),
    ("    due: 24 hours\n    warn_before: 6h\n", 31,
     "due must be a duration such as 90m, 24h, 7d, 2w or 12mo, not '24 hours'"),
    ("    due: 24h\n    warn_before: 6h\n    audience: everyone\n", 34,
     "given twice"),
    ("    due: 24h\n    warn_before: 6h\n    repeats: yes please\n", 33,
     "repeats must be true or false, not 'yes please'"),
])
def test_each_mistake_is_refused_with_its_line(tmp_path, change, line, problem):
    message = _refusal(tmp_path, _first_meeting(change))
    assert message.startswith(f"{line}: policy 'first-meeting': "), message
    assert problem in message


@pytest.mark.parametrize("text, problem", [
    ("policies:\n  a-rule:\n    starts: {event: referral.recieved}\n    met_by: meeting.held\n"
     "    due: 1h\n    audience: team\n    severity: info\n",
     "3: policy 'a-rule': starts: event: 'referral.recieved' is not an event of the contract"),
    ("policies:\n  a-rule:\n    starts: {event: referral.received, when: {urgency: [soon]}}\n"
     "    met_by: meeting.held\n    due: 1h\n    audience: team\n    severity: info\n",
     "3: policy 'a-rule': starts: when: urgency is never 'soon'"),
    ("policies:\n  a-rule:\n    starts: {event: referral.received}\n    met_by: episode.discharged\n"
     "    due: 1h\n    audience: team\n    severity: info\n",
     "4: policy 'a-rule': episode.discharged cannot both meet and cancel the deadline"),
    ("policies:\n  a-rule:\n    starts: {event: referral.received}\n    met_by: meeting.held\n"
     "    due: 1h\n    repeats: true\n    audience: team\n    severity: info\n",
     "6: policy 'a-rule': a repeating policy must start again on an event that meets it"),
    ("policies:\n  a-rule:\n    starts: {event: referral.received}\n    met_by: meeting.held\n"
     "    due: 1h\n    audience: pager\n    severity: info\n",
     "6: policy 'a-rule': audience must be one of on-call, team, not 'pager'"),
    ("policies:\n  a-rule: [1, 2\n", "not valid YAML"),
    ("policies: " + "[" * 20000 + "]" * 20000 + "\n", "1: nested too deeply to be a policy file"),
    ("policies:\n  a-rule: &a [*a]\n", "policy 'a-rule' must be a mapping"),
    ("", "1: the file is empty"),
    ("policies: {}\nhooks:\n  my-trust-rule: {}\n",
     "3: no installed package provides hook 'my-trust-rule'"),
])
def test_a_file_of_other_mistakes_is_refused_too(tmp_path, text, problem):
    assert problem in _refusal(tmp_path, text)


def test_a_missing_file_is_one_line_too(tmp_path):
    with pytest.raises(PolicyError, match=r"nowhere\.yaml: no such file \(PODLINK_POLICY_FILE\)$"):
        load_policy(tmp_path / "nowhere.yaml", None)


def test_a_switched_off_policy_is_not_in_force(tmp_path):
    text = default_policy_text().replace("  first-contact:\n", "  first-contact:\n    enabled: false\n", 1)
    names = [r.name for r in load_policy(_write(tmp_path, text), None).policy.rules]
    assert "first-contact" not in names and len(names) == len(POLICY_NAMES) - 1
