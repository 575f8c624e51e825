"""How podlink's CloudEvents go on a Kafka record: the CloudEvents Kafka protocol binding, structured mode.

Every CloudEvent podlink publishes (outcome events, SLA alerts) is encoded here and nowhere
else; FHIR messages and dead letters are not CloudEvents and do not come through this module.

What the binding (cloudevents/spec, `cloudevents/bindings/kafka-protocol-binding.md`) requires:
- section 3: a receiver uses structured mode only when the record's `content-type` header is
  present and starts with `application/cloudevents`; otherwise it defaults to binary mode and
  looks for `ce_` headers. A record with no header is therefore not a structured-mode event:
  the Java SDK's `CloudEventDeserializer` refuses it ("Unknown encoding").
- section 3.3.1: the header carries the event format's media type; for the JSON format,
  `application/cloudevents+json; charset=UTF-8`. The value is the JSON event format (3.3.2).
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from podlink.streams.core.encoding import json_bytes

Headers = list[tuple[str, bytes]]

CONTENT_TYPE = "application/cloudevents+json; charset=UTF-8"


def structured(event: Mapping[str, Any]) -> tuple[bytes, Headers]:
    """A CloudEvent as a structured-mode record: its value and its headers."""
    return json_bytes(event), [("content-type", CONTENT_TYPE.encode())]
