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
from podlink.fhir_mappings.resource_ids import message_header_id
from podlink.fhir_mappings.systems import (
    BARS_MESSAGE_EVENTS,
    BARS_MESSAGE_REASON,
    MESSAGE_EVENTS,
    PROFILE_MESSAGE_HEADER,
    SOURCE_ENDPOINT,
)
from podlink.streams.core.events import Event

# BaRS codes go without display: we send no term we cannot check against the CodeSystem.
_BARS_REQUEST = coding(BARS_MESSAGE_EVENTS, "servicerequest-request")
_BARS_RESPONSE = coding(BARS_MESSAGE_EVENTS, "servicerequest-response")

EVENT_CODING: dict[str, Json] = {
    "uk.nhs.spa.referral.received": _BARS_REQUEST,
    "uk.nhs.spa.referral.accepted": _BARS_RESPONSE,
    "uk.nhs.spa.referral.rejected": _BARS_RESPONSE,
    "uk.nhs.spa.referral.withdrawn": _BARS_RESPONSE,
    "uk.nhs.pod.contact.made": coding(MESSAGE_EVENTS, "contact-made", "Contact made"),
    "uk.nhs.pod.meeting.scheduled": coding(MESSAGE_EVENTS, "meeting-scheduled", "Network meeting scheduled"),
    "uk.nhs.pod.meeting.held": coding(MESSAGE_EVENTS, "meeting-held", "Network meeting held"),
    "uk.nhs.pod.meeting.cancelled": coding(MESSAGE_EVENTS, "meeting-cancelled", "Network meeting cancelled"),
    "uk.nhs.pod.risk.assessed": coding(MESSAGE_EVENTS, "risk-assessed", "Risk assessed"),
    "uk.nhs.pod.cpa.coordinator-assigned": coding(
        MESSAGE_EVENTS, "cpa-coordinator-assigned", "CPA care coordinator assigned"
    ),
    "uk.nhs.pod.cpa.review-held": coding(MESSAGE_EVENTS, "cpa-review-held", "CPA review held"),
    "uk.nhs.pod.medication.prescribed": coding(MESSAGE_EVENTS, "medication-prescribed", "Medication prescribed"),
    "uk.nhs.pod.measure.recorded": coding(MESSAGE_EVENTS, "measure-recorded", "Outcome measure recorded"),
    "uk.nhs.pod.admission.started": coding(MESSAGE_EVENTS, "admission-started", "Inpatient admission started"),
    "uk.nhs.pod.admission.ended": coding(MESSAGE_EVENTS, "admission-ended", "Inpatient admission ended"),
    "uk.nhs.pod.episode.discharged": coding(MESSAGE_EVENTS, "episode-discharged", "POD episode discharged"),
}

_NEW = {"coding": [coding(BARS_MESSAGE_REASON, "new")]}
_UPDATE = {"coding": [coding(BARS_MESSAGE_REASON, "update")]}


def message_header(event: Event, focus_id: str) -> Json:
    if event.type not in EVENT_CODING:
        raise MappingError(f"no message event for event type {event.type}")
    return {
        "resourceType": "MessageHeader",
        "id": message_header_id(event.source, event.id),
        "meta": meta(PROFILE_MESSAGE_HEADER),
        "eventCoding": EVENT_CODING[event.type],
        "source": {"name": "podlink", "endpoint": SOURCE_ENDPOINT},
        "reason": _NEW if event.type == "uk.nhs.spa.referral.received" else _UPDATE,
        "focus": [reference(focus_id)],
    }
