"""Two rules a trust might add: a deadline and a flag, on podlink's hook interface.

A hook is a pure function: given the episode, one occurrence on its timeline and its time
(`given.now`), it returns effects. podlink runs every hook over the whole timeline in the order
events happened, so a hook must decide from the occurrence and the episode, never from the
wall clock or from anything it remembers between calls.
"""
from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

from podlink.streams.core.deadlines import LONDON
from podlink.streams.core.rules import (
    CancelDeadline, Effect, EmitOutcome, HookInput, MeetDeadline, OpenDeadline, RaiseFlag,
)

POLICY = "carer-contact-within-48h"
CLOSING = ("referral.rejected", "referral.withdrawn", "episode.discharged")


def carer_contact_within_48h(given: HookInput) -> Iterator[Effect]:
    """Once a referral is accepted, someone from the team speaks to the family within 48 hours."""
    occurrence = given.occurrence
    if occurrence.type == "referral.accepted":
        yield OpenDeadline(POLICY, given.now, given.now + timedelta(hours=48), timedelta(hours=12),
                           audience="team", severity="warning")
    elif occurrence.type == "contact.made" and POLICY in given.open_deadlines:
        yield MeetDeadline(POLICY, given.now)
    elif occurrence.type in CLOSING:
        yield CancelDeadline(POLICY, given.now)  # a hook's deadlines end when it says so


def weekend_discharge(given: HookInput) -> Iterator[Effect]:
    """A discharge from POD on a Saturday or Sunday (London time) is flagged to the team, and
    counted for the trust's own reporting."""
    occurrence = given.occurrence
    if occurrence.type == "episode.discharged" and given.now.astimezone(LONDON).weekday() >= 5:
        yield RaiseFlag("weekend-discharge", "team", "info", given.now, occurrence.key)
        yield EmitOutcome("trust.weekend-discharge", given.now, {"day": given.now.astimezone(LONDON).strftime("%A")},
                          (occurrence.key,))
