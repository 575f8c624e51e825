"""Network meetings as UK Core Encounters.

Two kinds of Encounter per referral:

- One per network meeting (`meeting_encounter`): planned, finished or cancelled as the meeting
  is. Staff attend as Practitioners whose participant type is their POD role; network members
  attend as RelatedPersons. The service user is the Encounter's subject, and R4 does not allow
  a Patient as participant, so whether they attended a held meeting is the boolean extension
  `Extension-POD-ServiceUserAttended` (network-only meetings happen in POD).
- One "first network meeting" Encounter (`first_meeting_encounter`), sent with the referral so
  the EPR sees the 24-hour first meeting as planned from the start. It tracks the standard, it
  is not a contact: count contacts from the `network-meeting` Encounters, not from this one.
  Its status: `planned` while the referral is open and no meeting has been held; `finished`
  once one has, with that first held meeting's period and setting; `cancelled` when the
  referral closes (rejected, withdrawn, discharged) before any meeting was held. While it is
  planned it takes the time and setting of the earliest arranged meeting, if there is one.
"""
from __future__ import annotations

from podlink.fhir_mappings.elements import Json, compact, meta, period, reference
from podlink.fhir_mappings.errors import require_referral
from podlink.fhir_mappings.people import (
    location,
    practitioner,
    related_person,
    staff_reference,
)
from podlink.fhir_mappings.resource_ids import (
    first_meeting_encounter_id,
    location_id,
    meeting_encounter_id,
    patient_id,
    service_request_id,
)
from podlink.fhir_mappings.systems import (
    EXT_CANCELLATION_REASON,
    EXT_SERVICE_USER_ATTENDED,
    PROFILE_ENCOUNTER,
)
from podlink.fhir_mappings.terminology import (
    ENCOUNTER_CLASS,
    FIRST_NETWORK_MEETING,
    MEETING_STATUS,
    NETWORK_MEETING,
    UNKNOWN_CLASS,
    cancellation_reason,
    staff_role,
)
from podlink.streams.core.episode import Episode, Meeting


def meeting_encounter(episode: Episode, meeting: Meeting) -> list[Json]:
    """The meeting's Encounter first, then the Practitioners, RelatedPersons and Location it references."""
    referral = require_referral(episode)
    participants: list[Json] = []
    attendees: list[Json] = []
    for attendee in meeting.attendees:
        if attendee.kind == "staff" and attendee.staffId:
            participants.append(compact({
                "type": [staff_role(attendee.role)] if attendee.role else None,
                "individual": staff_reference(episode, attendee.staffId),
            }))
            attendees.append(practitioner(attendee.staffId))
        elif attendee.kind == "network_member" and attendee.personId:
            person = related_person(episode, attendee.personId, attendee.relationship)
            participants.append({"individual": reference(person["id"])})
            attendees.append(person)
    # A meeting cancelled before we heard it was arranged has no known setting.
    setting = meeting.location
    encounter = compact({
        "resourceType": "Encounter",
        "id": meeting_encounter_id(referral.referralId, meeting.meeting_id),
        "meta": meta(PROFILE_ENCOUNTER),
        "extension": _meeting_extensions(meeting),
        "status": MEETING_STATUS[meeting.status],
        "class": ENCOUNTER_CLASS[setting] if setting else UNKNOWN_CLASS,
        "type": [NETWORK_MEETING],
        "subject": reference(patient_id(referral.patient.nhsNumber)),
        "basedOn": [reference(service_request_id(referral.referralId))],
        "participant": participants,
        "period": period(meeting.start or meeting.scheduled_start, meeting.end),
        "location": [{"location": reference(location_id(setting))}] if setting else None,
    })
    return [encounter, *attendees, location(setting)] if setting else [encounter, *attendees]


def first_meeting_encounter(episode: Episode) -> list[Json]:
    """The first-meeting Encounter (see the module docstring), then the Location it references."""
    referral = require_referral(episode)
    held = episode.first_meeting
    shown = held or _earliest_arranged(episode)
    setting = shown.location if shown else None
    status = "finished" if held else "cancelled" if episode.is_closed else "planned"
    encounter = compact({
        "resourceType": "Encounter",
        "id": first_meeting_encounter_id(referral.referralId),
        "meta": meta(PROFILE_ENCOUNTER),
        "status": status,
        "class": ENCOUNTER_CLASS[setting] if setting else UNKNOWN_CLASS,
        "type": [FIRST_NETWORK_MEETING],
        "subject": reference(patient_id(referral.patient.nhsNumber)),
        "basedOn": [reference(service_request_id(referral.referralId))],
        "period": period(shown.start or shown.scheduled_start, shown.end) if shown else None,
        "location": [{"location": reference(location_id(setting))}] if setting else None,
    })
    return [encounter, location(setting)] if setting else [encounter]


def _earliest_arranged(episode: Episode) -> Meeting | None:
    arranged = [
        (m.scheduled_start, m.meeting_id, m)
        for m in episode.meetings.values() if m.status == "planned" and m.scheduled_start is not None
    ]
    return min(arranged, key=lambda found: found[:2])[2] if arranged else None


def _meeting_extensions(meeting: Meeting) -> list[Json]:
    if meeting.status == "held":
        attended = any(a.kind == "service_user" for a in meeting.attendees)
        return [{"url": EXT_SERVICE_USER_ATTENDED, "valueBoolean": attended}]
    if meeting.status == "cancelled" and meeting.cancel_reason:
        return [{"url": EXT_CANCELLATION_REASON, "valueCoding": cancellation_reason(meeting.cancel_reason)}]
    return []
