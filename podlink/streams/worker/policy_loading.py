"""The rules in force: the policy file (or the shipped default) with the hooks it names.

Hooks are found through the entry-point group `podlink.hooks`, so a trust's own package adds
rules without a change to podlink. Everything that can be wrong is found here, before the
worker joins its group, and told in one line.
"""
from __future__ import annotations

import dataclasses
import hashlib
from dataclasses import dataclass
from importlib.metadata import entry_points
from pathlib import Path

from podlink.streams.core.default_rules import HookFunction, rules_of
from podlink.streams.core.episode import Policy
from podlink.streams.core.policies import DeadlinePolicy
from podlink.streams.core.policy_file import (
    DEFAULT_POLICY_FILE, PolicyFile, PolicyFileError, default_policy_text, parse_policy_file,
)
from podlink.streams.core.rules import Rule

HOOK_GROUP = "podlink.hooks"


class PolicyError(Exception):
    """The policy file cannot be used; the message is the one line an operator reads."""


@dataclass(frozen=True)
class LoadedPolicy:
    policy: Policy
    source: str
    fingerprint: str  # changes whenever the rules in force change

    def summary(self) -> list[str]:
        return [describe(rule) for rule in self.policy.rules]


def load_policy(policy_file: Path | None, teams: frozenset[str] | None) -> LoadedPolicy:
    source = str(policy_file) if policy_file else f"(default) {DEFAULT_POLICY_FILE}"
    try:
        text = policy_file.read_text(encoding="utf-8") if policy_file else default_policy_text()
    except FileNotFoundError:
        raise PolicyError(f"{policy_file}: no such file (PODLINK_POLICY_FILE)") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise PolicyError(f"{policy_file}: cannot be read: {getattr(exc, 'strerror', None) or exc}") from None
    try:
        parsed = parse_policy_file(text, source)
    except PolicyFileError as exc:
        raise PolicyError(str(exc)) from None
    rules = rules_of(parsed, _hooks(parsed))
    return LoadedPolicy(Policy(teams=teams, rules=rules), source, fingerprint(rules))


def _hooks(parsed: PolicyFile) -> dict[str, HookFunction]:
    available = {ep.name: ep for ep in entry_points(group=HOOK_GROUP)}
    hooks: dict[str, HookFunction] = {}
    for setting in parsed.hooks:
        found = available.get(setting.name)
        if found is None:
            known = ", ".join(sorted(available)) or "none"
            raise PolicyError(f"{parsed.source}:{setting.line}: no installed package provides hook "
                              f"'{setting.name}' (entry-point group {HOOK_GROUP}; installed: {known})")
        try:
            hooks[setting.name] = found.load()
        except Exception as exc:  # noqa: BLE001 - a broken package is the operator's to fix
            raise PolicyError(f"{parsed.source}:{setting.line}: hook '{setting.name}' ({found.value}) "
                              f"cannot be loaded: {type(exc).__name__}") from None
        if not callable(hooks[setting.name]):
            raise PolicyError(f"{parsed.source}:{setting.line}: hook '{setting.name}' ({found.value}) "
                              "is not a function")
    return hooks


def fingerprint(rules: tuple[Rule, ...]) -> str:
    described = "\n".join(
        f"{r.name}|{_spelled(r.hook)}|{r.audience}|{r.severity}" if isinstance(r.hook, DeadlinePolicy)
        else f"{r.name}|{r.hook.__module__}.{r.hook.__qualname__}|{r.audience}|{r.severity}"
        for r in rules)
    return hashlib.sha256(described.encode()).hexdigest()[:16]


def _spelled(value: object) -> str:
    """`repr`, but with sets and mappings in sorted order: repr spells a frozenset's members in
    an order that depends on the process's hash seed, which gave every worker process another
    fingerprint, and so every stored deadline entry worked out again at each start."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return f"{type(value).__name__}(" + ", ".join(
            f"{f.name}={_spelled(getattr(value, f.name))}" for f in dataclasses.fields(value)) + ")"
    if isinstance(value, (set, frozenset)):
        return "{" + ", ".join(sorted(_spelled(v) for v in value)) + "}"
    if isinstance(value, dict):
        return "{" + ", ".join(sorted(f"{_spelled(k)}: {_spelled(v)}" for k, v in value.items())) + "}"
    if isinstance(value, (list, tuple)):
        return "(" + ", ".join(_spelled(v) for v in value) + ")"
    return repr(value)


def describe(rule: Rule) -> str:
    if isinstance(rule.hook, DeadlinePolicy):
        p = rule.hook
        due = p.due
        when = [str(due.after)] if due.after else []
        if due.field:
            when.insert(0, f"at {due.field}")
        if due.by:
            when.append(f"by {due.by} " + ", ".join(f"{k} {v}" for k, v in due.after_by.items()))
        starts = ", ".join(t.event for t in p.starts)
        return (f"{p.name}: from {starts}, due {' else '.join(when)}, warn {p.warn_before} before, "
                f"{'repeats, ' if p.repeats else ''}to {p.audience} ({p.severity})")
    return f"{rule.name}: hook {rule.hook.__module__}.{rule.hook.__qualname__}" + (
        f", to {rule.audience}" if rule.audience else "") + (f" ({rule.severity})" if rule.severity else "")
