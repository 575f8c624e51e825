"""Practitioner, RelatedPerson and Location: the resources the clinical ones point at."""
from __future__ import annotations

import functools

from podlink.fhir_mappings.elements import Json, compact, meta, reference
from podlink.fhir_mappings.errors import require_referral
from podlink.fhir_mappings.resource_ids import (
    location_id,
    patient_id,
    practitioner_id,
    related_person_id,
)
from podlink.fhir_mappings.systems import (
    PROFILE_LOCATION,
    PROFILE_PRACTITIONER,
    PROFILE_RELATED_PERSON,
    Namespace,
)
from podlink.fhir_mappings.terminology import LOCATION_NAME, relationship
from podlink.streams.core.episode import Episode
from podlink.streams.core.events import Staff


# The builders here are cached where their arguments are plain values: the same staff, network
# members and places recur in message after message. Like the terminology tables, the dicts
# returned are shared, so they are never changed in place. Staff recur across referrals, a
# network member within one (sized as the Tasks' cache, for the same reason: tasks.py).


@functools.lru_cache(maxsize=1024)
def practitioner(staff_id: str, ns: Namespace) -> Json:
    """A staff member by staff id only.

    A Practitioner is shared by every referral, while a name is known only from some events
    of some referrals; a name here would come and go between messages. Names travel instead
    as the `display` of the references that point here (see `staff_reference`).
    """
    return {
        "resourceType": "Practitioner",
        "id": practitioner_id(staff_id),
        "meta": meta(PROFILE_PRACTITIONER),
        "identifier": [{"system": ns.staff_id, "value": staff_id}],
    }


def staff_reference(names: dict[str, str], staff_id: str) -> Json:
    """A reference to a staff member's Practitioner, with their name (`staff_names`) as display."""
    return reference(practitioner_id(staff_id), names.get(staff_id))


def related_person(episode: Episode, person_id: str, fallback_relationship: str | None, ns: Namespace) -> Json:
    """A member of the service user's network, as the referral lists them.

    The referral's list is the stable source; a person known only from attending a meeting
    takes the relationship recorded there.
    """
    referral = require_referral(episode)
    listed = next((p for p in referral.network if p.personId == person_id), None)
    kind = listed.relationship if listed else fallback_relationship
    return _related_person(referral.referralId, referral.patient.nhsNumber, person_id, kind,
                           listed.name if listed else None, listed.phone if listed else None, ns)


@functools.lru_cache(maxsize=256)
def _related_person(referral_id: str, nhs_number: str, person_id: str, kind: str | None,
                    name: str | None, phone: str | None, ns: Namespace) -> Json:
    return compact({
        "resourceType": "RelatedPerson",
        "id": related_person_id(referral_id, person_id),
        "meta": meta(PROFILE_RELATED_PERSON),
        "patient": reference(patient_id(nhs_number)),
        "relationship": [relationship(ns, kind)] if kind else None,
        "name": [{"text": name}] if name else None,
        "telecom": [{"system": "phone", "value": phone}] if phone else None,
    })


@functools.lru_cache(maxsize=16)
def location(kind: str) -> Json:
    # A kind of place, not an address: the contract names only the setting of a meeting.
    return {
        "resourceType": "Location",
        "id": location_id(kind),
        "meta": meta(PROFILE_LOCATION),
        "status": "active",
        "name": LOCATION_NAME[kind],
        "mode": "kind",
    }


def staff_names(episode: Episode) -> dict[str, str]:
    """Names the episode's events gave to staff ids (the first one wins, in a fixed order)."""
    staff: list[Staff] = [
        s for s in (
            episode.coordinator,
            episode.acceptance.allocatedTo if episode.acceptance else None,
            episode.first_contact.staff if episode.first_contact else None,
            episode.risk.assessor if episode.risk else None,
            *(p.prescriber for p in episode.prescriptions),
        ) if s is not None
    ]
    names: dict[str, str] = {}
    for member in staff:
        if member.name:
            names.setdefault(member.staffId, member.name)
    return names
