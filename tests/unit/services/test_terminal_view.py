"""The terminal view's lines, from log events as the worker writes them (see worker/app.py)."""
from __future__ import annotations

import io

import pytest
import structlog
from rich.cells import cell_len
from rich.console import Console

from podlink.services.terminal_view import (
    SUMMARY,
    Tally,
    TerminalView,
    render_line,
    short_type,
    summary_line,
)

# 09:00 UTC on 1 July is 10:00 in London (BST); the deadline, 23:30 UTC, is 00:30 the next day.
RECORD = {
    "event": "record", "level": "info", "timestamp": "2026-07-01T09:00:00.123456Z",
    "outcome": "applied", "referral": "REF-2026-000123", "type": "uk.nhs.spa.referral.received",
    "fhir_messages": 1, "outcome_events": ["uk.nhs.podlink.referral.registered"],
    "deadline": "2026-07-01T23:30:00+00:00",
    "topic": "spa.referral-events.v1", "partition": 2, "offset": 17,
}
REJECTED = {
    "event": "record rejected", "level": "warning", "timestamp": "2026-11-30T12:47:24.5Z",
    "outcome": "dead-letter", "reason": "value is not JSON (line 1, column 3)",
    "topic": "spa.referral-events.v1", "partition": 0, "offset": 4,
}
ALERT = {
    "event": "alert raised", "level": "warning", "timestamp": "2026-11-30T12:47:30Z",
    "alert": "uk.nhs.podlink.sla.breached", "alert_id": "x", "referral": "REF-DEMO-0001",
    "policy": "first-meeting", "due": "2026-11-30T06:47:00Z", "due_local": "2026-11-30T06:47:00+00:00",
}


def test_a_record_shows_local_time_referral_short_type_and_what_came_out():
    assert render_line(RECORD, 200).plain == (
        "10:00:00  REF-2026-000123 referral.received  → FHIR message, deadline due Thu 02 Jul 00:30, "
        "referral.registered")


def test_times_follow_the_clock_change():
    # 00:30 UTC on 25 October 2026 is 01:30 BST; 01:30 UTC the same night is 01:30 GMT.
    assert render_line({**RECORD, "timestamp": "2026-10-25T00:30:00Z", "deadline": None}, 200).plain.startswith("01:30:00")
    assert "deadline due Sun 25 Oct 01:30," in render_line({**RECORD, "deadline": "2026-10-25T01:30:00Z"}, 200).plain


def test_a_narrow_terminal_cuts_the_milestones_before_the_due_time():
    line = render_line({**RECORD, "outcome_events": ["uk.nhs.podlink.referral.registered",
                                                     "uk.nhs.podlink.contact.first"]}, 100).plain
    assert len(line) == 100 and line.endswith("…")
    assert "deadline due Thu 02 Jul 00:30" in line


def test_a_first_meeting_says_the_deadline_is_met_and_a_closure_sets_none():
    met = {**RECORD, "type": "uk.nhs.pod.meeting.held", "fhir_messages": 2,
           "outcome_events": ["uk.nhs.podlink.meeting.first", "uk.nhs.podlink.meeting.held"]}
    assert render_line(met, 200).plain.endswith("→ 2 FHIR messages, deadline met, meeting.first, meeting.held")
    closed = {**RECORD, "type": "uk.nhs.spa.referral.withdrawn", "outcome_events": ["uk.nhs.podlink.referral.closed"]}
    assert render_line(closed, 200).plain.endswith("→ FHIR message, referral.closed")


@pytest.mark.parametrize(("outcome", "says"), [
    ("pending", "waits for its referral"),
    ("duplicate", "duplicate: nothing sent"),
    ("out-of-scope", "team out of scope: nothing sent"),
])
def test_records_that_send_nothing_say_why(outcome, says):
    event = {**RECORD, "outcome": outcome, "fhir_messages": 0, "outcome_events": [], "deadline": None}
    assert render_line(event, 200).plain == f"10:00:00  REF-2026-000123 referral.received  {says}"


def test_a_replayed_record_says_so():
    assert "referral.received  replayed → FHIR message" in render_line({**RECORD, "outcome": "replayed"}, 200).plain


def test_dead_letters_and_alerts_stand_out():
    dead = render_line(REJECTED, 200)
    assert dead.plain == ("12:47:24   DEAD LETTER  spa.referral-events.v1/0@4  "
                          "value is not JSON (line 1, column 3)")
    assert any("red" in str(span.style) for span in dead.spans)
    alert = render_line(ALERT, 200)
    assert alert.plain == "12:47:30   ALERT breached  REF-DEMO-0001   first meeting due Mon 30 Nov 06:47"
    review = render_line({**ALERT, "policy": "cpa-review"}, 200)
    assert review.plain == "12:47:30   ALERT breached  REF-DEMO-0001   cpa review due Mon 30 Nov 06:47"
    flag = render_line({**ALERT, "alert": "uk.nhs.podlink.governance.flagged", "rule": "high-risk-referral"}, 200)
    assert flag.plain == "12:47:30   ALERT governance.flagged  REF-DEMO-0001   high-risk-referral"
    assert any("red" in str(span.style) for span in alert.spans)
    failed = {**REJECTED, "event": "record failed", "referral": "REF-9", "type": "uk.nhs.pod.contact.made",
              "reason": "podlink could not process the event (KeyError)"}
    assert render_line(failed, 200).plain == (
        "12:47:24   DEAD LETTER  REF-9           contact.made spa.referral-events.v1/0@4  "
        "podlink could not process the event (KeyError)")


@pytest.mark.parametrize("width", [20, 40, 79, 120])
@pytest.mark.parametrize("event", [RECORD, REJECTED, ALERT, {"event": "Heartbeat failed", "level": "warning",
                                                              "logger": "aiokafka.consumer.group_coordinator"}])
def test_every_line_fits_the_width(event, width):
    text = render_line(event, width)
    assert cell_len(text.plain) <= width
    assert "\n" not in text.plain


def test_other_lines_show_level_text_logger_and_the_last_line_of_an_exception():
    event = {"event": "Error: boom", "level": "error", "timestamp": "2026-11-30T12:00:00Z", "logger": "faust",
             "exception": "Traceback (most recent call last):\n  File x\nValueError: boom"}
    assert render_line(event, 200).plain == "12:00:00  error Error: boom: ValueError: boom  [faust]"


def test_other_info_lines_show_no_level():
    event = {"event": "alert ledger started", "level": "info", "timestamp": "2026-11-30T12:00:00Z",
             "topic": "pod.sla-alerts.v1"}
    assert render_line(event, 200).plain == "12:00:00  alert ledger started"
    assert render_line({**event, "level": "warning"}, 200).plain == "12:00:00  warning alert ledger started"


def test_the_tally_counts_records_messages_alerts_dead_letters_and_open_deadlines():
    tally = Tally()
    tally.count(RECORD)  # a deadline set for REF-2026-000123
    tally.count({**RECORD, "referral": "REF-B"})
    tally.count({**RECORD, "referral": "REF-B", "deadline": "2026-07-01T23:30:00Z",
                 "outcome_events": ["uk.nhs.podlink.meeting.first"]})  # met
    tally.count({**RECORD, "referral": "REF-C", "outcome_events": ["uk.nhs.podlink.episode.discharged"]})
    tally.count(REJECTED)
    tally.count(ALERT)
    tally.count({"event": "partitions assigned", "partitions": [0]})
    assert tally.figures() == (5, 4, 1, 1, 1)
    assert summary_line(tally, "2026-11-30T12:00:05Z", 200).plain == (
        "12:00:05  ── records 5 · FHIR messages 4 · open deadlines 1 · alerts 1 · dead letters 1")


def test_short_types_drop_the_contract_prefix_only():
    assert short_type("uk.nhs.pod.meeting.held") == "meeting.held"
    assert short_type("uk.nhs.podlink.sla.at-risk") == "sla.at-risk"
    assert short_type("unreadable") == "unreadable"


def test_the_view_renders_for_its_console_and_sums_up_only_when_something_changed():
    view = TerminalView(Console(file=io.StringIO(), width=60, color_system=None))
    line = view(None, "info", dict(RECORD))
    assert line.startswith("10:00:00  REF-2026-000123 referral.received") and len(line) <= 60
    summary = view(None, "info", {"event": SUMMARY, "timestamp": "2026-07-01T09:00:05Z"})
    assert "records 1" in summary
    with pytest.raises(structlog.DropEvent):
        view(None, "info", {"event": SUMMARY, "timestamp": "2026-07-01T09:00:10Z"})


@pytest.mark.parametrize("event", [RECORD, REJECTED, ALERT])
def test_each_part_keeps_its_own_style(event):
    # A line whose base style is the clock's dim, or the referral's bold, greys out everything.
    text = render_line(event, 200)
    assert text.style == ""
    assert not any(span.start == 0 and span.end == len(text.plain) for span in text.spans)


def test_deadlines_of_other_policies_show_when_they_fall_due_in_london_time():
    accepted = {**RECORD, "type": "uk.nhs.spa.referral.accepted", "deadline": None,
                "outcome_events": ["uk.nhs.podlink.referral.accepted"],
                "other_deadlines": {"risk-assessment": "2026-07-02T09:00:00+00:00",
                                    "cpa-coordinator": "2026-07-08T09:00:00+00:00"}}
    assert render_line(accepted, 200).plain == (
        "10:00:00  REF-2026-000123 referral.accepted  → FHIR message, risk assessment due Thu 02 Jul 10:00, "
        "cpa coordinator due Wed 08 Jul 10:00, referral.accepted")


def test_the_policies_in_force_and_the_index_are_one_line_each():
    policies = {"event": "policies in force", "level": "info", "timestamp": "2026-07-01T09:00:00Z",
                "source": "/etc/podlink/policies.yaml",
                "rules": ["first-meeting: from referral.received, due 24h", "high-risk-referral: hook x"]}
    assert render_line(policies, 200).plain == (
        "10:00:00  policies in force (/etc/podlink/policies.yaml): first-meeting, high-risk-referral")
    indexed = {"event": "deadlines indexed", "level": "info", "timestamp": "2026-07-01T09:00:00Z",
               "referrals": 1200, "recomputed": 3, "seconds": 0.41}
    assert render_line(indexed, 200).plain == (
        "10:00:00  deadlines indexed: 1200 referrals in 0.41 s, 3 worked out again under changed policies")
