"""A worker that takes over from the changelogs alone (no local store) recovers every record of
them before it reads input or raises an alert, on Tansu too, whose end offsets stop short."""
from __future__ import annotations

from kafka import KafkaConsumer, TopicPartition

from podlink.services.samples import pathway
from tests.support.broker_io import ago, send, wait_until
from tests.support.worker_metrics import after_more_scans, counting, total


def _changelog_records(bootstrap: str) -> int:
    """Every record on the changelog topics, counted by reading them through (until a poll
    brings nothing: Tansu's end offsets cannot say where to stop)."""
    consumer = KafkaConsumer(bootstrap_servers=bootstrap)
    try:
        partitions = [TopicPartition(topic, p) for topic in consumer.topics() if topic.endswith("-changelog")
                      for p in consumer.partitions_for_topic(topic) or ()]
        consumer.assign(partitions)
        consumer.seek_to_beginning(*partitions)
        read = 0
        while batch := consumer.poll(timeout_ms=2000):
            read += sum(len(records) for records in batch.values())
        return read
    finally:
        consumer.close()


def test_a_worker_taking_over_from_the_changelogs_recovers_them_all_and_pages_no_one_again(
        fresh_broker, start_worker, prefix):
    bootstrap = fresh_broker.bootstrap
    # A day and a half ago: every first meeting was held on time, and some referrals' were not.
    held = [pathway(f"{prefix}-HELD-{i}", ago(36), "on-time", n=i) for i in range(10)]
    missed = [pathway(f"{prefix}-MISSED-{i}", ago(36), "breached", n=10 + i) for i in range(3)]
    records = [r for p in held + missed for r in p]
    first = start_worker(bootstrap)
    send(bootstrap, records)
    wait_until(counting(first.web_url, len(records)), 90, "every record counted")
    wait_until(lambda: total(after_more_scans(first.web_url, 2), "podlink_alerts_total") >= 3, 90,
               "the three missed first meetings paged")
    first.stop()

    second = start_worker(bootstrap)  # a new data directory: only the changelogs to go on
    recovered = second.wait_for_log(lambda line: line.get("event") == "tables recovered", 60)
    assert recovered["changelog_records"] == _changelog_records(bootstrap)
    # Its scans find every deadline met or already paged: nothing goes out again.
    assert total(after_more_scans(second.web_url, 3), "podlink_alerts_total") == 0


def test_a_worker_restarted_with_its_own_store_reads_no_changelog_record_again(fresh_broker, start_worker, prefix):
    # Its store remembers how far it had written each changelog: after an orderly stop, with
    # nothing written since, there is nothing to read again.
    bootstrap = fresh_broker.bootstrap
    records = [r for i in range(8) for r in pathway(f"{prefix}-{i}", ago(36), "on-time", n=i)]
    worker = start_worker(bootstrap)
    send(bootstrap, records)
    wait_until(counting(worker.web_url, len(records)), 90, "every record counted")
    assert _changelog_records(bootstrap) > 0
    worker.stop()
    seen = len(worker.log_lines())
    worker.start()  # the same data directory and group

    def recoveries() -> list[dict]:
        return [line for line in worker.log_lines()[seen:] if line.get("event") == "tables recovered"]

    wait_until(recoveries, 60, "the tables recovered")
    assert recoveries()[0]["changelog_records"] == 0
