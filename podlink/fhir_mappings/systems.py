"""Every URI the messages use: profiles, code systems, identifier systems and extensions.

National and HL7 URIs are fixed by their owners (see ../shared/DOMAIN.md sections 2 and 3).
The `podlink` ones are ours: an EPR integrator needs this list to load our local code systems,
so they live in one place and never change once published.
"""
from __future__ import annotations

_UK_CORE = "https://fhir.hl7.org.uk/StructureDefinition/UKCore-"
PROFILE_BUNDLE = _UK_CORE + "Bundle"
PROFILE_MESSAGE_HEADER = _UK_CORE + "MessageHeader"
PROFILE_PATIENT = _UK_CORE + "Patient"
PROFILE_SERVICE_REQUEST = _UK_CORE + "ServiceRequest"
PROFILE_ENCOUNTER = _UK_CORE + "Encounter"
PROFILE_CARE_PLAN = _UK_CORE + "CarePlan"
PROFILE_OBSERVATION = _UK_CORE + "Observation"
PROFILE_PRACTITIONER = _UK_CORE + "Practitioner"
PROFILE_RELATED_PERSON = _UK_CORE + "RelatedPerson"
PROFILE_LOCATION = _UK_CORE + "Location"

NHS_NUMBER = "https://fhir.nhs.uk/Id/nhs-number"
ODS_ORGANISATION = "https://fhir.nhs.uk/Id/ods-organization-code"
EXT_NHS_NUMBER_VERIFICATION = (
    "https://fhir.hl7.org.uk/StructureDefinition/Extension-UKCore-NHSNumberVerificationStatus"
)
NHS_NUMBER_VERIFICATION = (
    "https://fhir.hl7.org.uk/CodeSystem/UKCore-NHSNumberVerificationStatusEngland"
)
BARS_MESSAGE_EVENTS = "https://fhir.nhs.uk/CodeSystem/message-events-bars"
BARS_MESSAGE_REASON = "https://fhir.nhs.uk/CodeSystem/message-reason-bars"

SNOMED = "http://snomed.info/sct"
DMD = "https://dmd.nhs.uk"
V3_ACT_CODE = "http://terminology.hl7.org/CodeSystem/v3-ActCode"
V3_ROLE_CODE = "http://terminology.hl7.org/CodeSystem/v3-RoleCode"
V3_NULL_FLAVOR = "http://terminology.hl7.org/CodeSystem/v3-NullFlavor"
OBSERVATION_CATEGORY = "http://terminology.hl7.org/CodeSystem/observation-category"

_PODLINK = "https://podlink.nhs.uk/fhir/"
REFERRAL_ID = _PODLINK + "Id/referral-id"
STAFF_ID = _PODLINK + "Id/staff-id"
TEAM_CODE = _PODLINK + "Id/team-code"

MESSAGE_EVENTS = _PODLINK + "CodeSystem/podlink-message-events"
REFERRAL_CATEGORY = _PODLINK + "CodeSystem/pod-referral-category"
ENCOUNTER_TYPE = _PODLINK + "CodeSystem/pod-encounter-type"
STAFF_ROLE = _PODLINK + "CodeSystem/pod-staff-role"
NETWORK_RELATIONSHIP = _PODLINK + "CodeSystem/pod-network-relationship"
CANCELLATION_REASON = _PODLINK + "CodeSystem/pod-cancellation-reason"
ACTIVITY = _PODLINK + "CodeSystem/pod-activity"
ACTIVITY_OUTCOME = _PODLINK + "CodeSystem/pod-activity-outcome"
OUTCOME_MEASURE = _PODLINK + "CodeSystem/pod-outcome-measure"
MEASURE_ITEM = _PODLINK + "CodeSystem/pod-measure-item"
MEASURE_TIMEPOINT = _PODLINK + "CodeSystem/pod-measure-timepoint"
RISK_LEVEL = _PODLINK + "CodeSystem/pod-risk-level"

EXT_SERVICE_USER_ATTENDED = _PODLINK + "StructureDefinition/Extension-POD-ServiceUserAttended"
EXT_CANCELLATION_REASON = _PODLINK + "StructureDefinition/Extension-POD-CancellationReason"
EXT_MEASURE_TIMEPOINT = _PODLINK + "StructureDefinition/Extension-POD-MeasureTimepoint"

SOURCE_ENDPOINT = "urn:podlink"
