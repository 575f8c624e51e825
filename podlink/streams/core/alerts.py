"""SLA alerts for on-call staff, as CloudEvents on `pod.sla-alerts.v1`.

Each kind is raised at most once per referral and policy; the id is fixed by those, so a
consumer (PagerDuty's dedup_key, Alertmanager's fingerprint) sees one alert, not a storm.
"""
from __future__ import annotations

from datetime import datetime
from typing import Any

from podlink.streams.core.deadlines import FIRST_MEETING, AlertKind, Deadline, london
from podlink.streams.core.encoding import utc_text
from podlink.streams.core.ids import stable_id
from podlink.streams.core.outcomes import PREFIX, cloud_event, deadline_id_parts, minutes_between

ALERT_TYPES: dict[str, str] = {
    "at-risk": "sla.at-risk",
    "breached": "sla.breached",
    "resolved": "sla.resolved",
}
FLAG_TYPE = PREFIX + "governance.flagged"


def alert_event(deadline: Deadline, kind: AlertKind, now: datetime) -> dict[str, Any]:
    data: dict[str, Any] = {
        "policy": deadline.policy,
        "audience": deadline.audience,
        # A breach is the policy's severity; a warning before it, or the news that it is over, less.
        "severity": deadline.severity if kind == "breached" else ("warning" if kind == "at-risk" else "info"),
        "teamCode": deadline.team_code,
        "dueAt": utc_text(deadline.due_at),
        "dueAtLocal": london(deadline.due_at),
    }
    if deadline.policy == FIRST_MEETING:
        data |= {"deadline": utc_text(deadline.due_at), "deadlineLocal": london(deadline.due_at)}
    data |= {
        "deadlineStart": utc_text(deadline.starts_at),
        "cycle": deadline.cycle,
        "raisedAt": utc_text(now),
        "minutesPastDeadline": minutes_between(deadline.due_at, now),
    }
    if kind == "resolved":
        data["resolvedBy"] = _resolved_by(deadline)
        data["resolvedAt"] = utc_text(deadline.ended_at or now)
    return cloud_event(ALERT_TYPES[kind], deadline.referral_id, now, data, *deadline_id_parts(deadline))


def alert_id(deadline: Deadline, kind: AlertKind) -> str:
    """The id `alert_event` gives: what the alert ledger knows an alert by."""
    return stable_id(ALERT_TYPES[kind], deadline.referral_id, *deadline_id_parts(deadline))


def _resolved_by(deadline: Deadline) -> str:
    if deadline.met_at is None:
        return "referral-closed"
    return "meeting-held" if deadline.policy == FIRST_MEETING else "met"
