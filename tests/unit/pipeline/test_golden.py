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
from functools import partial
from pathlib import Path
from typing import Any

import pytest

from podlink.streams.core.alerts import alert_event
from podlink.streams.core.pathway import first_meeting_deadline
from podlink.streams.core.encoding import json_bytes
from podlink.streams.core.episode import Policy
from podlink.streams.pipeline.processor import Result
from tests.support.contract_examples import load, valid_files
from tests.support.episodes import T0, feed, hours, records, run

GOLDEN = Path(__file__).resolve().parents[2] / "golden"
REFERRAL = "REF-GOLDEN-1"


def _on_time(event_type: str) -> Result:
    return next(r for r in run(records("on-time", T0, REFERRAL)) if r.fhir_messages
                and r.fhir_messages[0]["entry"][0]["resource"]["eventCoding"]["code"] == event_type)


def _outcome(kind: str) -> dict[str, Any]:
    return next(o for r in run(records("on-time", T0, REFERRAL)) for o in r.outcomes if o["type"] == f"uk.nhs.podlink.{kind}")


def _alert(kind: str, at: float, scenario: str = "breached") -> dict[str, Any]:
    episode, _ = feed(records(scenario, T0, REFERRAL))
    deadline = first_meeting_deadline(episode, Policy())
    assert deadline is not None
    return alert_event(deadline, kind, T0 + hours(at))  # type: ignore[arg-type]


def _outcomes(results: list[Result]) -> list[dict[str, Any]]:
    return [o for r in results for o in r.outcomes]


def _examples_journey() -> list[Result]:
    """The contract examples' main referral through the pipeline, in time order."""
    main = [load(p) for p in valid_files()]
    return run(sorted((r for r in main if r["subject"] == "REF-2026-000123"), key=lambda r: r["time"]))


def _journey_outcome(kind: str) -> dict[str, Any]:
    # The contract examples hold one event of each care kind, with names and free text to leave out.
    [outcome] = [o for o in _outcomes(_examples_journey()) if o["type"] == f"uk.nhs.podlink.{kind}"]
    return outcome


CASES = {
    "bundle-referral-received": lambda: _on_time("servicerequest-request").fhir_messages[0],
    "bundle-meeting-held-first": lambda: _on_time("meeting-held").fhir_messages[0],
    "outcome-referral-registered": lambda: _outcome("referral.registered"),
    "outcome-meeting-first": lambda: _outcome("meeting.first"),
    "alert-at-risk": lambda: _alert("at-risk", 19),
    "alert-breached": lambda: _alert("breached", 25),
    "alert-resolved-by-meeting": lambda: _alert("resolved", 40, "met-late"),
    "alert-resolved-by-closing": lambda: _alert("resolved", 40, "withdrawn"),
    "outcomes-examples-journey": lambda: _outcomes(_examples_journey()),
    "bundles-examples-journey": lambda: [m for r in _examples_journey() for m in r.fhir_messages],
    "outcomes-referral-closed": lambda: [
        _outcomes(run(records(s, T0, REFERRAL)))[-1] for s in ("rejected", "withdrawn")],
    "outcomes-on-time-pathway": lambda: _outcomes(run(records("on-time", T0, REFERRAL))),
    **{f"outcome-{kind.replace('.', '-')}": partial(_journey_outcome, kind) for kind in (
        "risk.assessed", "cpa.coordinator-assigned", "cpa.review-held", "admission.started",
        "admission.ended", "medication.prescribed", "measure.recorded")},
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
