"""Reading a podlink topic as an operator tool does: no consumer group, so looking changes nothing."""
from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime

from kafka import KafkaConsumer, TopicPartition
from kafka.consumer.fetcher import ConsumerRecord

from podlink.services.kafka_options import client_options
from podlink.streams.worker.settings import Settings


class NoSuchTopic(RuntimeError):
    """The topic is not on the cluster (no worker has created it yet)."""


def read_topic(settings: Settings, topic: str, client_id: str, since: datetime | None = None,
               follow: bool = False, quiet_seconds: float = 0.5) -> Iterator[ConsumerRecord]:
    """The records of `topic` from the earliest kept (or from `since`), oldest first within
    each fetch; with `follow`, new records as they come, until the caller stops.

    Reads with assign() and no consumer group: it commits nothing and leaves no group behind.
    Raises NoSuchTopic when the topic does not exist.
    """
    consumer = KafkaConsumer(**client_options(settings), group_id=None, enable_auto_commit=False,
                             allow_auto_create_topics=False, fetch_max_wait_ms=100, client_id=client_id)
    try:
        partitions = consumer.partitions_for_topic(topic)
        if not partitions:
            raise NoSuchTopic(f"{topic} does not exist on {settings.kafka_bootstrap}")
        tps = [TopicPartition(topic, p) for p in sorted(partitions)]
        consumer.assign(tps)
        _seek_start(consumer, tps, since)
        ends = consumer.end_offsets(tps)
        # Filtered here as well: Tansu answers a time after the last record with an offset.
        since_ms = int(since.timestamp() * 1000) if since else None
        while True:
            batches = consumer.poll(timeout_ms=int(quiet_seconds * 1000))
            fetched = [r for batch in batches.values() for r in batch
                       if since_ms is None or r.timestamp >= since_ms]
            yield from sorted(fetched, key=lambda r: (r.timestamp, r.partition, r.offset))
            # Done once past every end offset and a poll came back empty: some brokers (Tansu)
            # answer end offsets below the last record, so the end offset alone is not enough.
            if not follow and not batches and all(consumer.position(tp) >= ends[tp] for tp in tps):
                return
    finally:
        consumer.close()


def _seek_start(consumer: KafkaConsumer, tps: list[TopicPartition], since: datetime | None) -> None:
    if since is None:
        consumer.seek_to_beginning(*tps)
        return
    found = consumer.offsets_for_times({tp: int(since.timestamp() * 1000) for tp in tps})
    for tp in tps:
        at = found.get(tp)
        if at is None:
            consumer.seek_to_end(tp)  # nothing on this partition since then
        else:
            consumer.seek(tp, at.offset)
