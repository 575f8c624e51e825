"""Creating the topics podlink reads and writes, when they are missing."""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from kafka.admin import KafkaAdminClient, NewTopic
from kafka.errors import TopicAlreadyExistsError

from podlink.streams.worker.settings import ALERT_LEDGER_TOPIC, ALERTS_TOPIC, INPUT_TOPICS, OUTPUT_TOPICS

# The alert ledger reads the alerts topic's tail after its last checkpoint, which may be far
# back after an outage of every worker: an alert that expired from it would page on-call again
# for a deadline still open. One small record per alert.
# The ledger's own topic is compacted: one record per alert id (a tombstone once its referral
# can no longer alert) and per alerts partition's checkpoint. Segments roll hourly so that the
# cleaner can drop forgotten ids within hours, which is what a worker's start reads.
TOPIC_CONFIGS = {
    ALERTS_TOPIC: {"retention.ms": "-1"},
    ALERT_LEDGER_TOPIC: {"cleanup.policy": "compact", "segment.ms": "3600000"},
}
# `podlink intake`'s memory of X-Request-Ids: one record per request id (compacted), the hash of
# its body, read back at start so a repeat is recognised after a restart (docs/epr-exchange.md).
INTAKE_REQUESTS_TOPIC = "podlink.intake-requests.v1"
INTAKE_REQUESTS_CONFIG = {"cleanup.policy": "compact"}


class TopicLayoutError(RuntimeError):
    """The existing topics cannot be used as they are (and podlink will not alter them)."""


def ensure_topics(bootstrap: str, partitions: int, replication_factor: int = 1,
                  client_options: Mapping[str, Any] | None = None) -> int:
    """Create missing topics; return the partition count of the input topics.

    Both input topics must have the same count: the referral id keys both, and only equal
    counts put all of one referral's events in the same partition number of each.
    `client_options` are kafka-python's security arguments (`kafka_security.client_options`).
    """
    admin = KafkaAdminClient(bootstrap_servers=bootstrap, client_id="podlink-admin",
                             **(client_options or {}))
    try:
        wanted = INPUT_TOPICS + OUTPUT_TOPICS + (ALERT_LEDGER_TOPIC,)
        existing = set(admin.list_topics())
        missing = [name for name in wanted if name not in existing]
        existing_inputs = [name for name in INPUT_TOPICS if name in existing]
        counts = _partition_counts(admin, existing_inputs)
        if len(set(counts.values())) > 1:
            raise TopicLayoutError(f"input topics have different partition counts: {counts}")
        count = next(iter(counts.values()), partitions)
        if missing:
            try:
                admin.create_topics([
                    NewTopic(name, num_partitions=count, replication_factor=replication_factor,
                             topic_configs=TOPIC_CONFIGS.get(name, {}))
                    for name in missing
                ])
            except TopicAlreadyExistsError:
                pass  # another worker created it first
        return count
    finally:
        admin.close()


def _partition_counts(admin: KafkaAdminClient, names: list[str]) -> dict[str, int]:
    if not names:
        return {}
    return {t["name"]: len(t["partitions"]) for t in admin.describe_topics(names)}

