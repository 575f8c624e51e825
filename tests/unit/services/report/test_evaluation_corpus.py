"""The evaluation corpus generator: contract-valid events with exactly the figures asked for,
counted here from the inbound events themselves, and the report made of them by the worker's
pure pipeline (the broker-backed run is tests/integration/test_report_pipeline.py)."""
from __future__ import annotations

import json
from collections import Counter
from datetime import datetime, timezone

import pytest
from podlink_devtools.evaluation_corpus import KENT, Figures, corpus, outcome_events

from podlink.services.report.events import parse
from podlink.services.report.figures import build_report
from podlink.streams.core.contract import Accepted, read_record

START = datetime(2025, 1, 6, 9, tzinfo=timezone.utc)
SMALL = Figures(people=4, meetings=13, with_network=6,
                by_relationship={"spouse_or_partner": 2, "one_parent": 1, "both_parents": 3, "friends": 2,
                                 "children_or_other_relatives": 0, "siblings": 1, "others": 4},
                adherence_ratings=5, measures={"WSAS": {"baseline": 4, "6_months": 2}, "CWS": {"baseline": 3}})


def _table(records) -> dict:
    """The attendance table counted from the inbound meeting events, independently of podlink."""
    meetings = [r.value["data"] for r in records if r.value["type"] == "uk.nhs.pod.meeting.held"]
    categories: Counter[str] = Counter()
    with_network = 0
    for meeting in meetings:
        related = Counter(a["relationship"] for a in meeting["attendees"] if a["kind"] == "network_member")
        with_network += bool(related)
        groups = {"spouse_or_partner": related["spouse_or_partner"], "friends": related["friend"],
                  "children_or_other_relatives": related["child"] + related["other_relative"],
                  "siblings": related["sibling"], "others": related["carer"] + related["neighbour"] + related["other"],
                  "one_parent": related["parent"] == 1, "both_parents": related["parent"] >= 2}
        categories.update(name for name, present in groups.items() if present)
    return {"meetings": len(meetings), "withNetwork": with_network,
            "byRelationship": {name: categories[name] for name in KENT.by_relationship},
            "adherence": sum("adherenceScore" in m for m in meetings)}


@pytest.mark.parametrize("figures", [KENT, SMALL], ids=["kent", "small"])
def test_the_corpus_is_contract_valid_and_has_the_figures_asked_for(figures):
    records = corpus(figures, "REF-EVAL", START)
    assert all(isinstance(read_record(*r.encoded()[1:]), Accepted) for r in records)
    assert _table(records) == {"meetings": figures.meetings, "withNetwork": figures.with_network,
                               "byRelationship": figures.by_relationship, "adherence": figures.adherence_ratings}
    assert len({r.value["data"]["referralId"] for r in records}) == figures.people


@pytest.mark.parametrize("figures", [KENT, SMALL], ids=["kent", "small"])
def test_the_report_of_the_pipelines_outcome_events_reproduces_the_figures(figures):
    outcomes = outcome_events(corpus(figures, "REF-EVAL", START))
    report = build_report(parse(json.dumps(event)) for event in outcomes)
    assert report["referrals"]["registered"] == figures.people
    assert (report["meetings"], report["withNetwork"], report["serviceUserOnly"]) == (
        figures.meetings, figures.with_network, figures.meetings - figures.with_network)
    assert report["byRelationship"] == figures.by_relationship
    assert report["adherence"]["n"] == figures.adherence_ratings
    assert {instrument: {tp: entry["n"] for tp, entry in timepoints.items()}
            for instrument, timepoints in report["measures"].items()} == figures.measures


def test_figures_that_cannot_hold_together_are_refused_with_the_reason():
    both = dict(KENT.by_relationship, one_parent=200, both_parents=100)
    with pytest.raises(ValueError, match="one parent and both parents cannot share a meeting"):
        corpus(Figures(50, 467, 245, both, 115), "REF-X", START)
    few = {name: 1 for name in KENT.by_relationship}
    with pytest.raises(ValueError, match="needs someone from a category"):
        corpus(Figures(50, 467, 245, few, 115), "REF-X", START)
