"""Behaviour that rests on end offsets, proven on Apache Kafka (Tansu under-reports them)."""
from __future__ import annotations

import json
import threading
import time
from collections import Counter

from podlink.services.samples import pathway
from podlink.streams.worker.settings import ALERTS_TOPIC, FHIR_TOPIC, OUTCOMES_TOPIC
from tests.support.broker_io import ago, every_event_has_its_message, of, send, values, wait_until
from tests.support.brokers import consume_until_done
from tests.support.topic_end import read_to_end
from tests.support.worker_metrics import after_more_scans, counting, total


def test_a_backlog_whose_later_events_meet_its_deadlines_pages_no_one(kafka_fresh, start_worker, prefix):
    late_met = [pathway(f"{prefix}-MET-{i:04d}", ago(40), "met-late", n=i) for i in range(300)]
    closed = [pathway(f"{prefix}-WD-{i:04d}", ago(40), "withdrawn", n=i) for i in range(100)]
    control = f"{prefix}-CONTROL"
    # Referrals first, then the events that meet or stop their deadlines, all before the worker
    # starts: while it replays, every deadline looks missed until it reaches the later events.
    everything = [r for p in late_met + closed for r in p]
    first = [r for r in everything if r.value["type"] == "uk.nhs.spa.referral.received"]
    rest = [r for r in everything if r.value["type"] != "uk.nhs.spa.referral.received"]
    send(kafka_fresh.bootstrap, pathway(control, ago(30), "breached")[:1] + first + rest)

    worker = start_worker(kafka_fresh.bootstrap)
    consume_until_done(kafka_fresh.bootstrap, ALERTS_TOPIC, lambda rs: bool(of(control, values(rs))), timeout=180)
    sent = len(everything) + 1
    wait_until(counting(worker.web_url, sent), 120, "the whole backlog read")
    # Two more scans, each raising all that was due: any alert the backlog wrongly caused is out.
    metrics = after_more_scans(worker.web_url, 2)
    assert total(metrics, "podlink_alerts_total") == 1
    alerts = values(read_to_end(kafka_fresh.bootstrap, ALERTS_TOPIC))
    assert [(a["subject"], a["type"]) for a in alerts] == [(control, "uk.nhs.podlink.sla.breached")]
    # The outcome still records the missed deadline.
    outcomes = values(consume_until_done(
        kafka_fresh.bootstrap, OUTCOMES_TOPIC,
        lambda rs: sum(json.loads(r.value)["type"].endswith("meeting.first") for r in rs) >= 300, timeout=60))
    firsts = [e for e in outcomes if e["type"].endswith("meeting.first")]
    assert len(firsts) == 300 and not any(e["data"]["withinDeadline"] for e in firsts)


def test_a_worker_killed_mid_stream_and_restarted_loses_nothing_and_alerts_once(
        kafka_fresh, start_worker, prefix):
    bootstrap = kafka_fresh.bootstrap
    scenarios = ["on-time", "breached", "care-first", "met-late", "at-risk"]
    pathways = {f"{prefix}-{i:04d}": pathway(f"{prefix}-{i:04d}", ago(30 if i % 5 == 1 else 20 if i % 5 == 4 else 16),
                                             scenarios[i % 5], n=i) for i in range(400)}
    expected_alerts = {ref for i, ref in enumerate(pathways) if i % 5 in (1, 4)}

    def feed() -> None:
        batch = []
        for records in pathways.values():
            batch += records
            if len(batch) >= 200:
                send(bootstrap, batch)
                batch = []
                time.sleep(0.25)
        send(bootstrap, batch)

    worker = start_worker(bootstrap)
    feeder = threading.Thread(target=feed)
    feeder.start()
    consume_until_done(bootstrap, ALERTS_TOPIC, lambda rs: len(rs) >= 5, timeout=120)
    worker.kill()  # SIGKILL: no clean shutdown, no final commit
    killed_at = len(worker.log_lines())
    worker.start()  # the same worker again: same data directory, same group
    feeder.join()

    consume_until_done(
        bootstrap, OUTCOMES_TOPIC,
        lambda rs: {e["subject"] for e in values(rs) if e["type"].endswith("referral.registered")}
        >= set(pathways), timeout=240)
    assert 0 < killed_at < len(worker.log_lines())

    # Replays after the kill may send some messages twice (same ids); none may be missing.
    consume_until_done(bootstrap, FHIR_TOPIC, every_event_has_its_message(pathways), timeout=60)

    # Two more scans after everything was read, each raising all that was due.
    after_more_scans(worker.web_url, 2)
    alerts = values(read_to_end(bootstrap, ALERTS_TOPIC))
    ids = Counter(a["id"] for a in alerts)
    assert [i for i, n in ids.items() if n > 1] == []
    assert {a["subject"] for a in alerts} == expected_alerts
