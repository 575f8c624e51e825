"""A deadline and the alerts it calls for, as pure functions of state and time.

Deadlines come from event times; whether an alert is due depends on the wall clock, which the
caller passes in (`now`), so tests can stand anywhere in time without sleeping.
"""
from __future__ import annotations

from datetime import datetime
from typing import Literal
from zoneinfo import ZoneInfo

from pydantic import BaseModel, ConfigDict


AlertKind = Literal["at-risk", "breached", "resolved"]
Audience = Literal["on-call", "team"]
# PagerDuty Events v2's severities, which on-call tools already map to urgency.
Severity = Literal["critical", "error", "warning", "info"]
FIRST_MEETING = "first-meeting"
LONDON = ZoneInfo("Europe/London")


class Deadline(BaseModel):
    model_config = ConfigDict(frozen=True)

    referral_id: str
    policy: str = FIRST_MEETING
    cycle: int = 0  # 0, 1, 2... for a policy that repeats (a CPA review after each review)
    audience: Audience = "on-call"
    severity: Severity = "critical"
    team_code: str | None
    starts_at: datetime
    due_at: datetime
    at_risk_from: datetime
    met_at: datetime | None = None
    closed_at: datetime | None = None

    @property
    def ended_at(self) -> datetime | None:
        """When the clock stopped: the first meeting, or else the referral's closing."""
        return self.met_at or self.closed_at

    @property
    def is_open(self) -> bool:
        return self.ended_at is None

    @property
    def met_within(self) -> bool | None:
        return None if self.met_at is None else self.met_at <= self.due_at


def due_alerts(deadline: Deadline, raised: frozenset[str], now: datetime) -> list[AlertKind]:
    """The alerts to raise now, given those already raised for this referral."""
    if not deadline.is_open:
        # A late meeting or a closed referral ends a breach that on-call staff were paged for.
        if "breached" in raised and "resolved" not in raised:
            return ["resolved"]
        return []
    if now >= deadline.due_at:
        return [] if "breached" in raised else ["breached"]
    if now >= deadline.at_risk_from:
        return [] if "at-risk" in raised or "breached" in raised else ["at-risk"]
    return []


def alert_due_at(deadline: Deadline, kind: AlertKind) -> datetime:
    """When an alert of `kind` became due: what its latency is measured from."""
    if kind == "at-risk":
        return deadline.at_risk_from
    if kind == "breached":
        return deadline.due_at
    return deadline.ended_at or deadline.due_at


def london(moment: datetime) -> str:
    return moment.astimezone(LONDON).isoformat()
