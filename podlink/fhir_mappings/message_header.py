"""The MessageHeader: what happened, in BaRS terms where BaRS has a term for it.

BaRS covers the referral itself (`servicerequest-request` with reason `new`, then
`servicerequest-response` with reason `update` for the POD team's answer). Care events have no
BaRS event, so they use our own event codes, with the BaRS reason `update`.

No destination is set: the EPR's endpoint and routing (the NHSD-Target-Identifier header) are
deployment settings that the sending layer adds; a pure mapping cannot know them.
"""
from __future__ import annotations

from podlink.fhir_mappings.elements import Json, coding, meta, reference
from podlink.fhir_mappings.errors import MappingError
from podlink.fhir_mappings.local_codes import MESSAGE_EVENTS
from podlink.fhir_mappings.resource_ids import message_header_id
from podlink.fhir_mappings.systems import (
    BARS_MESSAGE_EVENTS,
    BARS_MESSAGE_REASON,
    PROFILE_MESSAGE_HEADER,
    SOURCE_ENDPOINT,
    Namespace,
)
from podlink.fhir_mappings.terminology import local_coding
from podlink.streams.core.events import Event

# BaRS codes go without display: we send no term we cannot check against the CodeSystem.
_BARS_REQUEST = coding(BARS_MESSAGE_EVENTS, "servicerequest-request")
_BARS_RESPONSE = coding(BARS_MESSAGE_EVENTS, "servicerequest-response")

_BARS_EVENTS: dict[str, Json] = {
    "uk.nhs.spa.referral.received": _BARS_REQUEST,
    "uk.nhs.spa.referral.accepted": _BARS_RESPONSE,
    "uk.nhs.spa.referral.rejected": _BARS_RESPONSE,
    "uk.nhs.spa.referral.withdrawn": _BARS_RESPONSE,
}
# The other contract event types, by their local message event code.
_LOCAL_EVENTS = {
    "uk.nhs.pod.contact.made": "contact-made",
    "uk.nhs.pod.meeting.scheduled": "meeting-scheduled",
    "uk.nhs.pod.meeting.held": "meeting-held",
    "uk.nhs.pod.meeting.cancelled": "meeting-cancelled",
    "uk.nhs.pod.risk.assessed": "risk-assessed",
    "uk.nhs.pod.cpa.coordinator-assigned": "cpa-coordinator-assigned",
    "uk.nhs.pod.cpa.review-held": "cpa-review-held",
    "uk.nhs.pod.medication.prescribed": "medication-prescribed",
    "uk.nhs.pod.measure.recorded": "measure-recorded",
    "uk.nhs.pod.admission.started": "admission-started",
    "uk.nhs.pod.admission.ended": "admission-ended",
    "uk.nhs.pod.episode.discharged": "episode-discharged",
}


def event_coding(ns: Namespace, event_type: str) -> Json:
    """The MessageHeader.eventCoding of a contract event type (MappingError if it has none)."""
    if event_type in _BARS_EVENTS:
        return _BARS_EVENTS[event_type]
    if event_type in _LOCAL_EVENTS:
        return local_coding(ns, MESSAGE_EVENTS, _LOCAL_EVENTS[event_type])
    raise MappingError(f"no message event for event type {event_type}")


_NEW = {"coding": [coding(BARS_MESSAGE_REASON, "new")]}
_UPDATE = {"coding": [coding(BARS_MESSAGE_REASON, "update")]}


def message_header(event: Event, focus_ids: list[str], ns: Namespace) -> Json:
    """The header; `focus_ids` are the resources the event is about, the main one first."""
    return {
        "resourceType": "MessageHeader",
        "id": message_header_id(event.source, event.id),
        "meta": meta(PROFILE_MESSAGE_HEADER),
        "eventCoding": event_coding(ns, event.type),
        "source": {"name": "podlink", "endpoint": SOURCE_ENDPOINT},
        "reason": _NEW if event.type == "uk.nhs.spa.referral.received" else _UPDATE,
        "focus": [reference(focus_id) for focus_id in focus_ids],
    }
