"""The report's figures, computed from the outcome events of the referrals in scope.

Pure functions: events in, JSON-ready dicts out (docs/report.md names every key). Counts of
meetings count meetings, not people: a meeting with two friends counts once under friends, and
a meeting with a friend and a sibling counts under both, as the Kent study's attendance table did.
"""
from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any

from podlink.services.report.collect import Cohort, Scope, cohort, collect
from podlink.services.report.events import OutcomeEvent, Skipped, score_field
from podlink.services.report.stats import pct, quartiles, summary
from podlink.streams.core.encoding import utc_text

CATEGORIES = ("spouse_or_partner", "one_parent", "both_parents", "friends",
              "children_or_other_relatives", "siblings", "others")
# The contract's relationships, grouped as the Kent study's table (parents apart: by count).
_CATEGORY = {"spouse_or_partner": "spouse_or_partner", "friend": "friends",
             "child": "children_or_other_relatives", "other_relative": "children_or_other_relatives",
             "sibling": "siblings", "carer": "others", "neighbour": "others", "other": "others"}
INSTRUMENTS = ("SWEMWBS", "WSAS", "HONOS", "CWS", "CMHS")
TIMEPOINTS = ("baseline", "3_months", "6_months", "discharge")
POLICIES = ("first-meeting", "first-contact", "risk-assessment", "risk-review", "cpa-coordinator",
            "cpa-review", "post-discharge-follow-up")
# Hours from the deadline's start, for the distribution of time to first meeting.
HOUR_BINS = ((0, 6), (6, 12), (12, 18), (18, 24), (24, 48), (48, 72), (72, None))
FIRST_TWO_WEEKS = 14
DAILY_ENOUGH = 10  # meetings on at least this many of the first 14 days
WITHIN_HOURS = 24  # POD's immediate help: the first meeting within 24 hours of the referral
MEETINGS_BEFORE_MEDICATION = 3


def build_report(records: Iterable[OutcomeEvent | Skipped], scope: Scope = Scope()) -> dict[str, Any]:
    """The whole report from parsed records (skipped ones counted)."""
    skipped: Counter[str] = Counter()

    def events() -> Iterable[OutcomeEvent]:
        for record in records:
            if isinstance(record, Skipped):
                skipped[record.reason] += 1
            else:
                yield record

    collected = collect(events())
    return {
        "scope": {"team": scope.team, "since": _text(scope.since), "until": _text(scope.until)},
        "eventsRead": len(collected.seen) + collected.duplicates + sum(skipped.values()),
        "duplicates": collected.duplicates,
        "skipped": sum(skipped.values()),
        "skippedReasons": dict(sorted(skipped.items())),
        **figures(cohort(collected, scope)),
    }


def figures(c: Cohort) -> dict[str, Any]:
    held = c.of("meeting.held")
    meetings = attendance(held)
    return {
        "referrals": referrals(c),
        "firstMeeting": first_meeting(c.of("meeting.first")),
        "firstContact": first_contact(c.of("contact.first"), c.of("deadline.met"), c.of("deadline.missed")),
        **meetings,
        "meetingsPerReferral": meetings_per_referral(held),
        "adherence": summary([e.data["adherenceScore"] for e in held if e.data["adherenceScore"] is not None]),
        "measures": measures(c.of("measure.recorded")),
        "governance": governance(c.of("deadline.met"), c.of("deadline.missed")),
        "governanceFlags": _sorted_counts(Counter(e.data["rule"] for e in c.of("governance.flagged"))),
        "fidelity": fidelity(c, meetings),
    }


def referrals(c: Cohort) -> dict[str, int]:
    closed = {e.referral_id: e.data["outcome"] for e in c.of("referral.closed")}
    return {
        "registered": len(c.registered),
        "accepted": len({e.referral_id for e in c.of("referral.accepted")}),
        "closed": len(closed),
        "rejected": sum(1 for outcome in closed.values() if outcome == "rejected"),
        "withdrawn": sum(1 for outcome in closed.values() if outcome == "withdrawn"),
        "discharged": len({e.referral_id for e in c.of("episode.discharged")}),
    }


def first_meeting(firsts: list[OutcomeEvent]) -> dict[str, Any]:
    minutes = [e.data["minutesFromDeadlineStart"] for e in firsts]
    within = sum(1 for e in firsts if e.data["withinDeadline"])
    return {
        "n": len(firsts), "withinDeadline": within, "withinDeadlinePct": pct(within, len(firsts)),
        "minutesFromStart": quartiles(sorted(minutes)),
        "hoursFromStart": [{"from": low, "to": high, "n": sum(1 for m in minutes if _in_bin(m, low, high))}
                           for low, high in HOUR_BINS],
    }


def _in_bin(minutes: int, low: int, high: int | None) -> bool:
    # The first bin takes a meeting before the deadline's start too (negative minutes).
    return (low == 0 or minutes >= low * 60) and (high is None or minutes < high * 60)


def first_contact(contacts: list[OutcomeEvent], met: list[OutcomeEvent],
                  missed: list[OutcomeEvent]) -> dict[str, Any]:
    """First contacts; within the deadline only where the first-contact policy published its
    deadlines (absent otherwise: unknown, not none)."""
    minutes = [e.data["minutesFromReferral"] for e in contacts if e.data["minutesFromReferral"] is not None]
    result: dict[str, Any] = {"n": len(contacts), "minutesFromReferral": quartiles(sorted(minutes))}
    on_time = {e.referral_id for e in met if e.data["policy"] == "first-contact"}
    if on_time or any(e.data["policy"] == "first-contact" for e in missed):
        within = len(on_time & {e.referral_id for e in contacts})
        result |= {"withinDeadline": within, "withinDeadlinePct": pct(within, len(contacts))}
    return result


def relationship_categories(by_relationship: dict[str, int]) -> set[str]:
    """The Kent categories a meeting counts under, from its network members by relationship."""
    present = {_CATEGORY.get(relationship, "others") for relationship, n in by_relationship.items()
               if n > 0 and relationship != "parent"}
    parents = by_relationship.get("parent", 0)
    if parents == 1:
        present.add("one_parent")
    elif parents >= 2:
        present.add("both_parents")
    return present


def attendance(held: list[OutcomeEvent]) -> dict[str, Any]:
    by_category: Counter[str] = Counter()
    roles: Counter[str] = Counter()
    with_network = service_user_only = with_peer = 0
    for event in held:
        data = event.data
        if data["attendance"]["network_member"] > 0:
            with_network += 1
            by_category.update(relationship_categories(data["networkMembersByRelationship"]))
        elif data["attendance"]["service_user"] > 0:
            service_user_only += 1
        present = {role for role, n in data["staffByRole"].items() if n > 0}
        roles.update(present)
        with_peer += "peer_support_worker" in present
    return {
        "meetings": len(held),
        "withNetwork": with_network,
        "serviceUserOnly": service_user_only,
        "byRelationship": {category: by_category[category] for category in CATEGORIES},
        "staffByRole": _sorted_counts(roles),
        "withPeerSupportWorker": with_peer,
    }


def meetings_per_referral(held: list[OutcomeEvent]) -> dict[str, Any]:
    """Over the referrals with at least one meeting held."""
    per_referral = sorted(Counter(e.referral_id for e in held).values())
    spread = quartiles(per_referral)
    return {"referrals": len(per_referral), "mean": summary(per_referral)["mean"],
            "median": spread["median"] if spread else None, "max": max(per_referral, default=None)}


def measures(recorded: list[OutcomeEvent]) -> dict[str, Any]:
    """Per instrument and timepoint: n, mean and sd of the score (the mean for CMHS), SWEMWBS's
    metric score too, and the mean change from baseline of the people measured at both. An
    instrument or timepoint with no records is absent, not zero."""
    scores: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    metric: dict[str, list[float]] = defaultdict(list)
    per_referral: dict[tuple[str, str], dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    for event in recorded:
        data = event.data
        instrument, timepoint = data["instrument"], data["timepoint"]
        score = data[score_field(instrument)]
        scores[instrument][timepoint].append(score)
        per_referral[(instrument, timepoint)][event.referral_id].append(score)
        if instrument == "SWEMWBS" and data.get("metricScore") is not None:
            metric[timepoint].append(data["metricScore"])
    result: dict[str, Any] = {}
    for instrument in _ordered(scores, INSTRUMENTS):
        result[instrument] = {}
        for timepoint in _ordered(scores[instrument], TIMEPOINTS):
            entry: dict[str, Any] = summary(scores[instrument][timepoint])
            if instrument == "SWEMWBS" and metric[timepoint]:
                entry["metric"] = summary(metric[timepoint])
            if timepoint != "baseline":
                change = paired_change(per_referral[(instrument, "baseline")], per_referral[(instrument, timepoint)])
                if change:
                    entry["changeFromBaseline"] = summary(change)
            result[instrument][timepoint] = entry
    return result


def paired_change(baseline: dict[str, list[float]], later: dict[str, list[float]]) -> list[float]:
    """Later minus baseline for each referral scored at both; a referral scored more than once
    at a timepoint (two carers) counts once, by the mean of its scores."""
    return [_mean(later[ref]) - _mean(baseline[ref]) for ref in later if ref in baseline]


def governance(met: list[OutcomeEvent], missed: list[OutcomeEvent]) -> dict[str, dict[str, Any]]:
    counts: dict[str, Counter[str]] = defaultdict(Counter)
    for event in met:
        counts[event.data["policy"]]["met"] += 1
    for event in missed:
        counts[event.data["policy"]]["missed"] += 1
    return {policy: {"met": counts[policy]["met"], "missed": counts[policy]["missed"],
                     "metPct": pct(counts[policy]["met"], counts[policy]["met"] + counts[policy]["missed"])}
            for policy in _ordered(counts, POLICIES)}


def fidelity(c: Cohort, held: dict[str, Any]) -> dict[str, Any]:
    """POD's principles that no other system measures (seeds 001 and 003): of the referrals
    accepted, the first meeting within 24 hours of the referral and the days with a meeting in
    the first 14; of the meetings held (`held`: their attendance figures), those with the
    network and with a peer support worker;
    of new prescriptions (no urgent safety override), those after at least three meetings."""
    accepted = {e.referral_id for e in c.of("referral.accepted")}
    starts: dict[str, list[datetime]] = defaultdict(list)
    for event in c.of("meeting.held"):
        starts[event.referral_id].append(datetime.fromisoformat(event.data["start"]))
    within = sum(1 for ref in accepted
                 if starts[ref] and min(starts[ref]) - c.received_at[ref] <= timedelta(hours=WITHIN_HOURS))
    days = sorted(meeting_days(c.received_at[ref], starts[ref]) for ref in accepted)
    daily = sum(1 for d in days if d >= DAILY_ENOUGH)
    new = [e for e in c.of("medication.prescribed") if e.data["isNew"] and e.data["urgentSafetyOverride"] is not True]
    after_three = sum(1 for e in new if e.data["meetingsHeldBefore"] >= MEETINGS_BEFORE_MEDICATION)
    spread = quartiles(days)
    return {
        "firstMeetingWithin24h": _share(within, len(accepted)),
        "meetingDaysInFirst14": {"n": len(days), "median": spread["median"] if spread else None,
                                 "atLeast10": daily, "atLeast10Pct": pct(daily, len(days))},
        "meetingsWithNetwork": _share(held["withNetwork"], held["meetings"]),
        "meetingsWithPeerSupportWorker": _share(held["withPeerSupportWorker"], held["meetings"]),
        "medicationAfterThreeMeetings": _share(after_three, len(new)),
    }


def meeting_days(received_at: datetime, starts: list[datetime]) -> int:
    """On how many of the first 14 days from the referral a meeting started: day k is the 24
    hours from `received_at` + k days (a clock that needs no time zone)."""
    days = {(start - received_at) // timedelta(days=1) for start in starts if start >= received_at}
    return sum(1 for day in days if day < FIRST_TWO_WEEKS)


def _share(count: int, n: int) -> dict[str, Any]:
    return {"n": n, "count": count, "pct": pct(count, n)}


def _mean(values: list[float]) -> float:
    return sum(values) / len(values)


def _ordered(keys: Iterable[str], known: tuple[str, ...]) -> list[str]:
    present = set(keys)
    return [k for k in known if k in present] + sorted(present - set(known))


def _sorted_counts(counts: Counter[str]) -> dict[str, int]:
    return dict(sorted(counts.items()))


def _text(moment: datetime | None) -> str | None:
    return utc_text(moment) if moment else None
