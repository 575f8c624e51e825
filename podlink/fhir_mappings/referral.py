"""The referral as a UK Core ServiceRequest from SPA to the POD team."""
from __future__ import annotations

from podlink.fhir_mappings.elements import Json, compact, concept, meta, reference
from podlink.fhir_mappings.errors import require_referral
from podlink.fhir_mappings.resource_ids import patient_id, service_request_id
from podlink.fhir_mappings.systems import (
    ODS_ORGANISATION,
    PROFILE_SERVICE_REQUEST,
    SNOMED,
    Namespace,
)
from podlink.fhir_mappings.terminology import (
    SERVICE_REQUEST_PRIORITY,
    referral_category_crisis,
)
from podlink.streams.core.encoding import utc_text
from podlink.streams.core.episode import Episode
from podlink.streams.core.events import Reason, ReferralReceived

_STATUS = {
    "received": "active",
    "accepted": "active",
    "rejected": "revoked",
    "withdrawn": "revoked",
    "discharged": "completed",
}


def service_request(episode: Episode, ns: Namespace) -> Json:
    """The referral as it stands.

    Organisations are referenced logically (requester by ODS code, performer by team code):
    the EPR knows them by those codes, so they are not sent as resources.
    """
    referral = require_referral(episode)
    return compact({
        "resourceType": "ServiceRequest",
        "id": service_request_id(referral.referralId),
        "meta": meta(PROFILE_SERVICE_REQUEST),
        "identifier": [{"system": ns.referral_id, "value": referral.referralId}],
        "status": _STATUS[episode.status],
        "intent": "order",
        "category": [referral_category_crisis(ns)],
        "priority": SERVICE_REQUEST_PRIORITY[referral.urgency],
        "subject": reference(patient_id(referral.patient.nhsNumber)),
        "authoredOn": utc_text(referral.receivedAt),
        "requester": _requester(referral),
        "performer": [{
            "type": "HealthcareService",
            "identifier": {"system": ns.team_code, "value": referral.referredTo.teamCode},
        }],
        "reasonCode": [_reason(referral.reason)] if referral.reason else None,
        "note": [{"text": text} for text in _closing_note(episode)] or None,
    })


def _requester(referral: ReferralReceived) -> Json | None:
    referrer = referral.referrer
    if referrer is None or referrer.organisationOds is None:
        return None
    return compact({
        "type": "Organization",
        "identifier": {"system": ODS_ORGANISATION, "value": referrer.organisationOds},
        "display": referrer.name,
    })


def _reason(reason: Reason) -> Json:
    if reason.snomedCode:
        return concept(SNOMED, reason.snomedCode, text=reason.text)
    return {"text": reason.text}


def _closing_note(episode: Episode) -> list[str]:
    # R4 ServiceRequest has no statusReason: why a referral was revoked travels as a note.
    if episode.status == "rejected" and episode.rejection:
        rejection = episode.rejection
        redirected = f" (redirected to {rejection.redirectedTo})" if rejection.redirectedTo else ""
        return [f"Rejected by the POD team{redirected}: {rejection.reason}"]
    if episode.status == "withdrawn" and episode.withdrawal and episode.withdrawal.reason:
        return [f"Withdrawn: {episode.withdrawal.reason}"]
    return []
