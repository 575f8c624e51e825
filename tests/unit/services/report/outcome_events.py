"""Outcome events in the shapes podlink publishes (docs/outcome-events.md, and the lead's
`deadline.met`, `deadline.missed` and `governance.flagged`), built with the worker's own
`cloud_event`, for the report's unit tests."""
from __future__ import annotations

import json
from datetime import datetime, timedelta
from typing import Any

from podlink.services.report.events import OutcomeEvent, parse
from podlink.streams.core.encoding import utc_text
from podlink.streams.core.outcomes import cloud_event

T0 = datetime.fromisoformat("2026-03-02T09:00:00+00:00")


def at(hours: float = 0) -> datetime:
    return T0 + timedelta(hours=hours)


def parsed(event: dict[str, Any]) -> OutcomeEvent:
    result = parse(json.dumps(event))
    assert isinstance(result, OutcomeEvent), result
    return result


def registered(ref: str, team: str = "POD-KENT", received: datetime = T0) -> dict[str, Any]:
    return cloud_event("referral.registered", ref, received, {
        "teamCode": team, "odsCode": "RXY", "source": "crisis_team", "urgency": "urgent",
        "riskLevel": "medium", "cpaRequired": False, "networkSize": 2, "receivedAt": utc_text(received),
        "deadline": utc_text(received + timedelta(hours=24))})


def accepted(ref: str, team: str = "POD-KENT") -> dict[str, Any]:
    return cloud_event("referral.accepted", ref, at(0.5), {
        "teamCode": team, "acceptedAt": utc_text(at(0.5)), "allocatedRole": "nurse"})


def closed(ref: str, outcome: str) -> dict[str, Any]:
    return cloud_event("referral.closed", ref, at(1), {"outcome": outcome, "closedAt": utc_text(at(1))})


def discharged(ref: str) -> dict[str, Any]:
    return cloud_event("episode.discharged", ref, at(900), {
        "dischargedAt": utc_text(at(900)), "sharedDecision": True, "occupationAtDischarge": None,
        "meetingsHeld": 3, "bedDays": 0})


def contact_first(ref: str, minutes: int | None) -> dict[str, Any]:
    return cloud_event("contact.first", ref, at(1), {
        "contactAt": utc_text(at(1)), "method": "phone", "staffRole": "nurse",
        "outcome": "meeting_arranged", "minutesFromReferral": minutes})


def meeting_first(ref: str, minutes: int, within: bool) -> dict[str, Any]:
    start = T0 + timedelta(minutes=minutes)
    return cloud_event("meeting.first", ref, start, {
        "meetingId": "MTG-1", "start": utc_text(start), "policy": "first-meeting",
        "deadline": utc_text(at(24)), "withinDeadline": within, "minutesFromDeadlineStart": minutes})


def meeting_held(ref: str, meeting_id: str, hours: float = 2, network: dict[str, int] | None = None,
                 staff: dict[str, int] | None = None, service_user: int = 1,
                 adherence: float | None = None) -> dict[str, Any]:
    network = network or {}
    staff = {"nurse": 1} if staff is None else staff
    start = at(hours)
    return cloud_event("meeting.held", ref, start, {
        "meetingId": meeting_id, "meetingNumber": 1, "start": utc_text(start),
        "end": utc_text(start + timedelta(hours=1)), "durationMinutes": 60, "location": "home",
        "attendance": {"service_user": service_user, "network_member": sum(network.values()),
                       "staff": sum(staff.values())},
        "networkMembersByRelationship": network, "staffByRole": staff, "adherenceScore": adherence,
    }, meeting_id)


def measure(ref: str, instrument: str, timepoint: str, score: float, hours: float = 3,
            metric: float | None = None, respondent: str = "service_user", person: str = "") -> dict[str, Any]:
    scores: dict[str, float] = {"meanScore": score} if instrument == "CMHS" else {"totalScore": score}
    if metric is not None:
        scores["metricScore"] = metric
    return cloud_event("measure.recorded", ref, at(hours), {
        "instrument": instrument, "timepoint": timepoint, "respondent": respondent,
        "recordedAt": utc_text(at(hours)), "itemCount": 7, **scores,
    }, instrument, timepoint, utc_text(at(hours)), respondent, person)


def medication(ref: str, is_new: bool, override: bool | None, before: int, hours: float = 100,
               inbound_id: str = "rx-1") -> dict[str, Any]:
    return cloud_event("medication.prescribed", ref, at(hours), {
        "prescribedAt": utc_text(at(hours)), "isNew": is_new, "urgentSafetyOverride": override,
        "meetingsHeldBefore": before}, "urn:nhs:ods:RXY:pod-record", inbound_id)


def deadline_met(ref: str, policy: str, minutes_early: int = 30) -> dict[str, Any]:
    due = at(24)
    return cloud_event("deadline.met", ref, due - timedelta(minutes=minutes_early), {
        "policy": policy, "startedAt": utc_text(T0), "dueAt": utc_text(due),
        "metAt": utc_text(due - timedelta(minutes=minutes_early)), "minutesEarly": minutes_early,
    }, policy, utc_text(due))


def deadline_missed(ref: str, policy: str, met_at: datetime | None = None, minutes_late: int = 0) -> dict[str, Any]:
    """Same id for the same deadline, whether published when it passed or when met late."""
    due = at(24)
    return cloud_event("deadline.missed", ref, met_at or due, {
        "policy": policy, "startedAt": utc_text(T0), "dueAt": utc_text(due),
        "metAt": utc_text(met_at) if met_at else None, "minutesLate": minutes_late,
    }, policy, utc_text(due))


def flagged(ref: str, rule: str) -> dict[str, Any]:
    return cloud_event("governance.flagged", ref, at(2), {
        "rule": rule, "audience": "team-manager", "severity": "warning", "teamCode": "POD-KENT",
        "raisedAt": utc_text(at(2))}, rule)
