"""Policy files for end-to-end tests.

Tests written about the first-meeting deadline run their workers under that policy alone: the
sample pathways accept referrals but never assess risk or assign a CPA coordinator, so the
shipped policies would add alerts those tests are not about. The pathway-rules tests run the
shipped file itself.
"""
from __future__ import annotations

from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SHIPPED = REPO / "podlink" / "streams" / "core" / "default_policies.yaml"

FIRST_MEETING_ONLY = """\
policies:
  first-meeting:
    starts: {event: referral.received, at: receivedAt}
    met_by: meeting.held
    due: 24h
    warn_before: 6h
    audience: on-call
    severity: critical
"""


def first_meeting_only(folder: Path) -> dict[str, str]:
    """The environment of a worker under the first-meeting policy alone (file in `folder`)."""
    path = folder / "first-meeting-only.yaml"
    path.write_text(FIRST_MEETING_ONLY)
    return {"PODLINK_POLICY_FILE": str(path)}


def shipped() -> dict[str, str]:
    return {"PODLINK_POLICY_FILE": str(SHIPPED)}
