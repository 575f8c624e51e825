"""`podlink worker` end to end on real brokers: records in, FHIR messages, outcomes, alerts out."""
from __future__ import annotations

import json

from podlink.services.samples import pathway
from podlink.streams.worker.settings import (
    ALERTS_TOPIC,
    CARE_TOPIC,
    DEAD_LETTER_TOPIC,
    FHIR_TOPIC,
    OUTCOMES_TOPIC,
    SPA_TOPIC,
)
from tests.support.broker_io import ago, of, send, send_raw, values, wait_until
from tests.support.brokers import consume_until_done
from tests.support.contract_examples import invalid_files, load, valid_files
from tests.support.worker_metrics import after_more_scans, counting, total


def test_a_referral_flows_to_fhir_messages_and_outcome_events(fresh_broker, start_worker, prefix):
    ontime, care_first = f"{prefix}-ONTIME", f"{prefix}-CAREFIRST"
    records = pathway(ontime, ago(16), "on-time") + pathway(care_first, ago(16), "care-first")
    start_worker(fresh_broker.bootstrap)
    send(fresh_broker.bootstrap, records)

    expected = ["referral.registered", "referral.accepted", "contact.first", "meeting.first",
                "meeting.held", "meeting.held", "meeting.held", "measure.recorded", "deadline.met"]
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


def test_a_backdated_referral_is_alerted_by_a_ledger_that_starts_and_stops_with_the_worker(
        fresh_broker, start_worker, prefix):
    worker = start_worker(fresh_broker.bootstrap)
    ref = f"{prefix}-LATE"
    send(fresh_broker.bootstrap, pathway(ref, ago(30), "breached")[:1])
    alerts = consume_until_done(fresh_broker.bootstrap, ALERTS_TOPIC,
                                lambda rs: bool(of(ref, values(rs))), timeout=60)
    alert = of(ref, values(alerts))[0]
    assert alert["type"] == "uk.nhs.podlink.sla.breached" and alert["specversion"] == "1.0"
    assert alert["data"]["policy"] == "first-meeting" and alert["data"]["referralId"] == ref
    assert alert["data"]["deadline"].endswith("Z") and alert["data"]["deadlineLocal"]

    worker.wait_for_log(lambda line: line.get("event") == "alert raised", timeout=30)

    def events() -> list[str]:
        return [line["event"] for line in worker.log_lines()
                if line.get("event") in ("alert ledger started", "alert raised", "alert ledger stopped")]
    assert events() == ["alert ledger started", "alert raised"]
    worker.stop()  # SIGTERM, as an orchestrator stops it
    assert worker.proc is not None and worker.proc.returncode is not None
    assert events() == ["alert ledger started", "alert raised", "alert ledger stopped"]


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
    # Every valid contract example was accepted: once every record is counted, only the bad
    # ones were dead-lettered.
    metrics = wait_until(counting(worker.web_url, len(bad) + len(good) + 1), 60, "every record counted")
    assert total(metrics, "podlink_records_total", outcome="dead-letter") == len(bad)
    assert total(metrics, "podlink_dead_letters_total") == len(bad)
    verdicts = {(line.get("referral"), line.get("outcome")) for line in worker.log_lines()}
    # The rejected and withdrawn examples have no referral.received: they wait for it.
    assert {("REF-2026-000123", "applied"), ("REF-2026-000124", "pending"),
            ("REF-2026-000125", "pending")} <= verdicts


def test_redelivered_events_are_applied_once(fresh_broker, start_worker, prefix):
    ref = f"{prefix}-TWICE"
    records = pathway(ref, ago(16), "on-time")
    worker = start_worker(fresh_broker.bootstrap)
    send(fresh_broker.bootstrap, records + records)
    # Every copy read: the first of each applied (or pending, if read before its referral), the
    # second a duplicate, which sends nothing.
    metrics = wait_until(counting(worker.web_url, 2 * len(records)), 90, "every copy counted")
    assert total(metrics, "podlink_records_total", outcome="duplicate") == len(records)
    assert (total(metrics, "podlink_records_total", outcome="applied")
            + total(metrics, "podlink_records_total", outcome="pending")) == len(records)
    everything = of(ref, values(consume_until_done(fresh_broker.bootstrap, OUTCOMES_TOPIC,
                                                   lambda rs: len(of(ref, values(rs))) >= 7, timeout=60)))
    assert len(everything) == 7 and len({e["id"] for e in everything}) == 7
    fhir = consume_until_done(fresh_broker.bootstrap, FHIR_TOPIC,
                              lambda rs: sum(r.key.decode() == ref for r in rs) >= len(records), timeout=60)
    assert len([r for r in fhir if r.key.decode() == ref]) == len(records)


def test_referrals_for_teams_out_of_scope_produce_nothing(fresh_broker, start_worker, prefix):
    theirs, ours, control = f"{prefix}-THEIRS", f"{prefix}-OURS", f"{prefix}-OURS-LATE"
    worker = start_worker(fresh_broker.bootstrap, PODLINK_TEAMS="POD-OURS")
    sent = (pathway(theirs, ago(30), "breached") + pathway(ours, ago(2), "rejected", team="POD-OURS")
            + pathway(control, ago(30), "breached", team="POD-OURS")[:1])
    send(fresh_broker.bootstrap, sent)
    outcomes = consume_until_done(
        fresh_broker.bootstrap, OUTCOMES_TOPIC,
        lambda rs: any(e["type"].endswith("referral.closed") for e in of(ours, values(rs))), timeout=60)
    wait_until(counting(worker.web_url, len(sent)), 60, "every record counted")
    # Two scans after every record was read, each raising all that was due: the other team's
    # breached referral would have paged by now; our own late one has.
    metrics = after_more_scans(worker.web_url, 2)
    alerts = consume_until_done(fresh_broker.bootstrap, ALERTS_TOPIC,
                                lambda rs: bool(of(control, values(rs))), timeout=30)
    assert total(metrics, "podlink_alerts_total") == 1
    assert of(theirs, values(alerts)) == [] and of(theirs, values(outcomes)) == []
    assert total(metrics, "podlink_records_total", outcome="applied") == len(sent) - 3
    # A care event read before its referral waits ("pending") until the referral says whose it is.
    verdicts = {line.get("outcome") for line in worker.log_lines() if line.get("referral") == theirs}
    assert "out-of-scope" in verdicts and verdicts <= {"out-of-scope", "pending"}
