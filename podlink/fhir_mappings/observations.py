"""Outcome measures and risk assessments as UK Core Observations.

Each is built from its event, not from the episode: it records what was assessed at that time,
even when a later assessment has already superseded it in the episode.
"""
from __future__ import annotations

from podlink.fhir_mappings.elements import Json, compact, concept, meta, reference
from podlink.fhir_mappings.errors import require_referral
from podlink.fhir_mappings.people import practitioner, related_person
from podlink.fhir_mappings.resource_ids import (
    measure_observation_id,
    patient_id,
    practitioner_id,
    risk_observation_id,
    service_request_id,
)
from podlink.fhir_mappings.local_codes import MEASURE_TIMEPOINT_EXTENSION
from podlink.fhir_mappings.systems import OBSERVATION_CATEGORY, PROFILE_OBSERVATION, Namespace
from podlink.fhir_mappings.terminology import (
    RISK_ASSESSMENT,
    measure_item,
    measure_timepoint,
    measure_total,
    risk_level,
)
from podlink.streams.core.encoding import utc_text
from podlink.streams.core.episode import Episode
from podlink.streams.core.events import MeasureRecorded, RiskAssessed

_SURVEY = concept(OBSERVATION_CATEGORY, "survey", "Survey")


def measure_observation(episode: Episode, measure: MeasureRecorded, ns: Namespace) -> list[Json]:
    """The Observation first, then the carer's RelatedPerson when a carer answered.

    The value is the instrument's total (CMHS: the mean of its items, to 2 places), each item
    a component. The timepoint (baseline, 3 or 6 months, discharge) is an extension: the
    Observation has no element for "which planned administration of the instrument this was".
    """
    referral = require_referral(episode)
    subject = reference(patient_id(referral.patient.nhsNumber))
    carer = None
    performer = None
    if measure.respondent == "service_user":
        performer = subject
    elif measure.respondent == "carer" and measure.respondentPersonId:
        carer = related_person(episode, measure.respondentPersonId, None, ns)
        performer = reference(carer["id"])
    observation = compact({
        "resourceType": "Observation",
        "id": measure_observation_id(
            referral.referralId, measure.instrument, measure.timepoint, measure.recordedAt,
            measure.respondentPersonId,
        ),
        "meta": meta(PROFILE_OBSERVATION),
        "extension": [{
            "url": ns.extension(MEASURE_TIMEPOINT_EXTENSION.id),
            "valueCoding": measure_timepoint(ns, measure.timepoint),
        }],
        "basedOn": [reference(service_request_id(referral.referralId))],
        "status": "final",
        "category": [_SURVEY],
        "code": measure_total(ns, measure.instrument),
        "subject": subject,
        "effectiveDateTime": utc_text(measure.recordedAt),
        "performer": [performer] if performer else None,
        **_total(measure),
        "component": [
            {"code": measure_item(ns, measure.instrument, number), "valueInteger": score}
            for number, score in enumerate(measure.items, start=1)
        ],
    })
    return [observation, carer] if carer else [observation]


def risk_observation(episode: Episode, risk: RiskAssessed, ns: Namespace) -> list[Json]:
    """The Observation first, then the assessor's Practitioner."""
    referral = require_referral(episode)
    observation = {
        "resourceType": "Observation",
        "id": risk_observation_id(referral.referralId, risk.assessedAt),
        "meta": meta(PROFILE_OBSERVATION),
        "basedOn": [reference(service_request_id(referral.referralId))],
        "status": "final",
        "code": RISK_ASSESSMENT,
        "subject": reference(patient_id(referral.patient.nhsNumber)),
        "effectiveDateTime": utc_text(risk.assessedAt),
        "performer": [reference(practitioner_id(risk.assessor.staffId), risk.assessor.name)],
        "valueCodeableConcept": risk_level(ns, risk.level),
    }
    return [observation, practitioner(risk.assessor.staffId, ns)]


def _total(measure: MeasureRecorded) -> Json:
    if measure.instrument == "CMHS":
        return {"valueQuantity": {"value": round(sum(measure.items) / len(measure.items), 2)}}
    return {"valueInteger": sum(measure.items)}
