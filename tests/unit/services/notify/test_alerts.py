"""Reading alert records of all four types, and refusing what is not one, naming the field only."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from podlink.services.notify.alerts import Unreadable, parse_alert
from podlink.services.notify.messages import lateness
from podlink.streams.core.encoding import json_bytes
from tests.unit.services.notify.support import flag_event, minutes, sla_event, utc

GOLDEN = Path(__file__).resolve().parents[3] / "golden"
T0 = utc("2026-06-02T10:00")


def test_the_workers_golden_alerts_are_read() -> None:
    breach = parse_alert((GOLDEN / "alert-breached.json").read_bytes())
    assert (breach.kind, breach.referral_id, breach.topic, breach.audience, breach.severity) == (
        "breached", "REF-GOLDEN-1", "first-meeting", "on-call", "critical")
    assert breach.due_at == utc("2026-06-02T09:00") and breach.key == "REF-GOLDEN-1:first-meeting"
    resolved = parse_alert((GOLDEN / "alert-resolved-by-meeting.json").read_bytes())
    assert (resolved.kind, resolved.resolved_by, resolved.key) == ("resolved", "meeting-held", breach.key)
    assert resolved.id != breach.id


def test_a_governance_flag_has_a_rule_and_no_due_time() -> None:
    flag = parse_alert(json_bytes(flag_event("REF-A-1", "medication-before-three-meetings", T0, audience="team")))
    assert (flag.kind, flag.topic, flag.audience, flag.due_at) == (
        "flagged", "medication-before-three-meetings", "team", None)
    assert flag.key == "REF-A-1:medication-before-three-meetings"


def test_new_policies_route_by_their_audience() -> None:
    alert = parse_alert(json_bytes(sla_event("at-risk", "REF-A-2", T0 + minutes(30), T0, policy="cpa-review",
                                             audience="team")))
    assert (alert.kind, alert.topic, alert.audience, alert.severity) == ("at-risk", "cpa-review", "team", "warning")


def _broken(change) -> str:
    event = sla_event("breached", "REF-A-3", T0 - minutes(60), T0)
    change(event)
    with pytest.raises(Unreadable) as caught:
        parse_alert(json_bytes(event))
    return str(caught.value)


def test_what_is_wrong_is_named_without_the_value() -> None:
    assert _broken(lambda e: e["data"].pop("audience")) == "data.audience is missing or not text"
    assert _broken(lambda e: e["data"].update(severity="urgent")) == (
        "data.severity is not critical, error, warning or info")
    assert _broken(lambda e: e["data"].update(dueAt="tomorrow")) == "data.dueAt is not an ISO 8601 time"
    assert _broken(lambda e: e["data"].update(raisedAt="2026-06-02T10:00:00")) == "data.raisedAt has no time zone"
    assert _broken(lambda e: e.update(type="uk.nhs.podlink.referral.registered")) == (
        "type is not an alert type notify knows")
    assert _broken(lambda e: e.pop("data")) == "data is missing"
    with pytest.raises(Unreadable, match="^the value is not JSON$"):
        parse_alert(b"\xff\xfe")
    with pytest.raises(Unreadable, match="^the value is not a CloudEvents 1.0 event$"):
        parse_alert(json.dumps([1]).encode())
    with pytest.raises(Unreadable, match="^the record has no value$"):
        parse_alert(None)


@pytest.mark.parametrize(("offset_minutes", "expected"), [
    (-90, "1 h 30 min left"), (-5, "5 min left"), (0, "0 min late"), (59, "59 min late"), (125, "2 h 5 min late")])
def test_how_late_or_how_long_left(offset_minutes: int, expected: str) -> None:
    due = utc("2026-06-02T09:00")
    assert lateness(due, due + minutes(offset_minutes)) == expected


def test_a_repeating_deadlines_round_is_read_and_checked() -> None:
    later = parse_alert(json_bytes(sla_event("breached", "REF-A-4", T0, T0, policy="cpa-review", cycle=2)))
    assert (later.cycle, later.deadline, later.key) == (2, ("REF-A-4", "cpa-review", 2), "REF-A-4:cpa-review")
    assert _broken(lambda e: e["data"].update(cycle="2")) == "data.cycle is not a whole number of 0 or more"
