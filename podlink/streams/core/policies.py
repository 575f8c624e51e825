"""Deadline policies as the policy file declares them, each a rule of the deadline engine.

A policy opens a deadline when an event that starts it happens (and the referral matches its
conditions), meets it when an event that meets it happens at or after its start, and cancels it
when the referral closes. Its due time is a duration after the start, or a date the starting
event carries (such as `reviewDue`), or a duration chosen by a coded field (such as `level`).
"""
from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from dataclasses import field as dc_field
from datetime import datetime, timedelta, timezone
from functools import lru_cache
from typing import Literal

from dateutil.relativedelta import relativedelta

from podlink.streams.core.deadlines import LONDON, Audience, Severity
from podlink.streams.core.rules import (
    BringForward, CancelDeadline, Effect, HookInput, MeetDeadline, OpenDeadline,
)
from podlink.streams.core.timeline import Occurrence

Unit = Literal["m", "h", "d", "w", "mo"]
Conditions = Mapping[str, frozenset[object]]


@dataclass(frozen=True)
class Duration:
    """Minutes and hours are elapsed time; days, weeks and months are on the London calendar.

    So 24h after 09:00 on the Saturday before the clocks go forward is 10:00 on Sunday, while
    7d after a Monday 09:00 is the next Monday 09:00 whichever side of the change it falls.
    """

    amount: int
    unit: Unit

    def after(self, moment: datetime) -> datetime:
        return _after(self, moment)

    def _after(self, moment: datetime) -> datetime:
        if self.unit in ("m", "h"):
            minutes = self.amount * (60 if self.unit == "h" else 1)
            # In UTC, as the calendar units are: a kept answer must not depend on the zone
            # the moment it was worked out for happened to be written in.
            return (moment + timedelta(minutes=minutes)).astimezone(timezone.utc)
        local = moment.astimezone(LONDON)
        step = relativedelta(months=self.amount) if self.unit == "mo" else relativedelta(
            days=self.amount * (7 if self.unit == "w" else 1))
        # zoneinfo arithmetic keeps the wall-clock time; the offset follows the new date.
        return (local + step).astimezone(timezone.utc)

    def elapsed(self) -> timedelta:
        """As a length of time (warn_before): a calendar unit at its usual length."""
        hours = {"m": 1 / 60, "h": 1, "d": 24, "w": 168, "mo": 730}[self.unit]
        return timedelta(hours=self.amount * hours)

    def __str__(self) -> str:
        return f"{self.amount}{self.unit}"


# Every evaluation works out the same episodes' due times again (and calendar arithmetic in
# London time is the dearest part of it), so the last ones are kept.
@lru_cache(maxsize=16_384)
def _after(duration: Duration, moment: datetime) -> datetime:
    return duration._after(moment)


@dataclass(frozen=True)
class Trigger:
    event: str  # a contract type as the policy file names it: "risk.assessed"
    at: str | None = None  # the time field the clock starts from; None: when the event happened
    when: Conditions = dc_field(default_factory=dict)  # on the event's own coded fields
    within: Duration | None = None  # for brought_forward_by: due this long after it

    def matches(self, occurrence: Occurrence) -> bool:
        return occurrence.type == self.event and (not self.when or _holds(self.when, _fields(occurrence)))

    def start(self, occurrence: Occurrence) -> datetime:
        return occurrence.times.get(self.at, occurrence.at) if self.at else occurrence.at


@dataclass(frozen=True)
class Due:
    after: Duration | None = None
    field: str | None = None  # a date of the starting event that sets the due time when given
    by: str | None = None  # a coded field of the starting event that picks the duration
    after_by: Mapping[str, Duration] = dc_field(default_factory=dict)

    def at(self, occurrence: Occurrence, start: datetime) -> datetime | None:
        if self.field and self.field in occurrence.times:
            return occurrence.times[self.field]
        if self.by:
            chosen = self.after_by.get(occurrence.codes.get(self.by, ""))
            if chosen is not None:
                return chosen.after(start)
        return self.after.after(start) if self.after else None


@dataclass(frozen=True)
class DeadlinePolicy:
    name: str
    starts: tuple[Trigger, ...]
    met_by: frozenset[str]
    cancelled_by: frozenset[str]
    due: Due
    warn_before: Duration
    audience: Audience
    severity: Severity
    repeats: bool = False
    when: Conditions = dc_field(default_factory=dict)  # on the referral's coded fields
    brought_forward_by: tuple[Trigger, ...] = ()

    # Of the episode, a policy reads the referral alone (its `when`): see rules.reads_episode.
    episode_fields = frozenset({"referral"})

    @property
    def events(self) -> frozenset[str]:
        """Every occurrence type this policy has an effect on."""
        return self.met_by | self.cancelled_by | {t.event for t in (*self.starts, *self.brought_forward_by)}

    def __call__(self, given: HookInput) -> Iterator[Effect]:
        referral = given.episode.referral
        if referral is None or (self.when and not _holds(self.when, {name: getattr(referral, name, None)
                                                                    for name in self.when})):
            return
        occurrence = given.occurrence
        current = given.open_deadlines.get(self.name)
        if occurrence.type in self.cancelled_by:
            yield CancelDeadline(self.name, occurrence.at)
            return
        if current is not None and occurrence.type in self.met_by and occurrence.at >= current.starts_at:
            yield MeetDeadline(self.name, occurrence.at)
        for trigger in self.starts:
            if trigger.matches(occurrence):
                start = trigger.start(occurrence)
                due = self.due.at(occurrence, start)
                if due is not None:
                    yield self._opening(start, due)
        for trigger in self.brought_forward_by:
            if trigger.matches(occurrence) and trigger.within is not None:
                yield BringForward(self._opening(occurrence.at, trigger.within.after(occurrence.at)))

    def _opening(self, start: datetime, due: datetime) -> OpenDeadline:
        return OpenDeadline(self.name, start.astimezone(timezone.utc), due.astimezone(timezone.utc),
                            self.warn_before.elapsed(), self.audience, self.severity, self.repeats)


def _fields(occurrence: Occurrence) -> dict[str, object]:
    return {**occurrence.times, **occurrence.flags, **occurrence.codes}


def _holds(conditions: Conditions, values: Mapping[str, object]) -> bool:
    return all(values.get(name) in allowed for name, allowed in conditions.items())
