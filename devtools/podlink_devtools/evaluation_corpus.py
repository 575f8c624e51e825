"""Inbound contract events for a cohort with the figures an evaluation reports, e.g. the Kent
study's (seed 003): 50 people, 467 network meetings, 245 of them with network members, and the
relationships of its attendance table. Any figures that can hold together are accepted, so a
test of `podlink report` can run on more than one cohort.

Every referral starts as the sample pathway does (podlink/services/samples.py: referral
received, accepted, first contact); its meetings are one a day from 2 hours after the referral.
Meetings with the network are spread evenly over all meetings; each Kent category then takes
the next meetings with the network in turn, round the list, so every such meeting has someone
and one parent and both parents never share a meeting.
"""
from __future__ import annotations

import argparse
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from podlink.services.samples import POD_SOURCE, Record, pathway
from podlink.streams.core.contract import Accepted, read_record
from podlink.streams.core.encoding import utc_text
from podlink.streams.core.episode import Episode, Policy
from podlink.streams.core.ids import stable_id
from podlink.streams.pipeline.processor import process
from podlink.streams.worker.settings import CARE_TOPIC

CATEGORIES = ("spouse_or_partner", "one_parent", "both_parents", "friends",
              "children_or_other_relatives", "siblings", "others")
# The contract's relationships for each category; categories with several take them in turn.
RELATIONSHIPS: dict[str, tuple[tuple[str, ...], ...]] = {
    "spouse_or_partner": (("spouse_or_partner",),),
    "one_parent": (("parent",),),
    "both_parents": (("parent", "parent"),),
    "friends": (("friend",), ("friend", "friend")),
    "children_or_other_relatives": (("child",), ("other_relative",)),
    "siblings": (("sibling",),),
    "others": (("carer",), ("neighbour",), ("other",)),
}
# Items for each instrument: how many, and their range (the contract's).
ITEMS = {"HONOS": (12, 0, 4), "SWEMWBS": (7, 1, 5), "WSAS": (5, 0, 8), "CWS": (17, 0, 3), "CMHS": (4, 0, 10)}
TIMEPOINT_DAYS = {"baseline": 0, "3_months": 91, "6_months": 182, "discharge": 200}
ADHERENCE_SCORES = (3.2, 3.5, 3.6, 3.8, 4.0)


@dataclass(frozen=True)
class Figures:
    people: int
    meetings: int
    with_network: int
    by_relationship: dict[str, int]  # meetings with at least one of each Kent category
    adherence_ratings: int
    # instrument -> timepoint -> people measured then (the first N people)
    measures: dict[str, dict[str, int]] = field(default_factory=dict)

    def problems(self) -> list[str]:
        """Why these figures cannot all hold at once (empty when they can)."""
        found = []
        if not 1 <= self.people <= self.meetings:
            found.append("every person needs a meeting: 1 <= people <= meetings")
        if not 0 <= self.with_network <= self.meetings:
            found.append("meetings with the network must be between 0 and the meetings")
        if set(self.by_relationship) != set(CATEGORIES):
            found.append(f"by_relationship needs exactly {', '.join(CATEGORIES)}")
        elif any(not 0 <= n <= self.with_network for n in self.by_relationship.values()):
            found.append("a category is in at most every meeting with the network")
        elif self.by_relationship["one_parent"] + self.by_relationship["both_parents"] > self.with_network:
            found.append("one parent and both parents cannot share a meeting")
        elif self.with_network and sum(self.by_relationship.values()) < self.with_network:
            found.append("each meeting with the network needs someone from a category")
        if not 0 <= self.adherence_ratings <= self.meetings:
            found.append("at most one adherence rating a meeting")
        if any(n > self.people for timepoints in self.measures.values() for n in timepoints.values()):
            found.append("a timepoint measures at most every person")
        return found


KENT = Figures(
    people=50, meetings=467, with_network=245,
    by_relationship={"spouse_or_partner": 97, "one_parent": 74, "both_parents": 31, "friends": 30,
                     "children_or_other_relatives": 24, "siblings": 20, "others": 5},
    adherence_ratings=115,
    # Table 2: SWEMWBS at baseline, three and six months.
    measures={"SWEMWBS": {"baseline": 49, "3_months": 40, "6_months": 37}},
)


def corpus(figures: Figures, prefix: str, start: datetime, team: str = "POD-KENT") -> list[Record]:
    """The inbound events, each referral's in the order its source systems would send them."""
    problems = figures.problems()
    if problems:
        raise ValueError("; ".join(problems))
    network = _spread(figures.with_network, figures.meetings)
    rated = _spread(figures.adherence_ratings, figures.meetings)
    categories = _categories(figures)
    records: list[Record] = []
    meeting = 0
    for person in range(figures.people):
        ref = f"{prefix}-{person:04d}"
        received = start + timedelta(hours=person)
        records += pathway(ref, received, "on-time", team=team, n=person)[:3]
        count = figures.meetings // figures.people + (person < figures.meetings % figures.people)
        for day in range(count):
            members = categories.get(network.get(meeting, -1), ())
            score = ADHERENCE_SCORES[meeting % len(ADHERENCE_SCORES)] if meeting in rated else None
            records.append(_meeting(ref, received, day, members, score))
            meeting += 1
        records += _measures(figures, ref, person, received)
    return records


def _spread(count: int, among: int) -> dict[int, int]:
    """`count` of the indexes 0..among-1, evenly spread: index -> its rank among those chosen."""
    return {k * among // count: k for k in range(count)} if count else {}


def _categories(figures: Figures) -> dict[int, tuple[str, ...]]:
    """For each meeting with the network (by rank), the relationships of who came."""
    who: dict[int, list[str]] = {k: [] for k in range(figures.with_network)}
    slot = 0
    for category in CATEGORIES:
        choices = RELATIONSHIPS[category]
        for i in range(figures.by_relationship[category]):
            who[slot % figures.with_network].extend(choices[i % len(choices)])
            slot += 1
    return {k: tuple(relationships) for k, relationships in who.items()}


def _event(ref: str, kind: str, at: datetime, data: dict[str, Any], *id_parts: str) -> Record:
    return Record(CARE_TOPIC, ref, {
        "specversion": "1.0", "id": stable_id("evaluation-corpus", ref, kind, *id_parts),
        "source": POD_SOURCE, "type": f"uk.nhs.pod.{kind}", "time": utc_text(at), "subject": ref,
        "datacontenttype": "application/json", "data": {"referralId": ref, **data},
    })


def _meeting(ref: str, received: datetime, day: int, members: tuple[str, ...], score: float | None) -> Record:
    start = received + timedelta(hours=2, days=day)
    end = start + timedelta(minutes=75)
    attendees: list[dict[str, str]] = [{"kind": "service_user"}]
    attendees += [{"kind": "network_member", "personId": f"NET-{i + 1}", "relationship": relationship}
                  for i, relationship in enumerate(members)]
    attendees += [{"kind": "staff", "staffId": "STF-0007", "role": "nurse"}]
    if day % 2 == 0:
        attendees.append({"kind": "staff", "staffId": "STF-0042", "role": "peer_support_worker"})
    data: dict[str, Any] = {"meetingId": f"MTG-{day + 1}", "start": utc_text(start), "end": utc_text(end),
                            "location": "home", "attendees": attendees}
    if score is not None:
        data["adherenceScore"] = score
    return _event(ref, "meeting.held", end, data, str(day))


def _measures(figures: Figures, ref: str, person: int, received: datetime) -> Iterator[Record]:
    for instrument, timepoints in figures.measures.items():
        count, low, high = ITEMS[instrument]
        for shift, (timepoint, people) in enumerate(timepoints.items()):
            if person < people:
                at = received + timedelta(days=TIMEPOINT_DAYS[timepoint], hours=3)
                items = [low + (person + item + shift) % (high - low + 1) for item in range(count)]
                yield _event(ref, "measure.recorded", at, {
                    "recordedAt": utc_text(at), "instrument": instrument, "timepoint": timepoint,
                    "respondent": "carer" if instrument == "CWS" else "service_user", "items": items,
                }, instrument, timepoint)


def outcome_events(records: list[Record], policy: Policy = Policy()) -> Iterator[dict[str, Any]]:
    """The outcome events the worker's pure pipeline makes of `records`, without a broker: for
    a quick check of a corpus, and outcome files to time `podlink report --from-file` on."""
    episodes: dict[str, Episode | None] = {}
    for record in records:
        _, key, value = record.encoded()
        accepted = read_record(key, value)
        if not isinstance(accepted, Accepted):
            raise ValueError(f"{record.key}: breaks the contract: {accepted.reason}")
        result = process(episodes.get(record.key), accepted, policy)
        if result.stores_episode:
            episodes[record.key] = result.episode
        yield from result.outcomes


def outcome_file(path: Path, events: int, figures: Figures = KENT) -> int:
    """Writes about `events` outcome events, one JSON object a line: copies of one cohort's
    events, each copy with its own referral and event ids, so none is a duplicate. For timing
    `podlink report --from-file`; returns how many were written."""
    cohort = [json.dumps(event) for event in outcome_events(corpus(figures, "REF-COPY", datetime(2025, 1, 6, 9, tzinfo=timezone.utc)))]
    written = 0
    with path.open("w") as file:
        for copy in range(-(-events // len(cohort))):
            for line in cohort:
                event = json.loads(line.replace("REF-COPY-", f"REF-C{copy:05d}-"))
                event["id"] = stable_id("copy", event["id"], str(copy))
                file.write(json.dumps(event) + "\n")
                written += 1
    return written


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="Write a file of outcome events from copies of the Kent cohort.")
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--out", type=Path, required=True)
    arguments = parser.parse_args()
    print(f"wrote {outcome_file(arguments.out, arguments.events)} outcome events to {arguments.out}")
