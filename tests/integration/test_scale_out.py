"""Two workers in one group on Apache Kafka: they share the partitions, and when one is killed the
other takes its partitions over with their episode and deadline state."""
from __future__ import annotations

import threading
from collections import Counter
from datetime import datetime, timedelta, timezone

import pytest
from kafka import KafkaAdminClient

from podlink.services.samples import Record, pathway
from podlink.streams.worker.settings import ALERTS_TOPIC, FHIR_TOPIC, OUTCOMES_TOPIC
from tests.support.broker_io import (
    ago,
    every_event_has_its_message,
    send,
    values,
    wait_until,
)
from tests.support.brokers import consume_until_done
from tests.support.topic_end import read_to_end
from tests.support.worker_metrics import after_more_scans
from tests.support.worker_process import WorkerProcess

PARTITIONS = 6
DEADLINE_HOURS, AT_RISK_HOURS = 24, 6  # the first-meeting policy the workers run (tests/support/policies.py)
# How long after they are sent the deadlines of the "due" referrals come at risk: time enough for
# the doomed worker to process and commit them and be killed first, even on a busy machine.
DUE_IN = timedelta(seconds=50)
ENV = {"PODLINK_PARTITIONS": str(PARTITIONS)}
FILLER_SCENARIOS = ["on-time", "breached", "care-first", "met-late", "at-risk"]
FILLER_AGE = {"breached": 30, "at-risk": 20}  # hours; the others 16, well inside their deadline
AT_RISK = "uk.nhs.podlink.sla.at-risk"


def assignments(worker: WorkerProcess) -> list[set[int]]:
    return [set(line["partitions"]) for line in worker.log_lines()
            if line.get("event") == "partitions assigned"]


def records(worker: WorkerProcess) -> list[dict]:
    return [line for line in worker.log_lines() if line.get("event") == "record"]


def recovered_since_assigned(worker: WorkerProcess) -> list[dict]:
    """The recoveries logged after the worker's latest assignment (a rebalance may interrupt one)."""
    lines = [line for line in worker.log_lines()
             if line.get("event") in ("partitions assigned", "tables recovered")]
    latest = max((i for i, line in enumerate(lines) if line["event"] == "partitions assigned"), default=0)
    return [line for line in lines[latest:] if line["event"] == "tables recovered"]


def alerted(worker: WorkerProcess) -> set[str]:
    return {line["referral"] for line in worker.log_lines() if line.get("event") == "alert raised"}


def committed(bootstrap: str, group: str) -> dict[tuple[str, int], int]:
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        return {(tp.topic, tp.partition): meta.offset
                for tp, meta in admin.list_group_offsets(group)[group].items()}
    finally:
        admin.close()


def what_is_missing(bootstrap: str, pathways: dict[str, list[Record]], survivor: WorkerProcess) -> str:
    """Which referrals lack FHIR messages, on which partitions, and the survivor's last log lines:
    a stall shows as records read but unhandled, or as nothing read after the takeover."""
    have = Counter(r.key.decode() for r in read_to_end(bootstrap, FHIR_TOPIC))
    short = {ref for ref, events in pathways.items() if have[ref] < len(events)}
    read = {line["referral"]: line["partition"] for line in records(survivor)}
    on = Counter(read.get(ref, "never read by the survivor") for ref in short)
    tail = [{k: line.get(k) for k in ("timestamp", "event", "level", "partitions", "seconds")}
            for line in survivor.log_lines()[-40:]]
    return (f"{len(short)} of {len(pathways)} referrals lack messages; by partition {dict(on)}; "
            f"survivor alive: {survivor.proc is not None and survivor.proc.poll() is None}; "
            f"its last log lines: {tail}")


class Feeder(threading.Thread):
    """Sample pathways, a few at a time, until told to stop: the stream the kill lands in."""

    def __init__(self, bootstrap: str, prefix: str) -> None:
        super().__init__(name="feeder")
        self.bootstrap, self.prefix = bootstrap, prefix
        self.pathways: dict[str, list[Record]] = {}
        self.alerting: set[str] = set()  # the referrals whose deadline is at risk or missed
        self.stop = threading.Event()

    def run(self) -> None:
        i = 0
        while not self.stop.wait(0.3):
            batch = []
            for _ in range(4):
                scenario = FILLER_SCENARIOS[i % len(FILLER_SCENARIOS)]
                ref = f"{self.prefix}-F{i:04d}"
                self.pathways[ref] = pathway(ref, ago(FILLER_AGE.get(scenario, 16)), scenario, n=i)
                if scenario in FILLER_AGE:
                    self.alerting.add(ref)
                batch += self.pathways[ref]
                i += 1
            send(self.bootstrap, batch)


@pytest.mark.parametrize("standby_replicas", [1, 0])
def test_a_killed_workers_partitions_move_to_the_other_with_their_episodes_and_deadlines(
        kafka_fresh, start_worker, prefix, standby_replicas):
    bootstrap = kafka_fresh.bootstrap
    env = {**ENV, "PODLINK_STANDBY_REPLICAS": str(standby_replicas)}
    survivor = start_worker(bootstrap, **env)
    doomed = start_worker(bootstrap, **env)

    # Both workers get partitions: their latest assignments split the six between them.
    def split() -> bool:
        a, b = assignments(survivor), assignments(doomed)
        return bool(a and b and a[-1] and b[-1] and not a[-1] & b[-1]
                    and a[-1] | b[-1] == set(range(PARTITIONS)))
    wait_until(split, 120, "both workers hold partitions, six in all")
    doomed_partitions = assignments(doomed)[-1]

    # Referrals whose deadline comes at risk only after the kill, and referrals whose meetings
    # are held after it. Sent now, while each worker holds its share, so each is read by one.
    due_received = datetime.now(timezone.utc) + DUE_IN - timedelta(hours=DEADLINE_HOURS - AT_RISK_HOURS)
    at_risk_from = due_received + timedelta(hours=DEADLINE_HOURS - AT_RISK_HOURS)
    due = {f"{prefix}-DUE-{i:02d}": pathway(f"{prefix}-DUE-{i:02d}", due_received, "at-risk", n=i)
           for i in range(18)}
    care = {f"{prefix}-CARE-{i:02d}": pathway(f"{prefix}-CARE-{i:02d}", ago(16), "on-time", n=100 + i)
            for i in range(18)}
    before_kill = {ref: events[:4] for ref, events in care.items()}  # up to meeting.scheduled
    after_kill = {ref: events[4:] for ref, events in care.items()}  # meetings held, a measure
    send(bootstrap, [r for events in due.values() for r in events]
         + [r for events in before_kill.values() for r in events])
    feeder = Feeder(bootstrap, prefix)
    feeder.start()
    try:
        # Which partition each referral is on, from the line of the worker that read it.
        proof = {**due, **before_kill}
        def first_lines() -> dict[str, dict]:
            seen = {line["referral"]: line for w in (survivor, doomed) for line in records(w)
                    if line["referral"] in proof}
            return seen if seen.keys() == proof.keys() else {}
        where = wait_until(first_lines, 120, "every proof referral read")
        on_doomed = {ref for ref, line in where.items() if line["partition"] in doomed_partitions}
        due_doomed, care_doomed = on_doomed & due.keys(), on_doomed & care.keys()
        assert due_doomed and care_doomed, (doomed_partitions, where)

        # The doomed worker read all of its proof records, and committed past them, so the
        # survivor cannot rebuild their state by reading them again: it must recover the tables.
        def read_and_committed() -> bool:
            mine = [line for line in records(doomed) if line["referral"] in on_doomed]
            if Counter(line["referral"] for line in mine) != {ref: len(proof[ref]) for ref in on_doomed}:
                return False
            needed: dict[tuple[str, int], int] = {}
            for line in mine:
                tp = (line["topic"], line["partition"])
                needed[tp] = max(needed.get(tp, 0), line["offset"] + 1)
            offsets = committed(bootstrap, doomed.group_id)
            return all(offsets.get(tp, -1) >= end for tp, end in needed.items())
        wait_until(read_and_committed, 60, "the doomed worker read and committed its proof records")
        assert not alerted(doomed) & due.keys()

        doomed.kill()  # SIGKILL, mid-stream: the feeder is still sending
        killed_at = datetime.now(timezone.utc)
        assert feeder.is_alive()
        assert killed_at < at_risk_from, "too slow to test: the deadlines came at risk before the kill"
        send(bootstrap, [r for events in after_kill.values() for r in events])

        # The survivor takes every partition over: from its standby copies, or, with none, by
        # reading the changelog topics.
        wait_until(lambda: assignments(survivor)[-1] == set(range(PARTITIONS)), 120,
                   "the survivor holds all six partitions")
        if standby_replicas == 0:
            recovered = wait_until(lambda: recovered_since_assigned(survivor), 120,
                                   "the survivor's tables recovered after the takeover")
            assert recovered[-1]["changelog_records"] > 0
    finally:
        feeder.stop.set()
        feeder.join()

    pathways = {**due, **care, **feeder.pathways}
    try:
        consume_until_done(bootstrap, FHIR_TOPIC, every_event_has_its_message(pathways), timeout=240)
    except TimeoutError as exc:
        raise AssertionError(what_is_missing(bootstrap, pathways, survivor)) from exc
    outcomes = consume_until_done(
        bootstrap, OUTCOMES_TOPIC,
        lambda rs: {e["subject"] for e in values(rs) if e["type"].endswith("referral.registered")}
        >= pathways.keys(), timeout=120)

    # Meetings held after the kill, on the doomed worker's partitions, were applied by the
    # survivor to the episodes it recovered: it never read those referrals itself.
    survivor_lines = records(survivor)
    assert not {line["referral"] for line in survivor_lines
                if line["type"] == "uk.nhs.spa.referral.received"} & on_doomed
    for ref in care_doomed:
        held = [line for line in survivor_lines if line["referral"] == ref
                and line["type"] == "uk.nhs.pod.meeting.held"]
        assert held and held[0]["outcome"] == "applied", (ref, held)
        assert "uk.nhs.podlink.meeting.first" in held[0]["outcome_events"]
    firsts = {e["subject"]: e for e in values(outcomes) if e["type"].endswith("meeting.first")}
    assert all(firsts[ref]["data"]["withinDeadline"] is True for ref in care)

    # Every deadline comes at risk, and the survivor alerts on the doomed worker's too.
    expected = due.keys() | feeder.alerting
    alerts = consume_until_done(bootstrap, ALERTS_TOPIC,
                                lambda rs: {a["subject"] for a in values(rs)} >= expected, timeout=180)
    assert {a["subject"] for a in values(alerts) if a["type"] == AT_RISK} >= due.keys()
    # The survivor logs an alert once the broker has acknowledged it, which can be after this
    # test has read it from the topic.
    wait_until(lambda: due_doomed <= alerted(survivor), 30, "the survivor's log of the alerts it raised")
    assert not alerted(doomed) & due_doomed
    # Two more scans by the survivor after every alert was seen, each raising all that was due:
    # none pages twice.
    after_more_scans(survivor.web_url, 2)
    alerts = values(read_to_end(bootstrap, ALERTS_TOPIC))
    assert [i for i, n in Counter(a["id"] for a in alerts).items() if n > 1] == []
    assert {a["subject"] for a in alerts} == expected
