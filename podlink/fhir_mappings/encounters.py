"""Network meetings as UK Core Encounters: one meeting is one Encounter, whatever it goes through.

From the referral on, the EPR holds a planned Encounter for the first network meeting (the
24-hour standard), before anyone has arranged it. That Encounter *is* the first meeting the
episode hears of (scheduled, held or cancelled: `Episode.meetings` keeps meetings in the order
they were first heard of), so its id never changes and no meeting is ever sent twice: the
placeholder, typed `first-network-meeting` with an unknown class, becomes that meeting's
`network-meeting` Encounter, with its time, setting, people and `meetingId` identifier. Every
later meeting has an Encounter of its own, its id derived from its meeting id. Whether the first
meeting was held within its deadline is the CarePlan's deadline activity, not an Encounter.

Staff attend as Practitioners, with the v3 participation type PPRF beside their POD role;
network members attend as RelatedPersons, participation type PART. The service user is the
Encounter's subject, and R4 does not allow a Patient as participant, so whether they attended a
held meeting is the boolean extension `Extension-POD-ServiceUserAttended` (network-only meetings
happen in POD).

Status: a meeting's own (`planned`, `finished`, `cancelled`), except that a meeting still
planned when the referral closes (rejected, withdrawn, discharged) is `cancelled`, like the
placeholder when no meeting was ever heard of.
"""
from __future__ import annotations

from podlink.fhir_mappings.elements import Json, compact, meta, period, reference
from podlink.fhir_mappings.errors import require_referral
from podlink.fhir_mappings.local_codes import CANCELLATION_REASON_EXTENSION, SERVICE_USER_ATTENDED
from podlink.fhir_mappings.people import (
    location,
    practitioner,
    related_person,
    staff_names,
    staff_reference,
)
from podlink.fhir_mappings.resource_ids import (
    first_meeting_encounter_id,
    location_id,
    meeting_encounter_id,
    patient_id,
    service_request_id,
)
from podlink.fhir_mappings.systems import PROFILE_ENCOUNTER, Namespace
from podlink.fhir_mappings.terminology import (
    ENCOUNTER_CLASS,
    MEETING_STATUS,
    PARTICIPANT,
    PRIMARY_PERFORMER,
    UNKNOWN_CLASS,
    cancellation_reason,
    encounter_type,
    staff_role,
)
from podlink.streams.core.episode import Episode, Meeting


def meeting_encounter(episode: Episode, meeting: Meeting, ns: Namespace) -> list[Json]:
    """The meeting's Encounter first, then the Practitioners, RelatedPersons and Location it references."""
    referral = require_referral(episode)
    participants: list[Json] = []
    attendees: list[Json] = []
    names = staff_names(episode)
    for attendee in meeting.attendees:
        if attendee.kind == "staff" and attendee.staffId:
            participants.append({
                "type": [PRIMARY_PERFORMER, *([staff_role(ns, attendee.role)] if attendee.role else [])],
                "individual": staff_reference(names, attendee.staffId),
            })
            attendees.append(practitioner(attendee.staffId, ns))
        elif attendee.kind == "network_member" and attendee.personId:
            person = related_person(episode, attendee.personId, attendee.relationship, ns)
            participants.append({"type": [PARTICIPANT], "individual": reference(person["id"])})
            attendees.append(person)
    # A meeting cancelled before we heard it was arranged has no known setting.
    setting = meeting.location
    is_first = meeting.meeting_id == _first_heard_of(episode)
    encounter = compact({
        "resourceType": "Encounter",
        "id": (first_meeting_encounter_id(referral.referralId) if is_first
               else meeting_encounter_id(referral.referralId, meeting.meeting_id)),
        "meta": meta(PROFILE_ENCOUNTER),
        "extension": _meeting_extensions(meeting, ns),
        "identifier": [{"system": ns.meeting_id, "value": meeting.meeting_id}],
        "status": _status(episode, meeting),
        "class": ENCOUNTER_CLASS[setting] if setting else UNKNOWN_CLASS,
        "type": [encounter_type(ns, "network-meeting")],
        "subject": reference(patient_id(referral.patient.nhsNumber)),
        "basedOn": [reference(service_request_id(referral.referralId))],
        "participant": participants,
        "period": period(meeting.start or meeting.scheduled_start, meeting.end),
        "location": [{"location": reference(location_id(setting))}] if setting else None,
    })
    return [encounter, *attendees, location(setting)] if setting else [encounter, *attendees]


def first_meeting_encounter(episode: Episode, ns: Namespace) -> list[Json]:
    """The first meeting's Encounter (see the module docstring) and what it references."""
    first = _first_heard_of(episode)
    if first is not None:
        return meeting_encounter(episode, episode.meetings[first], ns)
    referral = require_referral(episode)
    return [{
        "resourceType": "Encounter",
        "id": first_meeting_encounter_id(referral.referralId),
        "meta": meta(PROFILE_ENCOUNTER),
        "status": "cancelled" if episode.is_closed else "planned",
        "class": UNKNOWN_CLASS,
        "type": [encounter_type(ns, "first-network-meeting")],
        "subject": reference(patient_id(referral.patient.nhsNumber)),
        "basedOn": [reference(service_request_id(referral.referralId))],
    }]


def closing_encounters(episode: Episode, ns: Namespace) -> list[list[Json]]:
    """What closing the referral cancels: each meeting still planned, or the unarranged first
    meeting; each as the Encounter followed by what it references."""
    if not episode.meetings:
        return [first_meeting_encounter(episode, ns)]
    return [meeting_encounter(episode, m, ns) for m in episode.meetings.values() if m.status == "planned"]


def _first_heard_of(episode: Episode) -> str | None:
    return next(iter(episode.meetings), None)


def _status(episode: Episode, meeting: Meeting) -> str:
    if meeting.status == "planned" and episode.is_closed:
        return "cancelled"
    return MEETING_STATUS[meeting.status]


def _meeting_extensions(meeting: Meeting, ns: Namespace) -> list[Json]:
    if meeting.status == "held":
        attended = any(a.kind == "service_user" for a in meeting.attendees)
        return [{"url": ns.extension(SERVICE_USER_ATTENDED.id), "valueBoolean": attended}]
    if meeting.status == "cancelled" and meeting.cancel_reason:
        return [{
            "url": ns.extension(CANCELLATION_REASON_EXTENSION.id),
            "valueCoding": cancellation_reason(ns, meeting.cancel_reason),
        }]
    return []
