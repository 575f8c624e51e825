"""Which referrals' alert ids the ledger may forget: only those that can no longer alert."""
from __future__ import annotations

from podlink.streams.core.alerts import alert_id
from podlink.streams.core.deadlines import Deadline
from podlink.streams.core.outcomes import flag_event
from podlink.streams.core.rules import Flag
from podlink.streams.pipeline.alert_settling import can_forget
from podlink.streams.pipeline.processor import Watch
from tests.support.episodes import T0, hours


def deadline(*, met: float | None = None, closed: float | None = None, policy: str = "first-meeting") -> Deadline:
    # Due 24 hours after T0.
    return Deadline(referral_id="REF-1", policy=policy, team_code=None, starts_at=T0, due_at=T0 + hours(24),
                    at_risk_from=T0 + hours(18), met_at=T0 + hours(met) if met is not None else None,
                    closed_at=T0 + hours(closed) if closed is not None else None)


def flag(only_while_open: bool) -> Flag:
    return Flag("REF-1", None, "high-risk-referral", "on-call", "critical", T0, "spa\x1fe-1", only_while_open)


def held(*ids: str):
    return lambda alert: alert in ids


BREACH = alert_id(deadline(), "breached")
RESOLVED = alert_id(deadline(), "resolved")


def test_an_open_referral_is_never_forgotten_even_with_nothing_left_to_alert():
    assert not can_forget(Watch((), (), closed=False), held())


def test_a_closed_referral_with_nothing_watched_is_forgotten():
    # E.g. warned at risk, met in time (the deadline leaves the watch), then discharged.
    assert can_forget(Watch((), (), closed=True), held(alert_id(deadline(), "at-risk")))


def test_a_closed_referral_whose_breach_was_resolved_is_forgotten():
    ended_late = deadline(closed=30)
    assert can_forget(Watch((ended_late,), (), closed=True), held(BREACH, RESOLVED))


def test_a_breach_still_to_be_resolved_keeps_the_referral():
    # Closed at 30 hours, after its breach was raised: the resolution has not gone out yet, and
    # forgetting the breach would mean it never does.
    assert not can_forget(Watch((deadline(closed=30),), (), closed=True), held(BREACH))


def test_a_closed_late_deadline_never_breached_is_forgotten():
    # Ended after its due time with no breach raised (the worker was behind): nothing to resolve.
    assert can_forget(Watch((deadline(closed=30),), (), closed=True), held())


def test_a_deadline_still_open_on_a_closed_referral_keeps_it():
    # A post-discharge follow-up is not cancelled by the discharge that closes the episode.
    follow_up = deadline(policy="post-discharge-follow-up")
    assert not can_forget(Watch((deadline(closed=30), follow_up), (), closed=True), held(BREACH, RESOLVED))


def test_a_flag_that_alerts_only_while_open_lets_a_closed_referral_go():
    assert can_forget(Watch((), (flag(True),), closed=True), held(flag_event(flag(True))["id"]))


def test_a_flag_that_alerts_after_closing_keeps_the_referral_raised_or_not():
    # A later record rewrites the entry, and a flag that alerts whenever the ledger lacks its id
    # would page again.
    raised_flag = flag(False)
    assert not can_forget(Watch((), (raised_flag,), closed=True), held(flag_event(raised_flag)["id"]))
    assert not can_forget(Watch((), (raised_flag,), closed=True), held())
