"""One FHIR R4 message Bundle per applied event: the public entry point of this package.

A message carries the resources the event concerns, as they stand after it (whole resources,
not patches: the EPR can upsert each entry by id). `MessageHeader.focus` lists those resources,
the main one first; every other entry is one a focused resource references, directly or through
other entries (the FHIR messaging rule), such as the Patient, the referral's ServiceRequest
(which every Encounter, CarePlan and Observation is based on), Practitioners and Locations.
The mappings send nothing else: each resource comes with those it references, and checking a
message (`validate`, as the tests build them) refuses one with an entry nothing reaches.
Every reference between resources is a `urn:uuid:`
reference to an entry of the same Bundle, so the EPR resolves all of them without looking
anything up; only organisations and the POD team, which we do not send as resources, are
referenced by their codes (ODS code, team code).
"""
from __future__ import annotations

from fhir.resources.R4B.bundle import Bundle
from fhir.resources.R4B.careplan import CarePlan
from fhir.resources.R4B.encounter import Encounter
from fhir.resources.R4B.location import Location
from fhir.resources.R4B.messageheader import MessageHeader
from fhir.resources.R4B.observation import Observation
from fhir.resources.R4B.patient import Patient
from fhir.resources.R4B.practitioner import Practitioner
from fhir.resources.R4B.relatedperson import RelatedPerson
from fhir.resources.R4B.servicerequest import ServiceRequest
from fhir.resources.R4B.task import Task
from pydantic import ValidationError

from podlink.fhir_mappings.care_plan import care_plan
from podlink.fhir_mappings.codes import code_problems
from podlink.fhir_mappings.elements import Json, full_url, meta
from podlink.fhir_mappings.encounters import closing_encounters, first_meeting_encounter, meeting_encounter
from podlink.fhir_mappings.errors import MappingError, require_referral
from podlink.fhir_mappings.message_header import message_header
from podlink.fhir_mappings.observations import measure_observation, risk_observation
from podlink.fhir_mappings.patient import patient
from podlink.fhir_mappings.people import related_person
from podlink.fhir_mappings.referral import service_request
from podlink.fhir_mappings.resource_ids import bundle_id
from podlink.fhir_mappings.systems import DEFAULT_BASE_URL, PROFILE_BUNDLE, Namespace, namespace
from podlink.fhir_mappings.validation_cache import ValidationCache
from podlink.streams.core.deadlines import Deadline
from podlink.streams.core.encoding import utc_text
from podlink.streams.core.episode import Episode
from podlink.streams.core.events import (
    AdmissionEnded, AdmissionStarted, ContactMade, CpaCoordinatorAssigned, CpaReviewHeld,
    EpisodeDischarged, Event, MeasureRecorded, MedicationPrescribed, MeetingCancelled,
    MeetingHeld, MeetingScheduled, ReferralAccepted, ReferralReceived, ReferralRejected,
    ReferralWithdrawn, RiskAssessed,
)

_MODELS = {
    model.get_resource_type(): model
    for model in (
        CarePlan, Encounter, Location, MessageHeader, Observation, Patient, Practitioner,
        RelatedPerson, ServiceRequest, Task,
    )
}


_VALIDATED = ValidationCache(max_entries=200_000)


def build_message(
    event: Event, episode: Episode, deadline: Deadline | None, *, base_url: str = DEFAULT_BASE_URL,
    deadlines: tuple[Deadline, ...] = (), validate: bool = True,
) -> Json:
    """The message Bundle (as JSON) for the change `event` made; `episode` is the state after it.

    `deadline` is the episode's first-meeting deadline, if its clock has started; `deadlines` all
    its deadlines (every policy, open or closed), each sent as a Task with the CarePlan. `base_url` is
    the trust's namespace for podlink's own code systems, extensions and identifier systems
    (`PODLINK_FHIR_BASE_URL`). The same inputs always give an equal result, ids included.
    Read the result, never change it: resources that recur from message to message (the
    Patient, Tasks, Practitioners...) are built once and shared between results.
    `validate` checks the result against fhir.resources and the R4 JSON Schema, and that the
    focus reaches every entry (a mapping that sends more breaks the messaging rule); the worker
    skips that unless `PODLINK_FHIR_VALIDATION=full` (the tests prove the mappings instead:
    docs/performance.md). Raises MappingError if the episode has no referral to send or (when
    validating) the result would not be valid FHIR, ValueError if `base_url` is not an absolute
    http(s) URL.
    """
    ns = namespace(base_url)
    referral = require_referral(episode)
    request = service_request(episode, ns)  # once, for the referral's events focus on it too
    groups = _concerned(event, episode, deadline, ns, deadlines, request)
    focus = _unique([group[0] for group in groups])
    pool = _unique([*(r for group in groups for r in group), patient(referral.patient), request])
    bundle = {
        "resourceType": "Bundle",
        "id": bundle_id(event.source, event.id),
        "meta": meta(PROFILE_BUNDLE),
        "type": "message",
        "timestamp": utc_text(event.time),
        "entry": [
            {"fullUrl": full_url(resource["id"]), "resource": resource}
            for resource in (message_header(event, [r["id"] for r in focus], ns), *pool)
        ],
    }
    if not validate:
        return bundle
    if len(reachable(focus, pool)) < len(pool):
        raise MappingError("not a valid FHIR message: an entry is referenced by none of its focus")
    return _validated(bundle)


def _concerned(event: Event, episode: Episode, deadline: Deadline | None, ns: Namespace,
               deadlines: tuple[Deadline, ...], request: Json) -> list[list[Json]]:
    """The resources the event concerns, the message's main focus first: each a group of the
    resource followed by the resources it references. `request` is the referral's ServiceRequest."""
    match event.data:
        case ReferralReceived() as referral:
            network = [[related_person(episode, p.personId, p.relationship, ns)] for p in referral.network]
            return [
                [request], first_meeting_encounter(episode, ns),
                care_plan(episode, deadline, ns, deadlines), *network,
            ]
        case ReferralAccepted():
            return [[request], care_plan(episode, deadline, ns, deadlines)]
        case ReferralRejected() | ReferralWithdrawn():
            return [[request], care_plan(episode, deadline, ns, deadlines), *closing_encounters(episode, ns)]
        case MeetingScheduled() | MeetingHeld() | MeetingCancelled() as change:
            meeting = episode.meetings.get(change.meetingId)
            if meeting is None:
                raise MappingError("the episode has no meeting with the event's meeting id")
            return [meeting_encounter(episode, meeting, ns), care_plan(episode, deadline, ns, deadlines)]
        case MeasureRecorded() as measure:
            return [measure_observation(episode, measure, ns)]
        case RiskAssessed() as risk:
            return [risk_observation(episode, risk, ns)]
        case EpisodeDischarged():
            return [care_plan(episode, deadline, ns, deadlines), *closing_encounters(episode, ns)]
        case (
            ContactMade() | CpaCoordinatorAssigned() | CpaReviewHeld() | MedicationPrescribed()
            | AdmissionStarted() | AdmissionEnded()
        ):
            return [care_plan(episode, deadline, ns, deadlines)]
    raise MappingError(f"no message for event type {event.type}")


def reachable(focus: list[Json], pool: list[Json]) -> list[Json]:
    """The resources of `pool` that the `focus` resources reach by references, directly or
    through other resources of the pool, in pool order (the focus among them)."""
    urls = [full_url(resource["id"]) for resource in pool]
    by_url = dict(zip(urls, pool))
    seen = {full_url(resource["id"]) for resource in focus}
    waiting = list(focus)
    while waiting:
        for url in _references(waiting.pop()):
            if url in by_url and url not in seen:
                seen.add(url)
                waiting.append(by_url[url])
    return [resource for url, resource in zip(urls, pool) if url in seen]


# Where each kind of resource the mappings build holds references: (element, part of it) is a
# Reference, or a list of them, at `resource[element][part]` (`resource[element]` with no part).
# Only these are read, not every element: walking every element of every resource was a third
# of building a message (measured). A test holds this table to that walk over every message the
# tests build, so a mapping that gains a reference elsewhere fails it until it is added here.
REFERENCE_PATHS: dict[str, tuple[tuple[str, str | None], ...]] = {
    "CarePlan": (("subject", None), ("author", None), ("supportingInfo", None), ("activity", "reference")),
    "Encounter": (("subject", None), ("basedOn", None), ("participant", "individual"), ("location", "location")),
    "Location": (),
    "Observation": (("basedOn", None), ("subject", None), ("performer", None)),
    "Patient": (),
    "Practitioner": (),
    "RelatedPerson": (("patient", None),),
    "ServiceRequest": (("subject", None),),
    "Task": (("focus", None), ("for", None)),
}


def _references(resource: Json) -> list[str]:
    found: list[str] = []
    for element, part in REFERENCE_PATHS[resource["resourceType"]]:
        value = resource.get(element)
        if value is None:
            continue
        for item in value if type(value) is list else (value,):
            target = item if part is None else item.get(part)
            if target is not None and type(url := target.get("reference")) is str:
                found.append(url)
    return found


def _unique(resources: list[Json]) -> list[Json]:
    # A resource reached twice (a coordinator who also attended) is one entry, at its first place.
    by_id: dict[str, Json] = {}
    for resource in resources:
        by_id.setdefault(resource["id"], resource)
    return list(by_id.values())


def _validated(bundle: Json) -> Json:
    """The Bundle as built, once each resource in it has passed its fhir.resources model and
    the official FHIR R4 JSON Schema (for code values, which fhir.resources does not check).

    The dict that passed is returned as it is: serialising the validated models again cost
    60% of a message (measured) and gives back the same JSON (a unit test holds it to that).
    A resource identical to one already validated is not validated again: Patient,
    ServiceRequest, Practitioners and Locations repeat in most messages unchanged.
    """
    try:
        for entry in bundle["entry"]:
            _VALIDATED.check(entry["resource"], _validate)
        Bundle.model_validate({**bundle, "entry": [{"fullUrl": e["fullUrl"]} for e in bundle["entry"]]})
    except ValidationError as error:
        problems = "; ".join(
            f"{error.title}.{'.'.join(str(part) for part in problem['loc'])}: {problem['type']}"
            for problem in error.errors(include_url=False, include_context=False, include_input=False)
        )
    else:
        return bundle
    # Raised outside the handler so the ValidationError, whose text shows the input values
    # (patient data), is not attached to our error as its context.
    raise MappingError(f"not a valid FHIR R4 message: {problems}")


def _validate(resource: Json) -> None:
    """Raises if the resource or one of its codes is not valid R4."""
    _MODELS[resource["resourceType"]].model_validate(resource)
    problems = code_problems(resource)
    if problems:
        raise MappingError(f"not a valid FHIR R4 message: {'; '.join(problems)}")
