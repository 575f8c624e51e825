"""Reading a topic to its end as the broker reports it now: Apache Kafka only (Tansu under-reports
end offsets), with producers stopped or flushed, so that "no more records" needs no waiting."""
from __future__ import annotations

from kafka import KafkaConsumer, TopicPartition
from kafka.consumer.fetcher import ConsumerRecord

from tests.support.brokers import consume_until_done


def records_on(bootstrap: str, topic: str) -> int:
    consumer = KafkaConsumer(bootstrap_servers=bootstrap)
    try:
        tps = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or ()]
        return sum(consumer.end_offsets(tps).values())
    finally:
        consumer.close()


def read_to_end(bootstrap: str, topic: str, timeout: float = 60) -> list[ConsumerRecord]:
    end = records_on(bootstrap, topic)
    found = consume_until_done(bootstrap, topic, lambda rs: len(rs) >= end, timeout) if end else []
    assert len(found) == end, (topic, end, len(found))
    return found
