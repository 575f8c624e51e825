"""Code tables from the inbound contract's enumerations to FHIR codings.

National or HL7 codes are used where one exists; where none does, a code of our own local
CodeSystem (see `systems.py`) is used and the gap is named beside it. SNOMED codes are sent
without a display where DOMAIN.md does not give the term, so that we never send a wrong one:
the CodeableConcept text carries the human reading instead.
"""
from __future__ import annotations

from podlink.fhir_mappings.elements import Json, coding, concept
from podlink.fhir_mappings.systems import (
    ACTIVITY,
    ACTIVITY_OUTCOME,
    CANCELLATION_REASON,
    ENCOUNTER_TYPE,
    MEASURE_ITEM,
    MEASURE_TIMEPOINT,
    NETWORK_RELATIONSHIP,
    OUTCOME_MEASURE,
    REFERRAL_CATEGORY,
    RISK_LEVEL,
    SNOMED,
    STAFF_ROLE,
    V3_ACT_CODE,
    V3_NULL_FLAVOR,
    V3_ROLE_CODE,
)

SERVICE_REQUEST_PRIORITY = {
    "emergency": "stat",
    "very_urgent": "asap",
    "urgent": "urgent",
    "routine": "routine",
}

REFERRAL_CATEGORY_CRISIS = concept(REFERRAL_CATEGORY, "mental-health-crisis", "Mental health crisis referral")

# No SNOMED CT concept for an Open Dialogue network meeting exists (DOMAIN.md section 2), and
# UK Core binds Encounter.type only as "preferred", so our own codes are allowed here.
NETWORK_MEETING = concept(ENCOUNTER_TYPE, "network-meeting", "Open Dialogue network meeting")
FIRST_NETWORK_MEETING = concept(
    ENCOUNTER_TYPE, "first-network-meeting", "First Open Dialogue network meeting (24-hour standard)"
)

ENCOUNTER_CLASS: dict[str, Json] = {
    "home": coding(V3_ACT_CODE, "HH", "home health"),
    "clinic": coding(V3_ACT_CODE, "AMB", "ambulatory"),
    "community": coding(V3_ACT_CODE, "AMB", "ambulatory"),
    "virtual": coding(V3_ACT_CODE, "VR", "virtual"),
    "inpatient_ward": coding(V3_ACT_CODE, "IMP", "inpatient encounter"),
}
# Encounter.class is mandatory, but before any meeting is arranged its setting is not known.
UNKNOWN_CLASS = coding(V3_NULL_FLAVOR, "UNK", "unknown")

LOCATION_NAME = {
    "home": "Service user's home",
    "clinic": "Clinic",
    "community": "Community setting",
    "virtual": "Virtual (video or telephone)",
    "inpatient_ward": "Inpatient ward",
}

MEETING_STATUS = {"planned": "planned", "held": "finished", "cancelled": "cancelled"}

CANCELLATION = {
    "service_user_request": "Cancelled at the service user's request",
    "staff_unavailable": "Staff unavailable",
    "did_not_attend": "Did not attend",
    "other": "Other",
}

STAFF_ROLE_DISPLAY = {
    "peer_support_worker": "Peer support worker",
    "nurse": "Nurse",
    "psychiatrist": "Psychiatrist",
    "psychologist": "Psychologist",
    "occupational_therapist": "Occupational therapist",
    "social_worker": "Social worker",
    "family_therapist": "Family therapist",
    "support_worker": "Support worker",
    "other": "Other",
}

_RELATIONSHIP = {
    "spouse_or_partner": (V3_ROLE_CODE, "SIGOTHR", "significant other"),
    "parent": (V3_ROLE_CODE, "PRN", "parent"),
    "child": (V3_ROLE_CODE, "CHILD", "child"),
    "sibling": (V3_ROLE_CODE, "SIB", "sibling"),
    "other_relative": (V3_ROLE_CODE, "FAMMEMB", "family member"),
    "friend": (V3_ROLE_CODE, "FRND", "unrelated friend"),
    "neighbour": (V3_ROLE_CODE, "NBOR", "neighbor"),
    # v3-RoleCode has no unpaid-carer role.
    "carer": (NETWORK_RELATIONSHIP, "carer", "Carer"),
    "other": (NETWORK_RELATIONSHIP, "other", "Other"),
}


def staff_role(role: str) -> Json:
    return concept(STAFF_ROLE, role, STAFF_ROLE_DISPLAY[role])


def relationship(kind: str) -> Json:
    return concept(*_RELATIONSHIP[kind])


def cancellation_reason(reason: str) -> Json:
    return coding(CANCELLATION_REASON, reason, CANCELLATION[reason])


def activity_code(code: str, display: str) -> Json:
    return concept(ACTIVITY, code, display)


MET_WITHIN_DEADLINE = concept(ACTIVITY_OUTCOME, "met-within-deadline", "First meeting held within the deadline")
MET_AFTER_DEADLINE = concept(ACTIVITY_OUTCOME, "met-after-deadline", "First meeting held after the deadline")

MENTAL_HEALTH_CRISIS_PLAN = concept(SNOMED, "736253002", "Mental health crisis plan")
RISK_ASSESSMENT = concept(SNOMED, "225338004", "Risk assessment")

RISK = {
    "low": concept(RISK_LEVEL, "low", "Low risk"),
    "medium": concept(RISK_LEVEL, "medium", "Medium risk"),
    "high": concept(RISK_LEVEL, "high", "High risk"),
}

# Totals: only SWEMWBS has a SNOMED code in DOMAIN.md section 4; its value is the raw 7 to 35
# total (the metric conversion is someone else's). The others use our codes.
MEASURE_TOTAL = {
    "SWEMWBS": concept(SNOMED, "718466001", text="SWEMWBS raw total score (7 to 35)"),
    "HONOS": concept(OUTCOME_MEASURE, "honos-total", "HoNOS total score (0 to 48)"),
    "WSAS": concept(OUTCOME_MEASURE, "wsas-total", "WSAS total score (0 to 40)"),
    "CWS": concept(OUTCOME_MEASURE, "cws-support-total", "CWS support subscale total (0 to 51)"),
    "CMHS": concept(OUTCOME_MEASURE, "cmhs-mean", "CMHS mean item score (0 to 10)"),
}

# HoNOS working-age scales 1 to 12 (MHSDS MHS607); other instruments' items have no SNOMED code.
HONOS_SCALES = (
    "979641000000103", "979651000000100", "979661000000102", "979671000000109",
    "979681000000106", "979691000000108", "979701000000108", "979711000000105",
    "979721000000104", "979731000000102", "979741000000106", "979751000000109",
)


def measure_item(instrument: str, number: int) -> Json:
    text = f"{instrument} item {number}"
    if instrument == "HONOS":
        return concept(SNOMED, HONOS_SCALES[number - 1], text=text)
    return concept(MEASURE_ITEM, f"{instrument.lower()}-{number}", text)


def measure_timepoint(timepoint: str) -> Json:
    return coding(MEASURE_TIMEPOINT, timepoint, timepoint.replace("_", " "))
