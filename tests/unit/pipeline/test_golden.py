"""What podlink writes, pinned byte for byte: FHIR Bundles, outcome events and SLA alerts.

Each golden file in `tests/golden/` was written by the code as it stood when the file was
committed; a change in any field, id or key order fails here. The files are indented JSON in
the order podlink writes the keys, so equal text means equal `json_bytes` on the wire.

To change what podlink writes on purpose, regenerate and review the diff:

    PODLINK_UPDATE_GOLDEN=1 .venv/bin/python -m pytest tests/unit/pipeline/test_golden.py
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from podlink.streams.core.alerts import alert_event
from podlink.streams.core.deadlines import first_meeting_deadline
from podlink.streams.core.encoding import json_bytes
from podlink.streams.core.episode import Policy
from podlink.streams.pipeline.processor import Result
from tests.support.episodes import T0, feed, hours, records, run

GOLDEN = Path(__file__).resolve().parents[2] / "golden"
REFERRAL = "REF-GOLDEN-1"


def _on_time(event_type: str) -> Result:
    return next(r for r in run(records("on-time", T0, REFERRAL)) if r.fhir_messages
                and r.fhir_messages[0]["entry"][0]["resource"]["eventCoding"]["code"] == event_type)


def _outcome(kind: str) -> dict[str, Any]:
    return next(o for r in run(records("on-time", T0, REFERRAL)) for o in r.outcomes if o["type"] == f"uk.nhs.podlink.{kind}")


def _alert(kind: str, at: float) -> dict[str, Any]:
    episode, _ = feed(records("breached", T0, REFERRAL))
    deadline = first_meeting_deadline(episode, Policy())
    assert deadline is not None
    return alert_event(deadline, kind, T0 + hours(at))  # type: ignore[arg-type]


CASES = {
    "bundle-referral-received": lambda: _on_time("servicerequest-request").fhir_messages[0],
    "bundle-meeting-held-first": lambda: _on_time("meeting-held").fhir_messages[0],
    "outcome-referral-registered": lambda: _outcome("referral.registered"),
    "outcome-meeting-first": lambda: _outcome("meeting.first"),
    "alert-at-risk": lambda: _alert("at-risk", 19),
    "alert-breached": lambda: _alert("breached", 25),
}


def _text(value: Any) -> str:
    return json.dumps(value, indent=2, ensure_ascii=False) + "\n"


@pytest.mark.parametrize("name", CASES)
def test_what_podlink_writes_matches_its_golden_file(name: str) -> None:
    value = CASES[name]()
    path = GOLDEN / f"{name}.json"
    if os.environ.get("PODLINK_UPDATE_GOLDEN") == "1":
        path.write_text(_text(value))
    golden = path.read_text()
    assert _text(value) == golden, f"{path.name} differs; if on purpose, see this module's docstring"
    assert json_bytes(value) == json_bytes(json.loads(golden))
