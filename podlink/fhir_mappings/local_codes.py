"""podlink's own CodeSystems and extensions: the single source of their codes and displays.

Used where FHIR, UK Core or SNOMED CT have no code for the thing (each use says which gap it
fills, in `terminology.py`). The mappings take their displays from here and `conformance.py`
publishes these same tables as CodeSystem, ValueSet and StructureDefinition resources, so a
message never carries a code or display its published CodeSystem lacks.

Codes are never removed or redefined once published; new ones are added (bump
`conformance.PUBLISHED_VERSION`).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal


@dataclass(frozen=True, eq=False)
class LocalCodeSystem:
    id: str
    name: str
    title: str
    description: str
    concepts: dict[str, str]  # code -> display, in publishing order

    def display(self, code: str) -> str:
        try:
            return self.concepts[code]
        except KeyError:
            raise ValueError(f"code not in CodeSystem {self.id}") from None


@dataclass(frozen=True, eq=False)
class LocalExtension:
    id: str
    name: str
    title: str
    description: str
    context: str  # the element the extension may appear on
    value_type: Literal["boolean", "Coding"]
    code_system: LocalCodeSystem | None = None  # the Coding's required value set: all its codes


def _system(system_id: str, title: str, description: str, concepts: dict[str, str]) -> LocalCodeSystem:
    name = "".join(part.capitalize() for part in system_id.split("-"))
    return LocalCodeSystem(system_id, name, title, description, concepts)


MESSAGE_EVENTS = _system(
    "podlink-message-events", "podlink message events",
    "Message events for POD care events, which the BaRS message events do not cover.",
    {
        "contact-made": "Contact made",
        "meeting-scheduled": "Network meeting scheduled",
        "meeting-held": "Network meeting held",
        "meeting-cancelled": "Network meeting cancelled",
        "risk-assessed": "Risk assessed",
        "cpa-coordinator-assigned": "CPA care coordinator assigned",
        "cpa-review-held": "CPA review held",
        "medication-prescribed": "Medication prescribed",
        "measure-recorded": "Outcome measure recorded",
        "admission-started": "Inpatient admission started",
        "admission-ended": "Inpatient admission ended",
        "episode-discharged": "POD episode discharged",
    },
)

REFERRAL_CATEGORY = _system(
    "pod-referral-category", "POD referral category",
    "The kind of referral a Peer-supported Open Dialogue team receives.",
    {"mental-health-crisis": "Mental health crisis referral"},
)

ENCOUNTER_TYPE = _system(
    "pod-encounter-type", "POD encounter type",
    "Open Dialogue network meetings, for which no SNOMED CT concept exists.",
    {
        "network-meeting": "Open Dialogue network meeting",
        "first-network-meeting": "First Open Dialogue network meeting (24-hour standard)",
    },
)

STAFF_ROLE = _system(
    "pod-staff-role", "POD staff role",
    "The role a member of the POD team takes (the contract's staffRole).",
    {
        "peer_support_worker": "Peer support worker",
        "nurse": "Nurse",
        "psychiatrist": "Psychiatrist",
        "psychologist": "Psychologist",
        "occupational_therapist": "Occupational therapist",
        "social_worker": "Social worker",
        "family_therapist": "Family therapist",
        "support_worker": "Support worker",
        "other": "Other",
    },
)

NETWORK_RELATIONSHIP = _system(
    "pod-network-relationship", "POD network relationship",
    "Relationships of network members that v3 RoleCode has no code for.",
    {"carer": "Carer", "other": "Other"},
)

CANCELLATION_REASON = _system(
    "pod-cancellation-reason", "POD meeting cancellation reason",
    "Why an arranged network meeting did not take place.",
    {
        "service_user_request": "Cancelled at the service user's request",
        "staff_unavailable": "Staff unavailable",
        "did_not_attend": "Did not attend",
        "other": "Other",
    },
)

ACTIVITY = _system(
    "pod-activity", "POD care plan activity",
    "The activities of a POD episode's care plan.",
    {
        "first-network-meeting-within-24h": "First network meeting within 24 hours of contact",
        "first-contact": "First contact with the service user",
        "network-meeting": "Open Dialogue network meeting",
        "cpa-review": "Care Programme Approach review",
        "medication": "Medication prescribed",
        "inpatient-admission": "Inpatient admission",
    },
)

ACTIVITY_OUTCOME = _system(
    "pod-activity-outcome", "POD care plan activity outcome",
    "Whether the first network meeting met its deadline.",
    {
        "met-within-deadline": "First meeting held within the deadline",
        "met-after-deadline": "First meeting held after the deadline",
    },
)

OUTCOME_MEASURE = _system(
    "pod-outcome-measure", "POD outcome measure score",
    "Totals of outcome measures that have no SNOMED CT code for the score.",
    {
        "honos-total": "HoNOS total score (0 to 48)",
        "wsas-total": "WSAS total score (0 to 40)",
        "cws-support-total": "CWS support subscale total (0 to 51)",
        "cmhs-mean": "CMHS mean item score (0 to 10)",
    },
)

# Item counts as the contract fixes them per instrument (CMHS: up to 60); HoNOS items are SNOMED.
_ITEMS = {"SWEMWBS": 7, "WSAS": 5, "CWS": 17, "CMHS": 60}
MEASURE_ITEM = _system(
    "pod-measure-item", "POD outcome measure item",
    "Items of outcome measures that have no SNOMED CT code per item.",
    {
        f"{instrument.lower()}-{number}": f"{instrument} item {number}"
        for instrument, count in _ITEMS.items() for number in range(1, count + 1)
    },
)

MEASURE_TIMEPOINT = _system(
    "pod-measure-timepoint", "POD outcome measure timepoint",
    "Which planned administration of an outcome measure a score is.",
    {"baseline": "baseline", "3_months": "3 months", "6_months": "6 months", "discharge": "discharge"},
)

RISK_LEVEL = _system(
    "pod-risk-level", "POD risk level",
    "The overall level of a POD risk assessment.",
    {"low": "Low risk", "medium": "Medium risk", "high": "High risk"},
)

DEADLINE_POLICY = _system(
    "pod-deadline-policy", "POD deadline policy",
    "The deadlines of podlink's shipped policy file (docs/policies.md). A trust's own policies "
    "travel as text, without a code from this system.",
    {
        "first-meeting": "First network meeting within 24 hours of referral",
        "first-contact": "First contact within 4 hours of an emergency or very urgent referral",
        "risk-assessment": "Risk assessment within 24 hours of acceptance",
        "risk-review": "Risk review by its due date",
        "cpa-coordinator": "CPA care coordinator assigned within 7 days of acceptance",
        "cpa-review": "CPA review by its due date",
        "post-discharge-follow-up": "Follow-up within 72 hours of leaving an inpatient ward",
    },
)

DEADLINE_OUTCOME = _system(
    "pod-deadline-outcome", "POD deadline outcome",
    "How a deadline ended, as the business status of its Task.",
    {
        "met-within-deadline": "Met by its due time",
        "met-after-deadline": "Met after its due time",
        "missed": "Ended unmet after its due time",
        "cancelled": "Cancelled before its due time",
    },
)

CODE_SYSTEMS: tuple[LocalCodeSystem, ...] = (
    MESSAGE_EVENTS, REFERRAL_CATEGORY, ENCOUNTER_TYPE, STAFF_ROLE, NETWORK_RELATIONSHIP,
    CANCELLATION_REASON, ACTIVITY, ACTIVITY_OUTCOME, OUTCOME_MEASURE, MEASURE_ITEM,
    MEASURE_TIMEPOINT, RISK_LEVEL, DEADLINE_POLICY, DEADLINE_OUTCOME,
)

SERVICE_USER_ATTENDED = LocalExtension(
    "Extension-POD-ServiceUserAttended", "ExtensionPODServiceUserAttended",
    "Service user attended",
    "Whether the service user attended a held network meeting. The service user is the "
    "Encounter's subject, and R4 does not allow a Patient as participant; network-only "
    "meetings happen in Open Dialogue.",
    "Encounter", "boolean",
)
CANCELLATION_REASON_EXTENSION = LocalExtension(
    "Extension-POD-CancellationReason", "ExtensionPODCancellationReason",
    "Meeting cancellation reason",
    "Why an arranged network meeting did not take place (R4 Encounter has no status reason).",
    "Encounter", "Coding", CANCELLATION_REASON,
)
MEASURE_TIMEPOINT_EXTENSION = LocalExtension(
    "Extension-POD-MeasureTimepoint", "ExtensionPODMeasureTimepoint",
    "Outcome measure timepoint",
    "Which planned administration of the instrument an outcome measure Observation records.",
    "Observation", "Coding", MEASURE_TIMEPOINT,
)

EXTENSIONS: tuple[LocalExtension, ...] = (
    SERVICE_USER_ATTENDED, CANCELLATION_REASON_EXTENSION, MEASURE_TIMEPOINT_EXTENSION,
)
