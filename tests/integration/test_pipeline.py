"""`podlink worker` end to end on real brokers: records in, FHIR messages, outcomes, alerts out."""
from __future__ import annotations

import json
import time

from podlink.services.samples import pathway
from podlink.streams.worker.settings import (
    ALERTS_TOPIC,
    CARE_TOPIC,
    DEAD_LETTER_TOPIC,
    FHIR_TOPIC,
    OUTCOMES_TOPIC,
    SPA_TOPIC,
)
from tests.support.broker_io import ago, of, send, send_raw, values
from tests.support.brokers import consume_all, consume_until_done
from tests.support.contract_examples import invalid_files, load, valid_files


def test_a_referral_flows_to_fhir_messages_and_outcome_events(fresh_broker, start_worker, prefix):
    ontime, care_first = f"{prefix}-ONTIME", f"{prefix}-CAREFIRST"
    records = pathway(ontime, ago(16), "on-time") + pathway(care_first, ago(16), "care-first")
    start_worker(fresh_broker.bootstrap)
    send(fresh_broker.bootstrap, records)

    expected = ["referral.registered", "referral.accepted", "contact.first", "meeting.first",
                "meeting.held", "meeting.held", "meeting.held"]
    outcomes = consume_until_done(
        fresh_broker.bootstrap, OUTCOMES_TOPIC,
        lambda rs: len(of(prefix, values(rs))) >= 2 * len(expected), timeout=90)
    for ref in (ontime, care_first):
        mine = [e for e in values(outcomes) if e["subject"] == ref]
        assert sorted(e["type"].removeprefix("uk.nhs.podlink.") for e in mine) == sorted(expected)
        first = next(e for e in mine if e["type"].endswith("meeting.first"))
        assert first["data"]["withinDeadline"] is True
    assert all(r.key.decode() == json.loads(r.value)["subject"] for r in outcomes)

    messages = consume_until_done(
        fresh_broker.bootstrap, FHIR_TOPIC,
        lambda rs: sum(r.key.decode() == ontime for r in rs) >= 8, timeout=30)
    bundles = [json.loads(r.value) for r in messages if r.key.decode() == ontime]
    assert len(bundles) == 8  # one per event: nothing lost, nothing doubled
    for bundle in bundles:
        assert bundle["resourceType"] == "Bundle" and bundle["type"] == "message"
        assert bundle["entry"][0]["resource"]["resourceType"] == "MessageHeader"
    assert len({b["id"] for b in bundles}) == 8


def test_a_backdated_referral_is_alerted_within_seconds(fresh_broker, start_worker, prefix):
    start_worker(fresh_broker.bootstrap)
    ref = f"{prefix}-LATE"
    send(fresh_broker.bootstrap, pathway(ref, ago(30), "breached")[:1])
    sent = time.monotonic()
    alerts = consume_until_done(fresh_broker.bootstrap, ALERTS_TOPIC,
                                lambda rs: bool(of(ref, values(rs))), timeout=60)
    waited = time.monotonic() - sent
    alert = of(ref, values(alerts))[0]
    assert alert["type"] == "uk.nhs.podlink.sla.breached" and alert["specversion"] == "1.0"
    assert alert["data"]["policy"] == "first-meeting" and alert["data"]["referralId"] == ref
    assert alert["data"]["deadline"].endswith("Z") and alert["data"]["deadlineLocal"]
    # The worker joins its group after it logs that it is starting (Tansu holds a join for
    # half the session timeout); the scan itself runs every second here.
    assert waited < 30, f"alert took {waited:.1f} s"


def test_bad_records_go_to_the_dead_letter_topic_and_the_next_record_still_flows(
        fresh_broker, start_worker, prefix):
    bad = [(SPA_TOPIC, b"REF-BAD-1", b"{ not json"), (CARE_TOPIC, None, b"\x00\x01")]
    bad += [(SPA_TOPIC if load(p)["type"].startswith("uk.nhs.spa") else CARE_TOPIC,
             load(p)["subject"].encode(), json.dumps(load(p)).encode()) for p in invalid_files()]
    good = [(SPA_TOPIC if load(p)["type"].startswith("uk.nhs.spa") else CARE_TOPIC,
             load(p)["subject"].encode(), p.read_bytes()) for p in valid_files()]
    ref = f"{prefix}-AFTER"
    worker = start_worker(fresh_broker.bootstrap)
    send_raw(fresh_broker.bootstrap, bad + good)
    send(fresh_broker.bootstrap, pathway(ref, ago(2), "on-time")[:1])

    dead = consume_until_done(fresh_broker.bootstrap, DEAD_LETTER_TOPIC,
                              lambda rs: len(rs) >= len(bad), timeout=90)
    assert sorted((r.key or b"", r.value) for r in dead) == sorted((k or b"", v) for _, k, v in bad)
    for record in dead:
        headers = dict(record.headers)
        assert headers["podlink-error"] and headers["podlink-source-topic"] in (
            SPA_TOPIC.encode(), CARE_TOPIC.encode())
        assert int(headers["podlink-source-partition"]) >= 0
        assert int(headers["podlink-source-offset"]) >= 0
        assert b"9995260183" not in headers["podlink-error"]

    outcomes = consume_until_done(fresh_broker.bootstrap, OUTCOMES_TOPIC,
                                  lambda rs: bool(of(ref, values(rs))), timeout=60)
    registered = {e["subject"] for e in values(outcomes) if e["type"].endswith("referral.registered")}
    assert ref in registered
    # Every valid contract example was accepted: none of them is on the dead-letter topic.
    time.sleep(2)
    assert len(consume_all(fresh_broker.bootstrap, DEAD_LETTER_TOPIC, min_records=10**6, timeout=3)) == len(bad)
    verdicts = {(line.get("referral"), line.get("outcome")) for line in worker.log_lines()}
    # The rejected and withdrawn examples have no referral.received: they wait for it.
    assert {("REF-2026-000123", "applied"), ("REF-2026-000124", "pending"),
            ("REF-2026-000125", "pending")} <= verdicts


def test_redelivered_events_are_applied_once(fresh_broker, start_worker, prefix):
    ref = f"{prefix}-TWICE"
    records = pathway(ref, ago(16), "on-time")
    start_worker(fresh_broker.bootstrap)
    send(fresh_broker.bootstrap, records + records)
    consume_until_done(fresh_broker.bootstrap, OUTCOMES_TOPIC,
                       lambda rs: len(of(ref, values(rs))) >= 7, timeout=90)
    time.sleep(3)
    everything = of(ref, values(consume_all(fresh_broker.bootstrap, OUTCOMES_TOPIC,
                                            min_records=10**6, timeout=3)))
    assert len(everything) == 7 and len({e["id"] for e in everything}) == 7
    fhir = [r for r in consume_all(fresh_broker.bootstrap, FHIR_TOPIC, min_records=10**6, timeout=3)
            if r.key.decode() == ref]
    assert len(fhir) == len(records)


def test_referrals_for_teams_out_of_scope_produce_nothing(fresh_broker, start_worker, prefix):
    theirs, ours = f"{prefix}-THEIRS", f"{prefix}-OURS"
    worker = start_worker(fresh_broker.bootstrap, PODLINK_TEAMS="POD-OURS")
    send(fresh_broker.bootstrap, pathway(theirs, ago(30), "breached") + pathway(ours, ago(2), "rejected", team="POD-OURS"))
    consume_until_done(fresh_broker.bootstrap, OUTCOMES_TOPIC,
                       lambda rs: any(e["type"].endswith("referral.closed") for e in of(ours, values(rs))),
                       timeout=60)
    time.sleep(3)  # a few deadline scans: the other team's breached referral must not page
    assert of(theirs, values(consume_all(fresh_broker.bootstrap, OUTCOMES_TOPIC, min_records=10**6, timeout=2))) == []
    assert of(theirs, values(consume_all(fresh_broker.bootstrap, ALERTS_TOPIC, min_records=10**6, timeout=2))) == []
    # A care event read before its referral waits ("pending") until the referral says whose it is.
    verdicts = {line.get("outcome") for line in worker.log_lines() if line.get("referral") == theirs}
    assert "out-of-scope" in verdicts and verdicts <= {"out-of-scope", "pending"}
