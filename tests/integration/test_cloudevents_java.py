"""podlink's CloudEvents as another consumer reads them: the official CloudEvents Java SDK.

podlink writes its outcome events and alerts itself; the test that they follow the CloudEvents
Kafka protocol binding reads them with code podlink does not use to write them: the SDK's
`CloudEventDeserializer` (io.cloudevents:cloudevents-kafka 4.0.1), run by
podlink_devtools.cloudevents_reader. On Apache Kafka only: the reader stops at the end offsets
the broker reports, which Tansu under-reports.
"""
from __future__ import annotations

import json
import uuid

from podlink_devtools.cloudevents_reader import read_with_java_sdk

from podlink.services.samples import pathway
from podlink.streams.worker.settings import ALERTS_TOPIC, OUTCOMES_TOPIC
from tests.support.broker_io import ago, of, send, values
from tests.support.brokers import consume_until_done, create_topics, produce
from tests.support.topic_end import read_to_end

STRUCTURED_JSON = ("content-type", b"application/cloudevents+json; charset=UTF-8")
# What an on-time pathway and a breached one publish (as in test_pipeline).
ON_TIME_OUTCOMES = 7  # registered, accepted, first contact, first meeting, three meetings held
BREACHED_OUTCOMES = 3  # registered, accepted, first contact


def test_the_java_sdk_reads_every_outcome_event_and_alert(kafka_fresh, start_worker, prefix):
    bootstrap = kafka_fresh.bootstrap
    on_time, breached = f"{prefix}-ONTIME", f"{prefix}-LATE"
    worker = start_worker(bootstrap)
    send(bootstrap, pathway(on_time, ago(16), "on-time") + pathway(breached, ago(30), "breached"))

    consume_until_done(bootstrap, OUTCOMES_TOPIC, lambda rs: (
        len(of(on_time, values(rs))) >= ON_TIME_OUTCOMES
        and len(of(breached, values(rs))) >= BREACHED_OUTCOMES), timeout=90)
    consume_until_done(bootstrap, ALERTS_TOPIC, lambda rs: bool(of(breached, values(rs))), timeout=60)
    worker.stop()  # nothing more arrives: both readers see the same records

    for topic in (OUTCOMES_TOPIC, ALERTS_TOPIC):
        written = {(r.partition, r.offset): r for r in read_to_end(bootstrap, topic)}
        read = {(line["partition"], line["offset"]): line for line in read_with_java_sdk(bootstrap, topic)}
        assert read.keys() == written.keys()
        for where, record in written.items():
            event = json.loads(record.value)
            assert event["subject"].startswith(prefix)  # a fresh broker: every record is ours
            assert record.headers == [STRUCTURED_JSON]
            assert read[where] == {"partition": where[0], "offset": where[1], "ok": True, "id": event["id"],
                                   "type": event["type"], "subject": event["subject"]}


def test_without_the_content_type_header_the_java_sdk_refuses_the_event(kafka_broker):
    # Why the header matters: the binding (section 3) reads a record without it as binary mode,
    # and podlink's records carry no `ce_` headers.
    topic = f"cloudevents-binding-{uuid.uuid4().hex[:8]}"
    event = {"specversion": "1.0", "id": "7d1f0c9e-0b8f-5d55-9a43-1b2d8f4c2a10", "source": "/podlink",
             "type": "uk.nhs.podlink.referral.registered", "subject": "REF-BINDING", "data": {}}
    value = json.dumps(event).encode()
    create_topics(kafka_broker.bootstrap, [topic])
    produce(kafka_broker.bootstrap, topic, [(b"REF-BINDING", value)], [STRUCTURED_JSON])
    produce(kafka_broker.bootstrap, topic, [(b"REF-BINDING", value)])

    with_header, without = read_with_java_sdk(kafka_broker.bootstrap, topic)
    assert (with_header["ok"], with_header["id"]) == (True, event["id"])
    assert without == {"partition": 0, "offset": 1, "ok": False,
                       "error": "Could not parse. Unknown encoding. Invalid content type or spec version"}
