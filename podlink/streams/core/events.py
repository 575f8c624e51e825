"""Typed view of the inbound contract (`../shared/contracts/`, version 1).

The JSON Schema is the authority on what is valid (see `contract.py`); these models give the
rest of the code typed, timezone-aware access to an event that has already passed it.
"""
from __future__ import annotations

from datetime import date, datetime, timezone
from typing import Annotated, Any, Literal, Union

from pydantic import AfterValidator, AwareDatetime, BaseModel, ConfigDict, Field, TypeAdapter, create_model

StaffRole = Literal[
    "peer_support_worker", "nurse", "psychiatrist", "psychologist", "occupational_therapist",
    "social_worker", "family_therapist", "support_worker", "other",
]
Relationship = Literal[
    "spouse_or_partner", "parent", "child", "sibling", "other_relative", "friend", "carer",
    "neighbour", "other",
]
Location = Literal["home", "clinic", "community", "virtual", "inpatient_ward"]
Occupation = Literal[
    "employed_full_time", "employed_part_time", "education_full_time", "education_part_time",
    "neither", "unknown",
]


def _plain_zone(moment: datetime) -> datetime:
    # pydantic gives every moment it parses a tzinfo object of its own: comparing and hashing
    # such moments (the caches of due times and their spelling) calls into it (0.6 us a time,
    # measured), and the garbage collector tracks each one. datetime's own timezone for the
    # same offset spells, compares and serialises the same.
    offset = moment.utcoffset()
    return moment.replace(tzinfo=timezone.utc if not offset else timezone(offset))


# An aware moment of an event.
Moment = Annotated[AwareDatetime, AfterValidator(_plain_zone)]


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Staff(_Model):
    staffId: str
    name: str | None = None
    role: StaffRole


class NetworkPerson(_Model):
    personId: str
    name: str | None = None
    relationship: Relationship
    phone: str | None = None


class PersonName(_Model):
    given: tuple[str, ...] = ()
    family: str


class Patient(_Model):
    nhsNumber: str
    nhsNumberVerified: bool | None = None
    name: PersonName
    birthDate: date
    gender: Literal["male", "female", "other", "unknown"]
    postalCode: str | None = None
    occupation: Occupation | None = None


class ReferredTo(_Model):
    teamCode: str
    odsCode: str


class Reason(_Model):
    text: str
    snomedCode: str | None = None


class Referrer(_Model):
    name: str | None = None
    organisationOds: str | None = None


class ReferralReceived(_Model):
    referralId: str
    receivedAt: Moment
    referredTo: ReferredTo
    source: Literal[
        "gp", "self", "family_or_carer", "crisis_team", "ae_liaison", "police", "inpatient_ward",
        "other",
    ]
    urgency: Literal["emergency", "very_urgent", "urgent", "routine"]
    patient: Patient
    reason: Reason | None = None
    riskLevel: Literal["low", "medium", "high"]
    cpaRequired: bool
    network: tuple[NetworkPerson, ...] = ()
    referrer: Referrer | None = None


class ReferralAccepted(_Model):
    referralId: str
    acceptedAt: Moment
    teamCode: str
    allocatedTo: Staff | None = None


class ReferralRejected(_Model):
    referralId: str
    rejectedAt: Moment
    reason: str
    redirectedTo: str | None = None

    @property
    def closed_at(self) -> datetime:
        return self.rejectedAt


class ReferralWithdrawn(_Model):
    referralId: str
    withdrawnAt: Moment
    reason: str | None = None

    @property
    def closed_at(self) -> datetime:
        return self.withdrawnAt


class ContactMade(_Model):
    referralId: str
    contactAt: Moment
    method: Literal["phone", "face_to_face", "video", "text_message"]
    staff: Staff
    outcome: Literal["meeting_arranged", "no_answer", "declined", "other"]


class MeetingScheduled(_Model):
    referralId: str
    meetingId: str
    scheduledStart: Moment
    location: Location
    invitedPersonIds: tuple[str, ...] = ()


class Attendee(_Model):
    kind: Literal["service_user", "network_member", "staff"]
    personId: str | None = None
    relationship: Relationship | None = None
    staffId: str | None = None
    role: StaffRole | None = None


class MeetingHeld(_Model):
    referralId: str
    meetingId: str
    start: Moment
    end: Moment
    location: Location
    attendees: tuple[Attendee, ...]
    adherenceScore: float | None = None


class MeetingCancelled(_Model):
    referralId: str
    meetingId: str
    cancelledAt: Moment
    reason: Literal["service_user_request", "staff_unavailable", "did_not_attend", "other"]


class RiskAssessed(_Model):
    referralId: str
    assessedAt: Moment
    level: Literal["low", "medium", "high"]
    assessor: Staff
    reviewDue: Moment | None = None


class CpaCoordinatorAssigned(_Model):
    referralId: str
    assignedAt: Moment
    coordinator: Staff


class CpaReviewHeld(_Model):
    referralId: str
    heldAt: Moment
    nextReviewDue: Moment | None = None


class Medication(_Model):
    dmdCode: str | None = None
    display: str


class MedicationPrescribed(_Model):
    referralId: str
    prescribedAt: Moment
    medication: Medication
    isNew: bool
    urgentSafetyOverride: bool | None = None
    prescriber: Staff | None = None


class MeasureRecorded(_Model):
    referralId: str
    recordedAt: Moment
    instrument: Literal["HONOS", "SWEMWBS", "WSAS", "CWS", "CMHS"]
    timepoint: Literal["baseline", "3_months", "6_months", "discharge"]
    respondent: Literal["service_user", "carer", "clinician"] | None = None
    respondentPersonId: str | None = None
    items: tuple[int, ...]


class AdmissionStarted(_Model):
    referralId: str
    admittedAt: Moment
    ward: str | None = None


class AdmissionEnded(_Model):
    referralId: str
    endedAt: Moment


class EpisodeDischarged(_Model):
    referralId: str
    dischargedAt: Moment
    sharedDecision: bool
    occupationAtDischarge: Occupation | None = None


EventData = Union[
    ReferralReceived, ReferralAccepted, ReferralRejected, ReferralWithdrawn, ContactMade,
    MeetingScheduled, MeetingHeld, MeetingCancelled, RiskAssessed, CpaCoordinatorAssigned,
    CpaReviewHeld, MedicationPrescribed, MeasureRecorded, AdmissionStarted, AdmissionEnded,
    EpisodeDischarged,
]

DATA_MODELS: dict[str, type[BaseModel]] = {
    "uk.nhs.spa.referral.received": ReferralReceived,
    "uk.nhs.spa.referral.accepted": ReferralAccepted,
    "uk.nhs.spa.referral.rejected": ReferralRejected,
    "uk.nhs.spa.referral.withdrawn": ReferralWithdrawn,
    "uk.nhs.pod.contact.made": ContactMade,
    "uk.nhs.pod.meeting.scheduled": MeetingScheduled,
    "uk.nhs.pod.meeting.held": MeetingHeld,
    "uk.nhs.pod.meeting.cancelled": MeetingCancelled,
    "uk.nhs.pod.risk.assessed": RiskAssessed,
    "uk.nhs.pod.cpa.coordinator-assigned": CpaCoordinatorAssigned,
    "uk.nhs.pod.cpa.review-held": CpaReviewHeld,
    "uk.nhs.pod.medication.prescribed": MedicationPrescribed,
    "uk.nhs.pod.measure.recorded": MeasureRecorded,
    "uk.nhs.pod.admission.started": AdmissionStarted,
    "uk.nhs.pod.admission.ended": AdmissionEnded,
    "uk.nhs.pod.episode.discharged": EpisodeDischarged,
}


class Event(BaseModel):
    """One inbound CloudEvent with its typed payload.

    Only the attributes podlink uses are kept (the contract has checked the others), so an
    event waiting in a stored episode carries what applying it needs and nothing more.
    """

    model_config = ConfigDict(frozen=True)

    id: str
    source: str
    type: str
    time: Moment
    subject: str
    data: EventData

    @property
    def dedup_key(self) -> str:
        return f"{self.source}\x1f{self.id}"

    @property
    def referral_id(self) -> str:
        return self.subject


def _typed(event_type: str, data_model: type[BaseModel]) -> type[Event]:
    # One Event class per CloudEvent type, so `type` picks the payload model (a discriminated
    # union) when an event is read and when a stored one is loaded.
    return create_model(  # type: ignore[call-overload, no-any-return]
        f"{data_model.__name__}Event", __base__=Event,
        type=(Literal[event_type], ...), data=(data_model, ...),
    )


TypedEvent = Annotated[
    Union[tuple(_typed(t, m) for t, m in DATA_MODELS.items())],  # type: ignore[valid-type]
    Field(discriminator="type"),
]
_TYPED_EVENT: TypeAdapter[Event] = TypeAdapter(TypedEvent)


def parse_event(raw: dict[str, Any]) -> Event:
    """Typed event from a dict that has passed the contract (the payload model follows `type`)."""
    return _TYPED_EVENT.validate_python(raw)
