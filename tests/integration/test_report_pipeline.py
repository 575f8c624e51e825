"""`podlink report` over what a real worker published on a real broker: the Kent study's
attendance table (and a second, different cohort) reproduced exactly, from contract events."""
from __future__ import annotations

import csv
import json
import subprocess
import sys

import pytest
from podlink_devtools.evaluation_corpus import KENT, Figures, corpus, outcome_events

from podlink.services.embedded_broker import free_port
from podlink.streams.worker.settings import OUTCOMES_TOPIC
from tests.support.broker_io import ago, of, send, values
from tests.support.brokers import consume_until_done

OTHER = Figures(people=12, meetings=90, with_network=70,
                by_relationship={"spouse_or_partner": 10, "one_parent": 25, "both_parents": 20, "friends": 15,
                                 "children_or_other_relatives": 8, "siblings": 12, "others": 9},
                adherence_ratings=33, measures={"HONOS": {"baseline": 12, "6_months": 7}})


def podlink_report(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "podlink.services.cli", "report", *args],
                          capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("figures", [KENT, OTHER], ids=["kent", "other"])
def test_the_report_of_a_real_workers_outcome_events_reproduces_the_cohorts_figures(
        fresh_broker, start_worker, prefix, figures, tmp_path):
    team = f"POD-{prefix.removeprefix('REF-').upper()}"  # its own team: a shared broker has others
    records = corpus(figures, prefix, ago(24 * 400), team=team)
    published = len(list(outcome_events(records)))  # what the worker's pipeline makes of them
    start_worker(fresh_broker.bootstrap)
    send(fresh_broker.bootstrap, records)
    consume_until_done(fresh_broker.bootstrap, OUTCOMES_TOPIC,
                       lambda rs: len(of(prefix, values(rs))) >= published, timeout=240)

    done = podlink_report("--bootstrap", fresh_broker.bootstrap, "--team", team)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["referrals"]["registered"] == report["referrals"]["accepted"] == figures.people
    assert report["meetings"] == figures.meetings
    assert report["withNetwork"] == figures.with_network
    assert report["serviceUserOnly"] == figures.meetings - figures.with_network
    assert report["byRelationship"] == figures.by_relationship
    assert report["adherence"]["n"] == figures.adherence_ratings
    assert {instrument: {tp: entry["n"] for tp, entry in timepoints.items()}
            for instrument, timepoints in report["measures"].items()} == figures.measures
    assert report["skipped"] == 0

    folder = tmp_path / "tables"
    assert podlink_report("--bootstrap", fresh_broker.bootstrap, "--team", team, "--format", "csv",
                          "--out", str(folder)).returncode == 0
    with (folder / "relationships.csv").open() as file:
        rows = list(csv.reader(file))[1:]
    assert [int(n) for _, n, _ in rows] == list(figures.by_relationship.values())


def test_a_team_with_no_referrals_and_an_unreachable_broker(fresh_broker, start_worker, prefix):
    start_worker(fresh_broker.bootstrap)  # creates the topics: an empty pod.outcomes.v1
    empty = podlink_report("--bootstrap", fresh_broker.bootstrap)
    assert empty.returncode == 1
    assert empty.stderr.strip().endswith("nothing to report") and empty.stdout == ""

    nowhere = f"127.0.0.1:{free_port()}"  # nothing listens there
    nobody = podlink_report("--bootstrap", nowhere)
    assert nobody.returncode == 2
    assert nobody.stderr.count("\n") == 1 and "Traceback" not in nobody.stderr
    assert nobody.stderr == (f"podlink report: cannot read pod.outcomes.v1: cannot reach Kafka ({nowhere}: "
                             "connection refused); check PODLINK_KAFKA_BOOTSTRAP and that the brokers are running\n")


def test_the_topic_missing_is_said_plainly(fresh_broker):
    missing = podlink_report("--bootstrap", fresh_broker.bootstrap)
    assert missing.returncode == 1
    assert "pod.outcomes.v1 does not exist" in missing.stderr and "Traceback" not in missing.stderr
