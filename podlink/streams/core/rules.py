"""The deadline engine: rules read an episode's timeline and say which deadlines and flags it has.

A rule (a hook) is a pure function of the episode, one occurrence on its timeline and that
occurrence's time (the clock the rule reads), returning effects. Deadline policies from the
policy file are rules; so are the built-in flags, and so is any rule a trust adds in its own
package (entry-point group `podlink.hooks`). `evaluate` runs every rule over the whole timeline
in the order events happened, so the result depends on what happened, not on the order records
were read, and a changed rule set applies to the past as well.

A rule that raises is isolated: its effects for that occurrence are dropped, the failure is
returned (rule name and exception type, nothing of the episode) and everything else goes on.
"""
from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Protocol, TypeVar, Union

from podlink.streams.core.deadlines import Audience, Deadline, Severity
from podlink.streams.core.timeline import Occurrence, in_order

if TYPE_CHECKING:
    from podlink.streams.core.episode import Episode


@dataclass(frozen=True)
class OpenDeadline:
    """Start a deadline of `policy` (a new cycle if the policy repeats and the last one closed)."""

    policy: str
    starts_at: datetime
    due_at: datetime
    warn_before: timedelta
    audience: Audience
    severity: Severity
    repeats: bool = False


@dataclass(frozen=True)
class MeetDeadline:
    policy: str
    at: datetime


@dataclass(frozen=True)
class CancelDeadline:
    """Close the policy's open deadline unmet; the policy opens no more for this episode."""

    policy: str
    at: datetime


@dataclass(frozen=True)
class BringForward:
    """Make the policy's open deadline due by `due_at` at the latest, opening one if none is."""

    opening: OpenDeadline


@dataclass(frozen=True)
class RaiseFlag:
    rule: str
    audience: Audience
    severity: Severity
    at: datetime
    cause: str  # the occurrence that raised it: one flag per rule and cause
    # Not worth a page once the referral has closed (a replayed backlog that closes it later).
    only_while_open: bool = False


@dataclass(frozen=True)
class EmitOutcome:
    """An outcome event of a trust's own (`uk.nhs.podlink.<kind>`), once per id parts."""

    kind: str
    at: datetime
    data: Mapping[str, Any]
    id_parts: tuple[str, ...]


Effect = Union[OpenDeadline, MeetDeadline, CancelDeadline, BringForward, RaiseFlag, EmitOutcome]


@dataclass(frozen=True)
class HookInput:
    episode: Episode
    occurrence: Occurrence
    # The deadlines open just before this occurrence, by policy.
    open_deadlines: Mapping[str, Deadline]

    @property
    def now(self) -> datetime:
        """The rule's clock: when the occurrence happened (never the wall clock)."""
        return self.occurrence.at


class Hook(Protocol):
    def __call__(self, given: HookInput) -> Iterable[Effect]: ...


HookT = TypeVar("HookT", bound=Callable[..., Any])


def reacts_to(*types: str) -> Callable[[HookT], HookT]:
    """Declare the only occurrence types a hook can have an effect on (`@reacts_to("x.y")`).

    Optional: evaluation then skips the hook for every other occurrence, which is most of them.
    """
    def declare(hook: HookT) -> HookT:
        hook.reacts_to = frozenset(types)  # type: ignore[attr-defined]  # read back by Rule
        return hook
    return declare


def reads_episode(*fields: str) -> Callable[[HookT], HookT]:
    """Declare the only fields of `HookInput.episode` a hook reads (none: the occurrence and the
    open deadlines alone). Optional: an episode that an event only extends is then evaluated
    from the previous evaluation while those fields are unchanged (`evaluate`'s `since`)."""
    def declare(hook: HookT) -> HookT:
        hook.episode_fields = frozenset(fields)  # type: ignore[attr-defined]  # read back by Rule
        return hook
    return declare


@dataclass(frozen=True)
class Rule:
    name: str
    hook: Callable[[HookInput], Iterable[Effect]]
    # Set in the policy file: who the rule's flags go to, whatever the rule says.
    audience: Audience | None = None
    severity: Severity | None = None
    # The occurrence types the rule can have an effect on: a policy's events, or what a hook
    # declared with @reacts_to; None, every type.
    reacts_to: frozenset[str] | None = None
    # The fields of the episode the hook reads (`reads_episode`); None, any of them.
    episode_fields: frozenset[str] | None = None

    def __post_init__(self) -> None:
        if self.reacts_to is None:
            object.__setattr__(self, "reacts_to", getattr(self.hook, "reacts_to", None))
        if self.episode_fields is None:
            object.__setattr__(self, "episode_fields", getattr(self.hook, "episode_fields", None))

    def effects(self, given: HookInput) -> list[Effect]:
        effects = list(self.hook(given))
        if self.audience is None and self.severity is None:
            return effects
        return [replace(e, audience=self.audience or e.audience, severity=self.severity or e.severity)
                if isinstance(e, RaiseFlag) else e for e in effects]


@dataclass(frozen=True)
class Flag:
    referral_id: str
    team_code: str | None
    rule: str
    audience: Audience
    severity: Severity
    at: datetime
    cause: str
    only_while_open: bool


@dataclass(frozen=True)
class Outcome:
    kind: str
    at: datetime
    data: Mapping[str, Any]
    id_parts: tuple[str, ...]


@dataclass(frozen=True)
class RuleFailure:
    rule: str
    error: str  # the exception's type name only: its message may quote patient data
    cause: str  # the occurrence it failed on (the inbound event's dedup key)


@dataclass(frozen=True)
class Evaluation:
    deadlines: tuple[Deadline, ...] = ()
    flags: tuple[Flag, ...] = ()
    outcomes: tuple[Outcome, ...] = ()
    failures: tuple[RuleFailure, ...] = ()
    # Where the evaluation ended, for one of an extended episode to go on from (`since`).
    _end: _End | None = field(default=None, compare=False, repr=False)

    def deadline(self, policy: str) -> Deadline | None:
        """The policy's latest deadline (the open one, if one is)."""
        found = [d for d in self.deadlines if d.policy == policy]
        return found[-1] if found else None


@dataclass
class _Book:
    referral_id: str
    team_code: str | None
    deadlines: dict[tuple[str, int], Deadline] = field(default_factory=dict)
    cancelled: set[str] = field(default_factory=set)
    flags: dict[tuple[str, str], Flag] = field(default_factory=dict)
    outcomes: dict[tuple[str, tuple[str, ...]], Outcome] = field(default_factory=dict)
    failures: list[RuleFailure] = field(default_factory=list)
    # open() is asked once per rule and occurrence, and changes only when a deadline does.
    _open_now: Mapping[str, Deadline] | None = None

    def copy(self) -> _Book:
        return _Book(self.referral_id, self.team_code, dict(self.deadlines), set(self.cancelled),
                     dict(self.flags), dict(self.outcomes), list(self.failures))

    def open(self) -> Mapping[str, Deadline]:
        if self._open_now is None:
            self._open_now = MappingProxyType({d.policy: d for d in self.deadlines.values() if d.is_open})
        return self._open_now

    def apply(self, effect: Effect) -> None:
        self._apply(effect)
        if not isinstance(effect, (RaiseFlag, EmitOutcome)):
            self._open_now = None  # after the change: _apply itself reads open()

    def _apply(self, effect: Effect) -> None:
        match effect:
            case OpenDeadline():
                self._open(effect)
            case MeetDeadline():
                self._close(effect.policy, met_at=effect.at)
            case CancelDeadline():
                self._close(effect.policy, closed_at=effect.at)
                self.cancelled.add(effect.policy)
            case BringForward():
                current = self.open().get(effect.opening.policy)
                if current is None:
                    self._open(effect.opening)
                elif effect.opening.due_at < current.due_at:
                    earlier = current.model_copy(update={
                        "due_at": effect.opening.due_at,
                        "at_risk_from": effect.opening.due_at - effect.opening.warn_before,
                    })
                    self.deadlines[(current.policy, current.cycle)] = earlier
            case RaiseFlag():
                self.flags.setdefault((effect.rule, effect.cause), Flag(
                    self.referral_id, self.team_code, effect.rule, effect.audience, effect.severity, effect.at,
                    effect.cause, effect.only_while_open))
            case EmitOutcome():
                self.outcomes.setdefault((effect.kind, effect.id_parts), Outcome(
                    effect.kind, effect.at, dict(effect.data), effect.id_parts))

    def _open(self, opening: OpenDeadline) -> None:
        if opening.policy in self.cancelled or opening.policy in self.open():
            return
        cycles = [cycle for policy, cycle in self.deadlines if policy == opening.policy]
        if cycles and not opening.repeats:
            return
        cycle = max(cycles) + 1 if cycles else 0
        self.deadlines[(opening.policy, cycle)] = Deadline(
            referral_id=self.referral_id, policy=opening.policy, cycle=cycle,
            audience=opening.audience, severity=opening.severity, team_code=self.team_code,
            starts_at=opening.starts_at, due_at=opening.due_at,
            at_risk_from=opening.due_at - opening.warn_before,
        )

    def _close(self, policy: str, *, met_at: datetime | None = None, closed_at: datetime | None = None) -> None:
        current = self.open().get(policy)
        if current is not None:
            self.deadlines[(policy, current.cycle)] = current.model_copy(
                update={"met_at": met_at, "closed_at": closed_at})


class _Reacting:
    """The rules that react to each occurrence type, in the rules' order: worked out once per
    type rather than asked of every rule at every occurrence of every evaluation."""

    last: _Reacting | None = None  # a worker evaluates under one set of rules

    @classmethod
    def of(cls, rules: tuple[Rule, ...]) -> _Reacting:
        last = cls.last
        if last is None or last._rules is not rules:
            last = cls.last = cls(rules)
        return last

    def __init__(self, rules: tuple[Rule, ...]) -> None:
        self._rules = rules
        self._by_type: dict[str, tuple[Rule, ...]] = {}

    def to(self, occurrence_type: str) -> tuple[Rule, ...]:
        found = self._by_type.get(occurrence_type)
        if found is None:
            found = self._by_type[occurrence_type] = tuple(
                rule for rule in self._rules if rule.reacts_to is None or occurrence_type in rule.reacts_to)
        return found


@dataclass(frozen=True)
class _End:
    """An evaluation's last state: its book (read only: copied to go on), the rules it ran
    under, the episode it evaluated, the last occurrence in time order, and the fields of the
    episode its rules read (None: any)."""

    book: _Book
    rules: tuple[Rule, ...]
    episode: Episode
    last: tuple[datetime, str]
    read: frozenset[str] | None


def evaluate(episode: Episode, rules: Iterable[Rule], since: Evaluation | None = None) -> Evaluation:
    """The episode's deadlines, flags, outcomes and rule failures under `rules`.

    `since`: the evaluation of an earlier state of this episode, if known. When the episode is
    that state with one occurrence added after every other in time, and nothing the rules read
    of the episode has changed, only the new occurrence is folded in: the result is the one
    running every rule over the whole timeline gives, as every earlier occurrence meets the
    same rules, episode fields and open deadlines again. When no rule reacts to the added
    occurrence, it may fall anywhere in time (a measure recorded before the last meeting): the
    result is `since`'s.
    """
    rules = tuple(rules)
    if episode.referral is None:
        return Evaluation()
    reacting = _Reacting.of(rules)
    end = since._end if since is not None else None
    added = _added(end, episode, rules) if end is not None else None
    if since is not None and end is not None and added is not None and not reacting.to(added.type):
        # No rule reacts to the added occurrence, so wherever it falls in time every other one
        # meets the same rules, episode fields and open deadlines again: nothing changes.
        last = max(end.last, (added.at, added.key))
        return replace(since, _end=replace(end, episode=episode, last=last))
    if end is not None and added is not None and (added.at, added.key) > end.last:
        book, read = end.book.copy(), end.read
        timeline = [added]
    else:
        book, read = _Book(episode.referral_id, episode.team_code), frozenset()
        timeline = in_order(episode.timeline)
    for occurrence in timeline:
        for rule in reacting.to(occurrence.type):
            given = HookInput(episode, occurrence, book.open())
            if read is not None:
                read = None if rule.episode_fields is None else read | rule.episode_fields
            try:
                effects = rule.effects(given)
            except Exception as exc:  # noqa: BLE001 - a trust's rule must not stop podlink's
                book.failures.append(RuleFailure(rule.name, type(exc).__name__, occurrence.key))
                continue
            for effect in effects:
                book.apply(effect)
    ordered = sorted(book.deadlines.values(), key=lambda d: (d.policy, d.cycle))
    last = timeline[-1] if timeline else None
    return Evaluation(tuple(ordered), tuple(book.flags.values()), tuple(book.outcomes.values()),
                      tuple(dict.fromkeys(book.failures)),
                      _End(book, rules, episode, (last.at, last.key), read) if last is not None else None)


def _added(end: _End, episode: Episode, rules: tuple[Rule, ...]) -> Occurrence | None:
    """The occurrence `episode` adds to `end.episode`, if that is all the rules can tell apart:
    one occurrence more (at any time), under the same rules, with the same referral (the
    book's team code is its) and the same fields its rules read. None otherwise."""
    before = end.episode
    if end.rules is not rules or end.read is None or episode.referral_id != before.referral_id:
        return None
    if len(episode.timeline) != len(before.timeline) + 1 or episode.timeline[:-1] != before.timeline:
        return None
    if not all(getattr(episode, name) == getattr(before, name) for name in end.read | {"referral"}):
        return None
    return episode.timeline[-1]
