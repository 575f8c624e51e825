"""Escalation with an injected clock: who is paged, when, by the rota's Europe/London clock."""
from __future__ import annotations

from datetime import datetime
from pathlib import Path

import pytest

from podlink.services.notify.alerts import parse_alert
from podlink.services.notify.escalation import (
    Conflict,
    Escalation,
    Page,
    acknowledge,
    contact_unreachable,
    open_escalation,
    resolve,
    tick,
)
from podlink.services.notify.rota import Rota, load_rota
from podlink.services.notify.state import escalation_from_json, escalation_json
from podlink.streams.core.encoding import json_bytes
from tests.unit.services.notify.support import SECRETS, flag_event, minutes, sla_event, utc, write_rota


@pytest.fixture
def rota(tmp_path: Path) -> Rota:
    return load_rota(write_rota(tmp_path), SECRETS)


def breach(at: datetime, audience: str = "on-call"):
    return parse_alert(json_bytes(sla_event("breached", "REF-ESC-1", at - minutes(60), at, audience=audience)))


def run(esc: Escalation, rota: Rota, *moments: datetime) -> list[tuple[datetime, list[Page]]]:
    """Ticks at each moment in turn; the moments that paged someone, with their pages."""
    paged = []
    for moment in moments:
        esc, pages = tick(esc, rota, moment)
        if pages:
            paged.append((moment, pages))
    return paged


def test_a_weekday_alert_goes_to_the_duty_worker_then_the_manager_then_repeats(rota: Rota) -> None:
    # Tuesday 24 November 2026, 10:00 in London (GMT: London time is UTC).
    start = utc("2026-11-24T10:00")
    esc, pages = open_escalation(breach(start), rota, start)
    assert pages == [Page("duty-worker", "alert")]
    esc, pages = tick(esc, rota, utc("2026-11-24T10:14:59"))
    assert pages == []
    esc, pages = tick(esc, rota, utc("2026-11-24T10:15"))
    assert pages == [Page("team-manager", "alert")] and esc.tier == 1
    # The manager waited 30 min: nobody further is on duty on a weekday at 10:45 (the consultant
    # covers nights, weekends and bank holidays), so the manager is paged again an hour after
    # the last page, at 11:15, then 12:15.
    assert run(esc, rota, utc("2026-11-24T10:45"), utc("2026-11-24T11:14"), utc("2026-11-24T11:15"),
               utc("2026-11-24T11:20"), utc("2026-11-24T12:15")) == [
        (utc("2026-11-24T11:15"), [Page("team-manager", "repeat-1")]),
        (utc("2026-11-24T12:15"), [Page("team-manager", "repeat-2")]),
    ]


@pytest.mark.parametrize(("opened", "second"), [
    ("2026-11-24T22:00", "consultant"),    # Tuesday night: the manager is off, the consultant on
    ("2026-11-28T10:00", "consultant"),    # Saturday morning
    ("2026-12-25T10:00", "consultant"),    # Christmas Day, a Friday and a bank holiday
    ("2026-12-28T10:00", "consultant"),    # the Monday bank holiday after it
    ("2026-12-29T10:00", "team-manager"),  # the Tuesday after: an ordinary weekday again
    ("2026-11-24T16:44", "team-manager"),  # escalates at 16:59, still in the manager's hours
    ("2026-11-24T16:45", "consultant"),    # escalates at 17:00: night has begun
])
def test_the_second_tier_is_whoever_is_on_duty_when_the_first_has_waited(
        rota: Rota, opened: str, second: str) -> None:
    start = utc(opened)
    esc, pages = open_escalation(breach(start), rota, start)
    assert pages == [Page("duty-worker", "alert")]
    _, pages = tick(esc, rota, start + minutes(15))
    assert pages == [Page(second, "alert")]


@pytest.mark.parametrize(("opened", "second"), [
    # 08:30 UTC on the Friday before the clocks go back (25 Oct 2026) is 09:30 BST: the manager's
    # hours have begun when it escalates at 08:45 UTC (09:45 BST).
    ("2026-10-23T08:30", "team-manager"),
    # The same UTC time on the Monday after is 08:30 GMT: at 08:45 GMT it is still night.
    ("2026-10-26T08:30", "consultant"),
    # And in spring: Friday 27 March 2026 08:30 UTC is 08:30 GMT (night); Monday 30 March, after
    # the clocks went forward on the 29th, it is 09:30 BST (day).
    ("2026-03-27T08:30", "consultant"),
    ("2026-03-30T08:30", "team-manager"),
])
def test_the_rota_follows_london_time_across_the_clock_change(rota: Rota, opened: str, second: str) -> None:
    start = utc(opened)
    esc, _ = open_escalation(breach(start), rota, start)
    _, pages = tick(esc, rota, start + minutes(15))
    assert pages == [Page(second, "alert")]


def test_an_acknowledgement_stops_escalation(rota: Rota) -> None:
    start = utc("2026-11-24T10:00")
    esc, _ = open_escalation(breach(start), rota, start)
    esc = acknowledge(esc, "duty-worker", utc("2026-11-24T10:10"))
    assert esc.status == "acknowledged" and esc.acknowledged_by == "duty-worker"
    assert run(esc, rota, utc("2026-11-24T10:15"), utc("2026-11-24T11:00"), utc("2026-11-25T10:00")) == []
    with pytest.raises(Conflict, match="acknowledged by duty-worker"):
        acknowledge(esc, "team-manager", utc("2026-11-24T10:20"))


def test_resolving_stops_escalation_and_tells_everyone_paged(rota: Rota) -> None:
    start = utc("2026-11-24T10:00")
    esc, _ = open_escalation(breach(start), rota, start)
    esc, _ = tick(esc, rota, utc("2026-11-24T10:15"))
    esc, pages = resolve(esc, "meeting-held", utc("2026-11-24T10:20"))
    assert pages == [Page("duty-worker", "resolved"), Page("team-manager", "resolved")]
    assert esc.status == "resolved" and esc.closed_reason == "meeting-held"
    assert run(esc, rota, utc("2026-11-24T10:45"), utc("2026-11-24T12:00")) == []
    with pytest.raises(Conflict):
        resolve(esc, "meeting-held", utc("2026-11-24T10:21"))
    with pytest.raises(Conflict, match="resolved"):
        acknowledge(esc, "duty-worker", utc("2026-11-24T10:21"))


def test_a_contact_unreachable_on_every_channel_escalates_at_once(rota: Rota) -> None:
    start = utc("2026-11-24T10:00")
    esc, _ = open_escalation(breach(start), rota, start)
    esc, pages = tick(contact_unreachable(esc, "duty-worker"), rota, utc("2026-11-24T10:01"))
    assert pages == [Page("team-manager", "alert")]
    # The new tier waits its own 30 minutes from 10:01: the manager's failure flag is not carried.
    assert esc.failed == frozenset()
    assert run(esc, rota, utc("2026-11-24T10:30")) == []


def test_a_tier_without_escalate_after_repeats_every_repeat_every(rota: Rota) -> None:
    start = utc("2026-11-24T10:00")
    esc, pages = open_escalation(breach(start, audience="team"), rota, start)
    assert pages == [Page("team-manager", "alert")]
    assert run(esc, rota, utc("2026-11-24T10:59"), utc("2026-11-24T11:00"), utc("2026-11-24T12:00")) == [
        (utc("2026-11-24T11:00"), [Page("team-manager", "repeat-1")]),
        (utc("2026-11-24T12:00"), [Page("team-manager", "repeat-2")]),
    ]


def test_an_audience_no_tier_covers_pages_nobody(rota: Rota) -> None:
    start = utc("2026-11-24T10:00")
    esc, pages = open_escalation(breach(start, audience="pharmacy"), rota, start)
    assert pages == [] and esc.tier is None and esc.status == "open"


def test_a_governance_flag_escalates_like_a_breach(rota: Rota) -> None:
    start = utc("2026-11-28T10:00")  # a Saturday
    flag = parse_alert(json_bytes(flag_event("REF-ESC-2", "high-risk-referral", start)))
    esc, pages = open_escalation(flag, rota, start)
    assert pages == [Page("duty-worker", "alert")]
    assert tick(esc, rota, start + minutes(15))[1] == [Page("consultant", "alert")]


def test_a_restart_mid_escalation_neither_loses_nor_repeats_a_page(rota: Rota) -> None:
    start = utc("2026-11-24T10:00")
    esc, _ = open_escalation(breach(start), rota, start)
    esc, _ = tick(esc, rota, utc("2026-11-24T10:15"))
    # What the state topic keeps, read back by a new process at 10:20.
    restored = escalation_from_json(escalation_json(esc))
    assert restored == esc
    assert run(restored, rota, utc("2026-11-24T10:20"), utc("2026-11-24T11:14"), utc("2026-11-24T11:15")) == [
        (utc("2026-11-24T11:15"), [Page("team-manager", "repeat-1")])]
