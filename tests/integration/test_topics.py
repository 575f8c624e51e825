"""The topics a worker creates, and the layouts it refuses, on Apache Kafka."""
from __future__ import annotations

import pytest
from kafka import KafkaAdminClient
from kafka.admin import ConfigResource, ConfigResourceType, NewTopic

from podlink.services.topics import TopicLayoutError, ensure_topics
from podlink.streams.worker.settings import (
    ALERT_LEDGER_TOPIC,
    ALERTS_TOPIC,
    CARE_TOPIC,
    INPUT_TOPICS,
    OUTPUT_TOPICS,
    SPA_TOPIC,
)


def test_missing_topics_are_created_alike_and_alerts_are_kept_for_ever(kafka_fresh):
    assert ensure_topics(kafka_fresh.bootstrap, partitions=4) == 4
    admin = KafkaAdminClient(bootstrap_servers=kafka_fresh.bootstrap)
    try:
        described = {t["name"]: len(t["partitions"]) for t in admin.describe_topics()}
        assert {name: described.get(name) for name in INPUT_TOPICS + OUTPUT_TOPICS} == \
            {name: 4 for name in INPUT_TOPICS + OUTPUT_TOPICS}
        described = admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, ALERTS_TOPIC)])
        assert described["topic"][ALERTS_TOPIC]["retention.ms"]["value"] == "-1"
    finally:
        admin.close()


def test_the_alert_ledger_topic_is_created_compacted_with_the_others_partition_count(kafka_fresh):
    # A deleted ledger record would be an alert a start no longer knows, below its checkpoint.
    assert ensure_topics(kafka_fresh.bootstrap, partitions=3) == 3
    admin = KafkaAdminClient(bootstrap_servers=kafka_fresh.bootstrap)
    try:
        described = {t["name"]: len(t["partitions"]) for t in admin.describe_topics([ALERT_LEDGER_TOPIC])}
        assert described == {ALERT_LEDGER_TOPIC: 3}
        configs = admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, ALERT_LEDGER_TOPIC)])
        assert configs["topic"][ALERT_LEDGER_TOPIC]["cleanup.policy"]["value"] == "compact"
    finally:
        admin.close()


def test_input_topics_with_different_partition_counts_are_refused(kafka_fresh):
    admin = KafkaAdminClient(bootstrap_servers=kafka_fresh.bootstrap)
    admin.create_topics([NewTopic(SPA_TOPIC, 3, 1), NewTopic(CARE_TOPIC, 6, 1)])
    admin.close()
    with pytest.raises(TopicLayoutError, match="different partition counts"):
        ensure_topics(kafka_fresh.bootstrap, partitions=3)
