"""A trust's own rules, from its own package: installed here, found by entry point, run by name.

The example package (examples/hooks/) is installed into a folder of the test's own, and a fresh
Python with that folder on its path loads the policies: the same discovery a worker does.
"""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
EXAMPLE = ROOT / "examples" / "hooks"

CHECK = """
import json, sys
from podlink.streams.core.pathway import evaluation
from podlink.streams.worker.policy_loading import PolicyError, load_policy
from tests.support.episodes import feed
from tests.unit.core.test_rules import ev, received

try:
    loaded = load_policy(__import__("pathlib").Path(sys.argv[1]), None)
except PolicyError as exc:
    print(json.dumps({"refused": str(exc)}))
    raise SystemExit(0)
policy = loaded.policy
events = [received(), ev("referral-accepted", acceptedAt="2026-06-01T10:00:00Z"),
          ev("episode-discharged", dischargedAt="2026-06-06T15:00:00Z")]  # a Saturday
episode, _ = feed(events, policy)
evaluated = evaluation(episode, policy)
print(json.dumps({
    "rules": [r.name for r in policy.rules],
    "deadlines": [[d.policy, d.due_at.isoformat(), d.closed_at.isoformat() if d.closed_at else None]
                  for d in evaluated.deadlines if d.policy == "carer-contact-within-48h"],
    "flags": [[f.rule, f.audience, f.severity] for f in evaluated.flags],
    "outcomes": [[o.kind, dict(o.data)] for o in evaluated.outcomes],
}))
"""


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Path:
    target = tmp_path_factory.mktemp("trust-hooks")
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps",
                    "--target", str(target), str(EXAMPLE)], check=True, timeout=120)
    return target


def _load(installed: Path, tmp_path: Path, policy_text: str) -> dict:
    policy = tmp_path / "policies.yaml"
    policy.write_text(policy_text)
    env = {"PYTHONPATH": f"{installed}:{ROOT}", "PATH": "/usr/bin:/bin"}
    done = subprocess.run([sys.executable, "-c", CHECK, str(policy)], capture_output=True, text=True,
                          env=env, cwd=ROOT, timeout=60)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


POLICIES = """policies:
  first-meeting:
    starts: {event: referral.received, at: receivedAt}
    met_by: meeting.held
    due: 24h
    audience: on-call
    severity: critical
hooks:
  high-risk-referral:
  carer-contact-within-48h:
  weekend-discharge: {severity: warning}
"""


def test_a_trust_package_adds_a_deadline_a_flag_and_an_outcome_named_in_the_policy_file(installed, tmp_path):
    found = _load(installed, tmp_path, POLICIES)
    assert found["rules"] == ["first-meeting", "high-risk-referral", "carer-contact-within-48h", "weekend-discharge"]
    # Accepted 1 June 10:00 UTC: due 48 hours on; the POD discharge on 6 June cancels it.
    assert found["deadlines"] == [["carer-contact-within-48h", "2026-06-03T10:00:00+00:00",
                                   "2026-06-06T15:00:00+00:00"]]
    assert found["flags"] == [["weekend-discharge", "team", "warning"]]  # severity from the policy file
    assert found["outcomes"] == [["trust.weekend-discharge", {"day": "Saturday"}]]


def test_a_hook_no_package_provides_is_refused_with_its_line(installed, tmp_path):
    found = _load(installed, tmp_path, POLICIES.replace("weekend-discharge:", "weekend-dischrage:"))
    assert "policies.yaml:11: no installed package provides hook 'weekend-dischrage'" in found["refused"]
    assert "carer-contact-within-48h" in found["refused"]  # the installed ones are listed
