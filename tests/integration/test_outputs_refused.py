"""An output the broker refuses stops the worker before its input is committed: nothing is lost."""
from __future__ import annotations

from kafka.admin import ConfigResource, ConfigResourceType, KafkaAdminClient

from podlink.services.samples import pathway
from podlink.streams.worker.settings import FHIR_TOPIC
from tests.support.broker_io import ago, every_event_has_its_message, send, wait_until
from tests.support.brokers import consume_until_done


def _fhir_topic_takes_at_most(bootstrap: str, max_bytes: int) -> None:
    admin = KafkaAdminClient(bootstrap_servers=bootstrap, client_id="podlink-test")
    try:
        admin.alter_configs([ConfigResource(ConfigResourceType.TOPIC, FHIR_TOPIC,
                                            configs={"max.message.bytes": str(max_bytes)})])
    finally:
        admin.close()


def test_a_refused_fhir_message_stops_the_worker_and_is_sent_after_the_restart(kafka_fresh, start_worker, prefix):
    bootstrap = kafka_fresh.bootstrap
    worker = start_worker(bootstrap)
    # A FHIR message is several kilobytes: every one is now too large for the topic.
    _fhir_topic_takes_at_most(bootstrap, 1000)
    pathways = {prefix: pathway(prefix, ago(2), "on-time")}
    send(bootstrap, pathways[prefix])
    assert worker.proc is not None
    wait_until(lambda: worker.proc.poll() is not None, 120, "the worker to stop")
    assert worker.proc.returncode == 69  # EX_UNAVAILABLE: for a supervisor to restart it
    stopped = [line for line in worker.log_lines() if line.get("event", "").startswith("outputs not delivered")]
    assert stopped and stopped[0]["error"] == "MessageSizeTooLargeError", worker.log_text()[-2000:]

    _fhir_topic_takes_at_most(bootstrap, 1_048_588)  # Apache Kafka's default
    worker.start()  # same group and data: it reads from the last commit, before the refused batch
    consume_until_done(bootstrap, FHIR_TOPIC, every_event_has_its_message(pathways), timeout=120)
