"""The rules in force when no policy file is given: the shipped file with podlink's own hooks."""
from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from functools import cache

from podlink.streams.core.builtin_hooks import high_risk_referral, medication_before_three_meetings
from podlink.streams.core.policy_file import PolicyFile, default_policy_text, parse_policy_file
from podlink.streams.core.rules import Effect, HookInput, Rule

HookFunction = Callable[[HookInput], Iterable[Effect]]
BUILTIN_HOOKS: Mapping[str, HookFunction] = {
    "high-risk-referral": high_risk_referral,
    "medication-before-three-meetings": medication_before_three_meetings,
}


def rules_of(policy_file: PolicyFile, hooks: Mapping[str, HookFunction]) -> tuple[Rule, ...]:
    """The file's policies, then its hooks, each found by name in `hooks` (KeyError if not)."""
    policies = tuple(Rule(p.name, p, reacts_to=p.events) for p in policy_file.policies)
    return policies + tuple(Rule(h.name, hooks[h.name], h.audience, h.severity) for h in policy_file.hooks)


@cache
def default_rules() -> tuple[Rule, ...]:
    return rules_of(parse_policy_file(default_policy_text(), "default_policies.yaml"), BUILTIN_HOOKS)
