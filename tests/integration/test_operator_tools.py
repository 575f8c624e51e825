"""`podlink dead-letters` and `podlink replay` as trust IT runs them (docs/operations.md)."""
from __future__ import annotations

import json
import time
from collections import Counter
from datetime import datetime, timedelta, timezone

from kafka import KafkaAdminClient, KafkaProducer

from podlink.services.embedded_broker import EmbeddedBroker
from podlink.services.samples import pathway
from podlink.streams.worker.settings import (
    ALERTS_TOPIC,
    DEAD_LETTER_TOPIC,
    FHIR_TOPIC,
    INPUT_TOPICS,
    OUTCOMES_TOPIC,
    SPA_TOPIC,
)
from tests.integration.test_cli import podlink
from tests.integration.test_pipeline import ago, of, send, send_raw, values
from tests.support.brokers import consume_all, consume_until_done


def test_dead_letters_are_listed_with_reason_and_source_but_no_patient_data(fresh_broker, start_worker, prefix):
    bootstrap = fresh_broker.bootstrap
    env = {"PODLINK_KAFKA_BOOTSTRAP": bootstrap}
    start_worker(bootstrap)
    empty = podlink("dead-letters", env=env)
    assert (empty.returncode, empty.stdout.strip()) == (0, "no dead letters")

    referral = pathway(f"{prefix}-BADNHS", ago(2), "on-time")[0].value
    nhs_number, family = referral["data"]["patient"]["nhsNumber"], referral["data"]["patient"]["name"]["family"]
    referral["data"]["patient"]["nhsNumber"] = nhs_number[:9] + str((int(nhs_number[9]) + 1) % 10)
    bad_nhs = referral["data"]["patient"]["nhsNumber"]
    send_raw(bootstrap, [(SPA_TOPIC, referral["subject"].encode(), json.dumps(referral).encode()),
                         (SPA_TOPIC, f"{prefix}-JUNK".encode(), b"{ not json")])
    dead = consume_until_done(bootstrap, DEAD_LETTER_TOPIC, lambda rs: len(rs) >= 2, timeout=90)
    reasons = {(h["podlink-source-topic"], h["podlink-source-partition"], h["podlink-source-offset"]): h["podlink-error"]
               for h in (dict(r.headers) for r in dead)}

    listed = podlink("dead-letters", env=env)
    assert listed.returncode == 0, listed.stderr
    lines = listed.stdout.splitlines()
    assert len(lines) == 2
    for line in lines:
        topic, rest = line.split()[1].split("/")  # topic/partition@offset
        partition, offset = rest.split("@")
        reason = reasons[(topic.encode(), partition.encode(), offset.encode())]
        assert line.endswith(f"reason={reason.decode()}")
    assert any("modulus 11" in line and f"key={prefix}-BADNHS" in line for line in lines)
    assert any("value is not JSON" in line and "value=10 bytes" in line for line in lines)
    assert bad_nhs not in listed.stdout and family not in listed.stdout and "not json" not in listed.stdout
    assert bad_nhs not in listed.stderr

    shown = podlink("dead-letters", "--show-values", env=env)
    assert bad_nhs in shown.stdout and family in shown.stdout and "{ not json" in shown.stdout
    assert "patient data" in shown.stderr

    [first] = [json.loads(line) for line in podlink("dead-letters", "--json", "--limit", "1", env=env).stdout.splitlines()]
    assert first["source_topic"] == SPA_TOPIC and first["reason"] and "value" not in first
    assert first["source_offset"] is not None and first["value_bytes"] > 0

    later = (datetime.now(timezone.utc) + timedelta(minutes=5)).isoformat()
    assert podlink("dead-letters", "--since", later, env=env).stdout.strip() == "no dead letters"


def test_replay_refuses_a_group_that_does_not_exist(broker):
    result = podlink("replay", "--to-earliest",
                     env={"PODLINK_KAFKA_BOOTSTRAP": broker.bootstrap, "PODLINK_GROUP_ID": "podlink-no-such-group"})
    assert result.returncode == 2
    assert "no consumer group podlink-no-such-group" in result.stderr


def test_replay_refuses_when_the_broker_cannot_say_whether_workers_run(start_worker):
    # Tansu's group description cannot be read by kafka-python, and Tansu keeps a stopped
    # worker in its group: replay must refuse there rather than guess.
    with EmbeddedBroker() as tansu:
        worker = start_worker(tansu.bootstrap, PODLINK_RECOVERY_CONSISTENCY_CHECK="false")
        send(tansu.bootstrap, pathway("REF-TANSU", ago(2), "on-time")[:1])
        worker.wait_for_log(lambda line: line.get("event") == "record", timeout=60)  # in the group
        worker.stop()
        env = {"PODLINK_KAFKA_BOOTSTRAP": tansu.bootstrap, "PODLINK_GROUP_ID": worker.group_id}
        result = podlink("replay", "--to-earliest", env=env)
    assert result.returncode == 2
    assert "refused: cannot tell whether consumer group" in result.stderr and "Tansu" in result.stderr


def _committed(bootstrap: str, group: str) -> dict[tuple[str, int], int]:
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        offsets = admin.list_group_offsets({group: None})[group]
        return {(tp.topic, tp.partition): mark.offset for tp, mark in offsets.items() if tp.topic in INPUT_TOPICS}
    finally:
        admin.close()


def _wait_until_empty(bootstrap: str, group: str, timeout: float) -> None:
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        deadline = time.monotonic() + timeout
        while admin.describe_groups([group])[group]["members"]:
            assert time.monotonic() < deadline, f"group {group} still has members"
            time.sleep(0.5)
    finally:
        admin.close()


def test_replay_from_a_time_re_reads_later_records_and_resends_outputs_with_the_same_ids(
        kafka_fresh, start_worker, prefix):
    # Needs Apache Kafka: Tansu keeps a stopped worker in its group, and refuses offset commits.
    bootstrap = kafka_fresh.bootstrap
    before = [pathway(f"{prefix}-A{i}", ago(16), "on-time", n=i) for i in range(3)]
    after = [pathway(f"{prefix}-B{i}", ago(16), "on-time", n=10 + i) for i in range(2)]
    breached = pathway(f"{prefix}-LATE", ago(30), "breached")[:1]
    worker = start_worker(bootstrap)
    env = {"PODLINK_KAFKA_BOOTSTRAP": bootstrap, "PODLINK_GROUP_ID": worker.group_id}
    send(bootstrap, [r for p in before for r in p] + breached)
    time.sleep(1.5)
    replay_from = datetime.now(timezone.utc)
    time.sleep(1.5)
    send(bootstrap, [r for p in after for r in p])
    total = sum(len(p) for p in before + after) + 1
    fhir = consume_until_done(bootstrap, FHIR_TOPIC, lambda rs: len(rs) >= total, timeout=120)
    consume_until_done(bootstrap, ALERTS_TOPIC, lambda rs: bool(of(f"{prefix}-LATE", values(rs))), timeout=60)

    refused = podlink("replay", "--to-earliest", env=env)
    assert refused.returncode == 2 and "Stop every podlink worker" in refused.stderr

    worker.stop()
    _wait_until_empty(bootstrap, worker.group_id, timeout=30)
    committed = _committed(bootstrap, worker.group_id)
    assert sum(committed.values()) == total  # the worker committed everything before it stopped

    everything = podlink("replay", "--to-earliest", "--dry-run", env=env)
    assert everything.returncode == 0, everything.stderr
    assert f", {total} records to re-read" in everything.stdout.splitlines()[0]
    (_, busiest), count = max(((w, n) for w, n in committed.items() if w[0] == SPA_TOPIC), key=lambda x: x[1])
    one = podlink("replay", "--to-offset", "0", "--topic", SPA_TOPIC, "--partition", str(busiest), "--dry-run", env=env)
    assert one.stdout.splitlines()[0].endswith(f"1 partition(s), 1 to move back, {count} records to re-read")
    assert _committed(bootstrap, worker.group_id) == committed  # a dry run changes nothing

    moved = podlink("replay", "--to-datetime", replay_from.isoformat(), env=env)
    assert moved.returncode == 0, moved.stderr
    rereads = sum(len(p) for p in after)
    assert f", {rereads} records to re-read" in moved.stdout.splitlines()[0]
    assert sum(_committed(bootstrap, worker.group_id).values()) == total - rereads

    # Care events read before their referral were logged "pending" then, and are replays now.
    first_run = {(l["topic"], l["partition"], l["offset"]) for l in worker.log_lines() if l.get("event") == "record"}
    worker.start()  # same group, same data directory

    def replayed() -> list[dict]:
        return [l for l in worker.log_lines() if l.get("event") == "record" and l["outcome"] == "replayed"]

    worker.wait_for_log(lambda _: len(replayed()) >= rereads, timeout=120)
    assert len(replayed()) == rereads
    assert {l["referral"] for l in replayed()} == {f"{prefix}-B{i}" for i in range(2)}
    assert {(l["topic"], l["partition"], l["offset"]) for l in replayed()} <= first_run

    resent = consume_until_done(bootstrap, FHIR_TOPIC, lambda rs: len(rs) >= total + rereads, timeout=60)
    ids = Counter(json.loads(r.value)["id"] for r in resent)
    assert set(ids) == {json.loads(r.value)["id"] for r in fhir}  # the same ids, sent again
    assert sorted(ids.values()).count(2) == rereads
    time.sleep(4)  # several deadline scans after the replay
    alerts = values(consume_all(bootstrap, ALERTS_TOPIC, min_records=10**6, timeout=3))
    assert [a["subject"] for a in alerts] == [f"{prefix}-LATE"]  # raised once, not again
    outcomes = values(consume_all(bootstrap, OUTCOMES_TOPIC, min_records=10**6, timeout=3))
    assert len({o["id"] for o in outcomes}) < len(outcomes)  # outcomes re-sent with their ids


def _dead_letter(source_offset: int, reason: str) -> tuple[bytes, bytes, list[tuple[str, bytes]]]:
    return (b"REF-OLD", b"{ not json", [("podlink-error", reason.encode()),
                                       ("podlink-source-topic", SPA_TOPIC.encode()),
                                       ("podlink-source-partition", b"0"),
                                       ("podlink-source-offset", str(source_offset).encode())])


def test_dead_letters_lists_each_source_record_once_and_refuses_a_limit_below_one():
    # Older versions dead-lettered a record again on every replay: offset 5 twice here.
    with EmbeddedBroker() as tansu:
        producer = KafkaProducer(bootstrap_servers=tansu.bootstrap)
        for source_offset, reason in ((5, "value is not JSON (first)"), (6, "value is not JSON (other)"),
                                      (5, "value is not JSON (repeat)")):
            key, value, headers = _dead_letter(source_offset, reason)
            producer.send(DEAD_LETTER_TOPIC, key=key, value=value, headers=headers)
            producer.flush()  # one at a time: the listing is oldest first
        producer.close()
        env = {"PODLINK_KAFKA_BOOTSTRAP": tansu.bootstrap}
        listed = podlink("dead-letters", env=env)
        refused = podlink("dead-letters", "--limit", "-1", env=env)
    assert listed.returncode == 0, listed.stderr
    lines = listed.stdout.splitlines()
    assert [line.split()[1] for line in lines] == [f"{SPA_TOPIC}/0@5", f"{SPA_TOPIC}/0@6"]
    assert lines[0].endswith("reason=value is not JSON (first)")
    assert "2 shown of 2 on podlink.dead-letter.v1, 1 repeat(s) of the same source record hidden" in listed.stderr
    assert refused.returncode == 2 and refused.stdout == ""
    assert "argument --limit: must be 1 or more, not -1" in refused.stderr
