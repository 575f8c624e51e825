"""podlink's own governance flags, written on the hook interface a trust's rules use.

Each is registered under the entry-point group `podlink.hooks` (pyproject.toml) and switched
on by name in the policy file, which may set another audience and severity for its flags.
"""
from __future__ import annotations

from collections.abc import Iterator

from podlink.streams.core.rules import Effect, HookInput, RaiseFlag, reacts_to, reads_episode

MEETINGS_BEFORE_NEW_MEDICATION = 3


@reacts_to("referral.received")
@reads_episode()
def high_risk_referral(given: HookInput) -> Iterator[Effect]:
    """A referral received with riskLevel high tells on-call at once."""
    occurrence = given.occurrence
    if occurrence.type == "referral.received" and occurrence.codes.get("riskLevel") == "high":
        # Only while open: a backlog replayed after the referral was closed pages nobody.
        yield RaiseFlag("high-risk-referral", "on-call", "critical", occurrence.at, occurrence.key,
                        only_while_open=True)


@reacts_to("medication.prescribed")
def medication_before_three_meetings(given: HookInput) -> Iterator[Effect]:
    """POD principle: at least three network meetings before new medication, unless an urgent
    safety need overrides it. Meetings count when they started before the prescription."""
    occurrence = given.occurrence
    if occurrence.type != "medication.prescribed" or not occurrence.flags.get("isNew"):
        return
    if occurrence.flags.get("urgentSafetyOverride"):
        return
    held = sum(1 for m in given.episode.held_meetings if m.start is not None and m.start < occurrence.at)
    if held < MEETINGS_BEFORE_NEW_MEDICATION:
        yield RaiseFlag("medication-before-three-meetings", "team", "warning", occurrence.at, occurrence.key)
