"""Who is told about an alert, and when: pure functions of (escalation state, rota, now).

No clock is read here: the service passes `now` in, and the tests pass the moments they want
(a Tuesday night, a bank holiday, the Sunday the clocks go back). Every decision returns the new
state and the pages to send; the service sends them and keeps the state.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime
from typing import Literal

from podlink.services.notify.alerts import Alert
from podlink.services.notify.rota import Rota, Term, Tier

Status = Literal["open", "acknowledged", "resolved", "superseded"]


class Conflict(ValueError):
    """The change asked for does not apply to the alert in its present state (HTTP 409)."""


@dataclass(frozen=True)
class Page:
    """One message to one contact: `purpose` is `alert`, `repeat-N`, `resolved` or `acknowledged`."""

    contact: str
    purpose: str


@dataclass(frozen=True)
class Escalation:
    alert: Alert
    status: Status
    tier: int | None  # index in the audience's tiers of the tier paged last; None: nobody on duty
    tier_paged_at: datetime | None
    last_paged_at: datetime | None
    repeats: int = 0
    paged: tuple[str, ...] = ()  # every contact paged so far, in order
    failed: frozenset[str] = frozenset()  # contacts of the current tier whose every channel failed
    acknowledged_by: str | None = None
    acknowledged_at: datetime | None = None
    closed_at: datetime | None = None
    closed_reason: str | None = None


def on_duty(tier: Tier, rota: Rota, now: datetime) -> bool:
    """Whether `tier` is on duty at `now`, by the rota's local clock (Europe/London)."""
    local = now.astimezone(rota.timezone)
    return any(_term_covers(term, rota, local) for term in tier.when)


def _term_covers(term: Term, rota: Rota, local: datetime) -> bool:
    day, clock = local.date(), local.time()
    holiday = day in rota.bank_holidays
    days_match = {
        None: True,
        "weekdays": local.weekday() < 5 and not holiday,
        "weekends": local.weekday() >= 5,
        "bank holidays": holiday,
        "nights": rota.nights.covers(clock),
    }[term.days]
    return days_match and (term.hours is None or term.hours.covers(clock))


def _next_on_duty(tiers: tuple[Tier, ...], after: int, rota: Rota, now: datetime) -> int | None:
    return next((i for i in range(after + 1, len(tiers)) if on_duty(tiers[i], rota, now)), None)


def _page_tier(esc: Escalation, tiers: tuple[Tier, ...], index: int, now: datetime, purpose: str
               ) -> tuple[Escalation, list[Page]]:
    contacts = tiers[index].contacts
    paged = esc.paged + tuple(c for c in contacts if c not in esc.paged)
    return (replace(esc, tier=index, tier_paged_at=now, last_paged_at=now, paged=paged, failed=frozenset()),
            [Page(c, purpose) for c in contacts])


def open_escalation(alert: Alert, rota: Rota, now: datetime) -> tuple[Escalation, list[Page]]:
    """A new alert goes to the first tier of its audience on duty at `now`.

    With nobody on duty (or no tier for the audience) it stays open with no page: the service
    reports that as a failure, so nobody assumes someone was told.
    """
    start = Escalation(alert=alert, status="open", tier=None, tier_paged_at=None, last_paged_at=None)
    tiers = rota.tiers.get(alert.audience, ())
    first = _next_on_duty(tiers, -1, rota, now)
    if first is None:
        return start, []
    return _page_tier(start, tiers, first, now, "alert")


def tick(esc: Escalation, rota: Rota, now: datetime) -> tuple[Escalation, list[Page]]:
    """What is due at `now` for an open alert: the next tier on duty once the current tier's
    `escalate_after` has passed without an acknowledgement (at once when one of its contacts
    could not be reached on any channel), else the current tier again every `repeat_every`."""
    if esc.status != "open":
        return esc, []
    tiers = rota.tiers.get(esc.alert.audience, ())
    if esc.tier is None:
        first = _next_on_duty(tiers, -1, rota, now)
        return _page_tier(esc, tiers, first, now, "alert") if first is not None else (esc, [])
    tier = tiers[esc.tier] if esc.tier < len(tiers) else None
    assert esc.tier_paged_at is not None and esc.last_paged_at is not None
    unreachable = bool(tier and esc.failed & set(tier.contacts))
    waited = tier is not None and tier.escalate_after is not None and now >= esc.tier_paged_at + tier.escalate_after
    if unreachable or waited:
        following = _next_on_duty(tiers, esc.tier, rota, now)
        if following is not None:
            return _page_tier(esc, tiers, following, now, "alert")
    if tier is not None and now >= esc.last_paged_at + rota.repeat_every:
        repeats = esc.repeats + 1
        return (replace(esc, last_paged_at=now, repeats=repeats),
                [Page(c, f"repeat-{repeats}") for c in tier.contacts])
    return esc, []


def contact_unreachable(esc: Escalation, contact: str) -> Escalation:
    """Every channel of `contact` failed for this alert: the next tick escalates without waiting."""
    return replace(esc, failed=esc.failed | {contact})


def acknowledge(esc: Escalation, who: str, now: datetime) -> Escalation:
    """Stops escalation. Raises Conflict for an alert already resolved or acknowledged."""
    if esc.status in ("resolved", "superseded"):
        raise Conflict("the alert is resolved")
    if esc.status == "acknowledged":
        raise Conflict(f"the alert was acknowledged by {esc.acknowledged_by}")
    return replace(esc, status="acknowledged", acknowledged_by=who, acknowledged_at=now)


def acknowledged_pages(esc: Escalation) -> list[Page]:
    """After an acknowledgement: whoever was paged has their PagerDuty incident resolved."""
    return [Page(c, "acknowledged") for c in esc.paged]


def resolve(esc: Escalation, reason: str, now: datetime) -> tuple[Escalation, list[Page]]:
    """Stops escalation and tells everyone who was paged that it is over. Raises Conflict when
    the alert is already resolved."""
    if esc.status in ("resolved", "superseded"):
        raise Conflict("the alert is resolved")
    return (replace(esc, status="resolved", closed_at=now, closed_reason=reason),
            [Page(c, "resolved") for c in esc.paged])


def supersede(esc: Escalation, now: datetime) -> Escalation:
    """An at-risk alert whose deadline has now been breached: the breach escalates from here on
    (it is paged anew as an alert of its own), the warning stops."""
    if esc.status != "open" and esc.status != "acknowledged":
        return esc
    return replace(esc, status="superseded", closed_at=now, closed_reason="breached")
