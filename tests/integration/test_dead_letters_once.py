"""A record is dead-lettered once: re-reading it (a replay, a rebalance) neither sends it to the
dead-letter topic again nor counts it again in podlink_dead_letters_total."""
from __future__ import annotations

from collections import Counter

from podlink.services.samples import pathway
from podlink.streams.worker.settings import CARE_TOPIC, DEAD_LETTER_TOPIC, FHIR_TOPIC, SPA_TOPIC
from tests.integration.test_cli import podlink
from tests.support.broker_io import ago, every_event_has_its_message, send, send_raw, wait_until
from tests.support.brokers import consume_until_done
from tests.support.topic_end import read_to_end
from tests.support.worker_metrics import counting, total


def test_a_replay_neither_dead_letters_nor_counts_a_record_again(kafka_fresh, start_worker, prefix):
    # Apache Kafka: Tansu keeps a stopped worker in its group, and refuses offset commits.
    bootstrap = kafka_fresh.bootstrap
    bad = [(SPA_TOPIC if i % 2 else CARE_TOPIC, f"{prefix}-BAD-{i}".encode(), b"{ not json") for i in range(5)]
    pathways = {f"{prefix}-{i}": pathway(f"{prefix}-{i}", ago(2), "on-time", n=i) for i in range(len(bad))}
    worker = start_worker(bootstrap)
    for events, record in zip(pathways.values(), bad):
        send(bootstrap, events)
        send_raw(bootstrap, [record])
    sent = sum(len(events) for events in pathways.values()) + len(bad)
    consume_until_done(bootstrap, FHIR_TOPIC, every_event_has_its_message(pathways), timeout=120)
    first = wait_until(counting(worker.web_url, sent), 60, "every record counted")
    assert total(first, "podlink_dead_letters_total") == len(bad)

    worker.stop()
    env = {"PODLINK_KAFKA_BOOTSTRAP": bootstrap, "PODLINK_GROUP_ID": worker.group_id}
    # Refused until the broker has seen the stopped worker leave its group.
    wait_until(lambda: podlink("replay", "--to-earliest", env=env).returncode == 0, 60,
               "the group's offsets moved back to the earliest records")
    worker.start()  # same group, same data directory: it reads everything again
    control = {f"{prefix}-CONTROL": pathway(f"{prefix}-CONTROL", ago(2), "on-time", n=99)}
    send(bootstrap, control[f"{prefix}-CONTROL"])
    consume_until_done(bootstrap, FHIR_TOPIC, every_event_has_its_message(control), timeout=120)
    again = wait_until(counting(worker.web_url, sent + len(control[f"{prefix}-CONTROL"])), 120,
                       "every record re-read and the control's counted")

    assert total(again, "podlink_dead_letters_total") == 0
    assert total(again, "podlink_records_total", outcome="dead-letter") == 0
    assert total(again, "podlink_records_total", type="unreadable", outcome="replayed") == len(bad)
    worker.stop()  # flushes whatever it sent
    dead = read_to_end(bootstrap, DEAD_LETTER_TOPIC)
    assert Counter(r.key for r in dead) == Counter(key for _, key, _ in bad)
