"""Code tables from the inbound contract's enumerations to FHIR codings.

National or HL7 codes are used where one exists; where none does, a code of our own local
CodeSystem (`local_codes.py`, under the trust's namespace) is used and the gap is named beside
it. Local codes carry the display their published CodeSystem gives. SNOMED codes are sent
without a display where DOMAIN.md does not give the term, so that we never send a wrong one:
the CodeableConcept text carries the human reading instead.
"""
from __future__ import annotations

import functools

from podlink.fhir_mappings import local_codes
from podlink.fhir_mappings.elements import Json, coding, concept
from podlink.fhir_mappings.local_codes import LocalCodeSystem
from podlink.fhir_mappings.systems import (
    SNOMED,
    V3_ACT_CODE,
    V3_NULL_FLAVOR,
    V3_PARTICIPATION_TYPE,
    V3_ROLE_CODE,
    Namespace,
)

SERVICE_REQUEST_PRIORITY = {
    "emergency": "stat",
    "very_urgent": "asap",
    "urgent": "urgent",
    "routine": "routine",
}


# Cached: a message carries dozens of these, the same few again and again. Like every table here,
# the dicts returned are shared, so they are never changed in place.
@functools.lru_cache(maxsize=4096)
def local_coding(ns: Namespace, system: LocalCodeSystem, code: str) -> Json:
    return coding(ns.code_system(system.id), code, system.display(code))


@functools.lru_cache(maxsize=4096)
def local_concept(ns: Namespace, system: LocalCodeSystem, code: str, text: str | None = None) -> Json:
    return concept(ns.code_system(system.id), code, system.display(code), text)


def referral_category_crisis(ns: Namespace) -> Json:
    return local_concept(ns, local_codes.REFERRAL_CATEGORY, "mental-health-crisis")


# No SNOMED CT concept for an Open Dialogue network meeting exists (DOMAIN.md section 2), and
# UK Core binds Encounter.type only as "preferred", so our own codes are allowed here.
def encounter_type(ns: Namespace, code: str) -> Json:
    return local_concept(ns, local_codes.ENCOUNTER_TYPE, code)


# v3 ActEncounterCode (the R4 binding of Encounter.class). A community setting (a cafe, a
# community centre) is neither a healthcare facility nor the home: FLD, "field".
ENCOUNTER_CLASS: dict[str, Json] = {
    "home": coding(V3_ACT_CODE, "HH", "home health"),
    "clinic": coding(V3_ACT_CODE, "AMB", "ambulatory"),
    "community": coding(V3_ACT_CODE, "FLD", "field"),
    "virtual": coding(V3_ACT_CODE, "VR", "virtual"),
    "inpatient_ward": coding(V3_ACT_CODE, "IMP", "inpatient encounter"),
}
# Encounter.class is mandatory, but before any meeting is arranged its setting is not known.
UNKNOWN_CLASS = coding(V3_NULL_FLAVOR, "UNK", "unknown")

# v3 ParticipationType, the R4 encounter-participant-type value set. Open Dialogue meetings are
# led jointly by the staff present, so every staff member is a primary performer; network
# members take part without a more specific role.
PRIMARY_PERFORMER = concept(V3_PARTICIPATION_TYPE, "PPRF", "primary performer")
PARTICIPANT = concept(V3_PARTICIPATION_TYPE, "PART", "Participation")

LOCATION_NAME = {
    "home": "Service user's home",
    "clinic": "Clinic",
    "community": "Community setting",
    "virtual": "Virtual (video or telephone)",
    "inpatient_ward": "Inpatient ward",
}

MEETING_STATUS = {"planned": "planned", "held": "finished", "cancelled": "cancelled"}

_RELATIONSHIP = {
    "spouse_or_partner": ("SIGOTHR", "significant other"),
    "parent": ("PRN", "parent"),
    "child": ("CHILD", "child"),
    "sibling": ("SIB", "sibling"),
    "other_relative": ("FAMMEMB", "family member"),
    "friend": ("FRND", "unrelated friend"),
    "neighbour": ("NBOR", "neighbor"),
}


def staff_role(ns: Namespace, role: str) -> Json:
    return local_concept(ns, local_codes.STAFF_ROLE, role)


def relationship(ns: Namespace, kind: str) -> Json:
    if kind in _RELATIONSHIP:
        return concept(V3_ROLE_CODE, *_RELATIONSHIP[kind])
    # v3-RoleCode has no unpaid-carer role (nor "other").
    return local_concept(ns, local_codes.NETWORK_RELATIONSHIP, kind)


def cancellation_reason(ns: Namespace, reason: str) -> Json:
    return local_coding(ns, local_codes.CANCELLATION_REASON, reason)


def activity_code(ns: Namespace, code: str) -> Json:
    return local_concept(ns, local_codes.ACTIVITY, code)


def deadline_outcome(ns: Namespace, met_within: bool) -> Json:
    code = "met-within-deadline" if met_within else "met-after-deadline"
    return local_concept(ns, local_codes.ACTIVITY_OUTCOME, code)


def deadline_policy(ns: Namespace, policy: str) -> Json:
    # A trust's own policy has no code in podlink's CodeSystem: its name travels as text.
    if policy in local_codes.DEADLINE_POLICY.concepts:
        return local_concept(ns, local_codes.DEADLINE_POLICY, policy)
    return {"text": policy}


def deadline_ending(ns: Namespace, ending: str) -> Json:
    return local_concept(ns, local_codes.DEADLINE_OUTCOME, ending)


MENTAL_HEALTH_CRISIS_PLAN = concept(SNOMED, "736253002", "Mental health crisis plan")
RISK_ASSESSMENT = concept(SNOMED, "225338004", "Risk assessment")


def risk_level(ns: Namespace, level: str) -> Json:
    return local_concept(ns, local_codes.RISK_LEVEL, level)


# Totals: only SWEMWBS has a SNOMED code in DOMAIN.md section 4; its value is the raw 7 to 35
# total (the metric conversion is someone else's). The others use our codes.
SWEMWBS_TOTAL = concept(SNOMED, "718466001", text="SWEMWBS raw total score (7 to 35)")
_LOCAL_TOTAL = {"HONOS": "honos-total", "WSAS": "wsas-total", "CWS": "cws-support-total", "CMHS": "cmhs-mean"}


def measure_total(ns: Namespace, instrument: str) -> Json:
    if instrument == "SWEMWBS":
        return SWEMWBS_TOTAL
    return local_concept(ns, local_codes.OUTCOME_MEASURE, _LOCAL_TOTAL[instrument])


# HoNOS working-age scales 1 to 12 (MHSDS MHS607); other instruments' items have no SNOMED code.
HONOS_SCALES = (
    "979641000000103", "979651000000100", "979661000000102", "979671000000109",
    "979681000000106", "979691000000108", "979701000000108", "979711000000105",
    "979721000000104", "979731000000102", "979741000000106", "979751000000109",
)


def measure_item(ns: Namespace, instrument: str, number: int) -> Json:
    text = f"{instrument} item {number}"
    if instrument == "HONOS":
        return concept(SNOMED, HONOS_SCALES[number - 1], text=text)
    return local_concept(ns, local_codes.MEASURE_ITEM, f"{instrument.lower()}-{number}")


def measure_timepoint(ns: Namespace, timepoint: str) -> Json:
    return local_coding(ns, local_codes.MEASURE_TIMEPOINT, timepoint)
