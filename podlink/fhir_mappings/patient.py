"""The service user as a UK Core Patient, keyed by NHS number."""
from __future__ import annotations

import functools

from podlink.fhir_mappings.elements import Json, compact, concept, meta
from podlink.fhir_mappings.resource_ids import patient_id
from podlink.fhir_mappings.systems import (
    EXT_NHS_NUMBER_VERIFICATION,
    NHS_NUMBER,
    NHS_NUMBER_VERIFICATION,
    PROFILE_PATIENT,
)
from podlink.streams.core.events import Patient

# A number SPA did not report as verified is sent as untraced, never as verified.
_VERIFIED = concept(NHS_NUMBER_VERIFICATION, "01", "Number present and verified")
_NOT_TRACED = concept(NHS_NUMBER_VERIFICATION, "02", "Number present but not traced")


# Cached: every message carries the Patient, the same for all of a referral's messages (the
# referral's patient is a frozen model, hashed by its fields). The returned dict is shared, so
# it is never changed in place. Sized as the Tasks' cache, for the same reason (tasks.py).
@functools.lru_cache(maxsize=256)
def patient(person: Patient) -> Json:
    verification = _VERIFIED if person.nhsNumberVerified else _NOT_TRACED
    return compact({
        "resourceType": "Patient",
        "id": patient_id(person.nhsNumber),
        "meta": meta(PROFILE_PATIENT),
        "identifier": [{
            "extension": [{"url": EXT_NHS_NUMBER_VERIFICATION, "valueCodeableConcept": verification}],
            "system": NHS_NUMBER,
            "value": person.nhsNumber,
        }],
        "name": [compact({"use": "official", "family": person.name.family, "given": list(person.name.given)})],
        "gender": person.gender,
        "birthDate": person.birthDate.isoformat(),
        "address": [{"postalCode": person.postalCode}] if person.postalCode else None,
    })
