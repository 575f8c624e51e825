"""GET /fhir/metadata: what intake takes, as a FHIR R4 CapabilityStatement."""
from __future__ import annotations

from datetime import datetime
from importlib.metadata import version
from typing import Any

from podlink.fhir_mappings.inbound import EVENT_TYPES
from podlink.fhir_mappings.systems import MESSAGE_EVENTS
from podlink.streams.core.encoding import utc_text


def capability_statement(base_url: str, started: datetime) -> dict[str, Any]:
    return {
        "resourceType": "CapabilityStatement",
        "status": "active",
        "date": utc_text(started),
        "kind": "instance",
        "software": {"name": "podlink", "version": version("podlink")},
        "implementation": {"description": "podlink intake: FHIR messages from the EPR", "url": base_url},
        "fhirVersion": "4.0.1",
        "format": ["application/fhir+json"],
        "rest": [{"mode": "server", "security": {"description": "Bearer token (one per EPR "
                  "system) or mutual TLS"}, "operation": [
            {"name": "process-message", "definition": "http://hl7.org/fhir/OperationDefinition/MessageHeader-process-message"}]}],
        "messaging": [{
            "endpoint": [{"protocol": {"system": "http://terminology.hl7.org/CodeSystem/message-transport",
                                       "code": "http"}, "address": f"{base_url}/$process-message"}],
            "documentation": "Message events (MessageHeader.eventCoding, system " + MESSAGE_EVENTS
                             + "): " + ", ".join(EVENT_TYPES) + ". See docs/epr-exchange.md.",
            "supportedMessage": [{"mode": "receiver", "definition": f"{MESSAGE_EVENTS}#{code}"}
                                 for code in EVENT_TYPES],
        }],
    }
