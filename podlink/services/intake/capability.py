"""GET /fhir/metadata: what intake takes, as a FHIR R4 CapabilityStatement."""
from __future__ import annotations

from datetime import datetime
from importlib.metadata import version
from typing import Any

from podlink.fhir_mappings.inbound import EVENT_TYPES
from podlink.streams.core.encoding import utc_text


def capability_statement(base_url: str, started: datetime, message_events: str) -> dict[str, Any]:
    """`message_events`: the system of podlink's message event codes (the trust's namespace)."""
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
            "documentation": "Message events (MessageHeader.eventCoding, system " + message_events
                             + "): " + ", ".join(EVENT_TYPES) + ". See docs/epr-exchange.md.",
            "supportedMessage": [{"mode": "receiver", "definition": f"{message_events}#{code}"}
                                 for code in EVENT_TYPES],
        }],
    }
