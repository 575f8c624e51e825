"""FHIR message Bundles from the EPR, back into events of the v1 contract (docs/epr-exchange.md).

The EPR sends podlink's own message shapes (docs/fhir-mapping.md), or the plainer FHIR
resources an EPR already has for the same facts: an Appointment for a booked meeting, a
RiskAssessment, a QuestionnaireResponse, an EpisodeOfCare. The referral is found through the
ServiceRequest the focus resource is based on, by its referral identifier.

The answer is an event (a CloudEvent dict, still to be checked against the contract by the
caller, exactly as the stream processor checks it) or a refusal: 400 when the Bundle is not a
FHIR message podlink can read (naming the element), 422 when it is one podlink does not apply.
A refusal names elements and rules, never values: a value can be an NHS number or a name.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from fhir.resources.R4B.bundle import Bundle
from pydantic import ValidationError

from podlink.fhir_mappings.systems import DEFAULT_BASE_URL, namespace
from podlink.streams.core.encoding import utc_text

Json = dict[str, Any]

# podlink's own message event codes (message_header.py), whatever base URL their system has.
MESSAGE_EVENTS_ID = "podlink-message-events"
MESSAGE_EVENT_SYSTEM_SUFFIX = f"/CodeSystem/{MESSAGE_EVENTS_ID}"
EVENT_TYPES = {
    "meeting-scheduled": "uk.nhs.pod.meeting.scheduled",
    "meeting-held": "uk.nhs.pod.meeting.held",
    "meeting-cancelled": "uk.nhs.pod.meeting.cancelled",
    "risk-assessed": "uk.nhs.pod.risk.assessed",
    "measure-recorded": "uk.nhs.pod.measure.recorded",
    "episode-discharged": "uk.nhs.pod.episode.discharged",
}

# Encounter.class (v3 ActCode) to the contract's location, as podlink's own messages set it;
# podlink's own Location name, when there is one, is read first.
CLASS_LOCATION = {"HH": "home", "AMB": "clinic", "FLD": "community", "VR": "virtual", "IMP": "inpatient_ward"}
LOCATION_NAMES = {
    "service user's home": "home", "clinic": "clinic", "community setting": "community",
    "virtual (video or telephone)": "virtual", "inpatient ward": "inpatient_ward",
}
LOCATIONS = frozenset({"home", "clinic", "community", "virtual", "inpatient_ward"})
STAFF_ROLES = frozenset({
    "peer_support_worker", "nurse", "psychiatrist", "psychologist", "occupational_therapist",
    "social_worker", "family_therapist", "support_worker", "other",
})
# RelatedPerson.relationship: v3 RoleCode as podlink sends it, or the contract's own words.
RELATIONSHIPS = {
    "SIGOTHR": "spouse_or_partner", "SPS": "spouse_or_partner", "PRN": "parent", "MTH": "parent",
    "FTH": "parent", "CHILD": "child", "SIB": "sibling", "FAMMEMB": "other_relative",
    "FRND": "friend", "NBOR": "neighbour",
}
CONTRACT_RELATIONSHIPS = frozenset({
    "spouse_or_partner", "parent", "child", "sibling", "other_relative", "friend", "carer",
    "neighbour", "other",
})
CANCELLATION_REASONS = frozenset({"service_user_request", "staff_unavailable", "did_not_attend", "other"})
RISK_SNOMED = "225338004"
# Observation.valueCodeableConcept (podlink's risk levels) or RiskAssessment's qualitativeRisk
# (http://terminology.hl7.org/CodeSystem/risk-probability).
RISK_LEVELS = {"low": "low", "negligible": "low", "medium": "medium", "moderate": "medium",
               "high": "high", "certain": "high"}
MEASURE_CODES = {"718466001": "SWEMWBS", "honos-total": "HONOS", "wsas-total": "WSAS",
                 "cws-support-total": "CWS", "cmhs-mean": "CMHS"}
INSTRUMENTS = ("HONOS", "SWEMWBS", "WSAS", "CWS", "CMHS")
TIMEPOINTS = frozenset({"baseline", "3_months", "6_months", "discharge"})
EXT_SERVICE_USER_ATTENDED = "Extension-POD-ServiceUserAttended"
EXT_CANCELLATION_REASON = "Extension-POD-CancellationReason"
EXT_MEASURE_TIMEPOINT = "Extension-POD-MeasureTimepoint"
EXT_SHARED_DECISION = "Extension-POD-SharedDecision"


@dataclass(frozen=True)
class Systems:
    """The identifier systems the trust's EPR and podlink share (the trust's namespace)."""

    referral_id: str
    staff_id: str
    meeting_id: str
    message_events: str

    @classmethod
    def of(cls, base_url: str = DEFAULT_BASE_URL) -> Systems:
        """The systems under the trust's FHIR base URL (PODLINK_FHIR_BASE_URL)."""
        ns = namespace(base_url)
        return cls(referral_id=ns.referral_id, staff_id=ns.staff_id, meeting_id=ns.meeting_id,
                   message_events=ns.code_system(MESSAGE_EVENTS_ID))


@dataclass(frozen=True)
class Translated:
    referral_id: str
    event: Json  # a CloudEvent of the v1 contract
    event_coding: Json  # the request's MessageHeader.eventCoding, for the response


@dataclass(frozen=True)
class Refused:
    status: int  # 400: not a message podlink can read; 422: one it does not apply
    element: str  # where, as a FHIRPath-like path
    problem: str  # what, without any value


class _Refusal(Exception):
    def __init__(self, status: int, element: str, problem: str) -> None:
        super().__init__(problem)
        self.refused = Refused(status, element, problem)


def _bad(element: str, problem: str) -> _Refusal:
    return _Refusal(400, element, problem)


def translate(bundle: Any, source: str, received_at: datetime, systems: Systems | None = None) -> Translated | Refused:
    """The contract event an EPR's message Bundle stands for, or why there is none."""
    try:
        return _translate(bundle, source, received_at, systems or Systems.of())
    except _Refusal as refusal:
        return refusal.refused


def _translate(bundle: Any, source: str, received_at: datetime, systems: Systems) -> Translated:
    _check_fhir(bundle)
    if bundle.get("type") != "message":
        raise _bad("Bundle.type", "must be message")
    if not bundle.get("id"):
        raise _bad("Bundle.id", "is required (it identifies the message)")
    entries = bundle.get("entry") or []
    header = entries[0].get("resource", {}) if entries else {}
    if header.get("resourceType") != "MessageHeader":
        raise _bad("Bundle.entry[0]", "must be a MessageHeader")
    coding = header.get("eventCoding") or {}
    code = coding.get("code")
    if not str(coding.get("system", "")).endswith(MESSAGE_EVENT_SYSTEM_SUFFIX) or code not in EVENT_TYPES:
        raise _Refusal(422, "MessageHeader.eventCoding", "message event not handled by podlink "
                       f"(handled: {', '.join(EVENT_TYPES)})")
    message = _Message(entries)
    focus = message.resolve((header.get("focus") or [{}])[0], "MessageHeader.focus")
    referral_id = message.referral_id(focus, systems)
    read = _READERS[code]
    data = read(message, focus, systems, bundle)
    event = {
        "specversion": "1.0",
        "id": bundle["id"],
        "source": source,
        "type": EVENT_TYPES[code],
        "time": bundle.get("timestamp") or utc_text(received_at),
        "subject": referral_id,
        "datacontenttype": "application/json",
        "data": {"referralId": referral_id, **data},
    }
    return Translated(referral_id, event, coding)


def _check_fhir(bundle: Any) -> None:
    if not isinstance(bundle, dict) or bundle.get("resourceType") != "Bundle":
        raise _bad("Bundle", "the body must be a FHIR Bundle resource")
    try:
        Bundle.model_validate(bundle)
    except ValidationError as exc:
        error = exc.errors(include_url=False, include_input=False, include_context=False)[0]
        if error["type"] == "extra_forbidden":
            # The unknown name is the sender's text (it could be anything): not repeated.
            raise _bad(_element(error["loc"][:-1]), "has an element FHIR R4 does not define") from None
        raise _bad(_element(error["loc"]), f"is not valid FHIR R4 ({error['type']})") from None
    except Exception:  # noqa: BLE001 - fhir.resources raises KeyError for an unknown resourceType
        raise _bad("Bundle.entry.resource", "is not a FHIR R4 resource (unknown resourceType)") from None


def _element(loc: tuple[Any, ...]) -> str:
    path = "Bundle"
    for part in loc:
        if isinstance(part, int):
            path += f"[{part}]"
        elif part not in ("root", "__root__") and str(part).isidentifier():
            path += f".{part}"
    return path


class _Message:
    """The Bundle's entries, found by their fullUrl or as Type/id."""

    def __init__(self, entries: list[Json]) -> None:
        self._by_ref: dict[str, Json] = {}
        for entry in entries:
            resource = entry.get("resource") or {}
            if entry.get("fullUrl"):
                self._by_ref[entry["fullUrl"]] = resource
            if resource.get("id"):
                self._by_ref[f"{resource['resourceType']}/{resource['id']}"] = resource
        self.resources = [entry.get("resource") or {} for entry in entries]

    def resolve(self, reference: Json, element: str) -> Json:
        found = self._by_ref.get(str(reference.get("reference", "")))
        if found is None:
            raise _bad(element, "does not refer to an entry of the Bundle")
        return found

    def find(self, reference: Json) -> Json | None:
        return self._by_ref.get(str(reference.get("reference", "")))

    def referral_id(self, focus: Json, systems: Systems) -> str:
        kind = focus["resourceType"]
        links = [*_as_list(focus.get("basedOn")), *_as_list(focus.get("referralRequest")),
                 *_as_list(focus.get("supportingInfo"))]
        for link in links:
            # A logical reference by the referral identifier itself, or a ServiceRequest entry.
            value = _identifier(_as_list(link.get("identifier")), systems.referral_id)
            if value:
                return value
            target = self.find(link)
            if target and target.get("resourceType") == "ServiceRequest":
                value = _identifier(target.get("identifier", []), systems.referral_id)
                if value:
                    return value
        raise _bad(f"{kind}.basedOn", "must refer to the referral: a ServiceRequest with an "
                   f"identifier of system {systems.referral_id}")


def _as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    return value if isinstance(value, list) else [value]


def _identifier(identifiers: list[Json], system: str | None) -> str | None:
    for identifier in identifiers:
        if (system is None or identifier.get("system") == system) and identifier.get("value"):
            return str(identifier["value"])
    return None


def _codes(concepts: Any) -> list[str]:
    return [str(c.get("code")) for concept in _as_list(concepts) for c in concept.get("coding", []) if c.get("code")]


def _extension(resource: Json, suffix: str) -> Json | None:
    return next((e for e in resource.get("extension", []) if str(e.get("url", "")).endswith(suffix)), None)


def _require(value: Any, element: str, problem: str = "is required") -> Any:
    if value in (None, "", []):
        raise _bad(element, problem)
    return value


def _meeting_id(resource: Json, systems: Systems) -> str:
    kind = resource["resourceType"]
    identifiers = resource.get("identifier", [])
    # The meeting-id system first (podlink's own and an EPR that uses it); else the EPR's own id.
    value = _identifier(identifiers, systems.meeting_id) or _identifier(identifiers, None)
    return _require(value, f"{kind}.identifier", "is required: the meeting's business identifier (meetingId)")


def _location(message: _Message, resource: Json) -> str:
    kind = resource["resourceType"]
    for place in resource.get("location", []):
        found = message.find(place.get("location", {}))
        if found and str(found.get("name", "")).lower() in LOCATION_NAMES:
            return LOCATION_NAMES[str(found["name"]).lower()]
    classes = [resource.get("class", {}).get("code")] if kind == "Encounter" else _codes(resource.get("appointmentType"))
    for code in classes:
        if code in CLASS_LOCATION:
            return CLASS_LOCATION[code]
        if code in LOCATIONS:
            return str(code)
    element = f"{kind}.class" if kind == "Encounter" else "Appointment.appointmentType"
    raise _bad(element, "must say where the meeting is (v3 ActCode HH, AMB, FLD, VR or IMP)")


def _meeting_scheduled(message: _Message, focus: Json, systems: Systems, bundle: Json) -> Json:
    kind = _expect(focus, ("Appointment", "Encounter"), "meeting-scheduled")
    start = focus.get("start") if kind == "Appointment" else focus.get("period", {}).get("start")
    return {
        "meetingId": _meeting_id(focus, systems),
        "scheduledStart": _require(start, f"{kind}.{'start' if kind == 'Appointment' else 'period.start'}"),
        "location": _location(message, focus),
    }


def _meeting_held(message: _Message, focus: Json, systems: Systems, bundle: Json) -> Json:
    _expect(focus, ("Encounter",), "meeting-held")
    if focus.get("status") != "finished":
        raise _Refusal(422, "Encounter.status", "a meeting held is an Encounter with status finished")
    period = focus.get("period", {})
    return {
        "meetingId": _meeting_id(focus, systems),
        "start": _require(period.get("start"), "Encounter.period.start"),
        "end": _require(period.get("end"), "Encounter.period.end"),
        "location": _location(message, focus),
        "attendees": _attendees(message, focus, systems),
    }


def _attendees(message: _Message, encounter: Json, systems: Systems) -> list[Json]:
    attendees: list[Json] = []
    attended = _extension(encounter, EXT_SERVICE_USER_ATTENDED)
    if attended is not None and attended.get("valueBoolean") is True:
        attendees.append({"kind": "service_user"})
    for number, participant in enumerate(encounter.get("participant", [])):
        individual = participant.get("individual", {})
        person = message.resolve(individual, f"Encounter.participant[{number}].individual")
        kind = person.get("resourceType")
        if kind == "Practitioner":
            roles = [c for c in _codes(participant.get("type")) if c in STAFF_ROLES]
            attendees.append({"kind": "staff", "staffId": _staff_id(person, systems, f"Encounter.participant[{number}]"),
                              "role": roles[0] if roles else "other"})
        elif kind == "RelatedPerson":
            attendees.append({"kind": "network_member",
                              "personId": _identifier(person.get("identifier", []), None) or person.get("id"),
                              "relationship": _relationship(person)})
        elif kind == "Patient" and not any(a["kind"] == "service_user" for a in attendees):
            attendees.append({"kind": "service_user"})
    return attendees


def _staff_id(practitioner: Json, systems: Systems, element: str) -> str:
    identifiers = practitioner.get("identifier", [])
    value = _identifier(identifiers, systems.staff_id) or _identifier(identifiers, None)
    return _require(value, f"{element}: Practitioner.identifier", "is required (the staff id)")


def _relationship(person: Json) -> str:
    for code in _codes(person.get("relationship")):
        if code in RELATIONSHIPS:
            return RELATIONSHIPS[code]
        if code in CONTRACT_RELATIONSHIPS:
            return code
    return "other"


def _meeting_cancelled(message: _Message, focus: Json, systems: Systems, bundle: Json) -> Json:
    kind = _expect(focus, ("Appointment", "Encounter"), "meeting-cancelled")
    if focus.get("status") != "cancelled":
        raise _Refusal(422, f"{kind}.status", "a cancelled meeting has status cancelled")
    extension = _extension(focus, EXT_CANCELLATION_REASON)
    codes = [str(extension.get("valueCoding", {}).get("code"))] if extension else []
    codes += _codes(focus.get("cancelationReason"))
    return {
        "meetingId": _meeting_id(focus, systems),
        "cancelledAt": _require(bundle.get("timestamp"), "Bundle.timestamp", "is required: when the meeting was cancelled"),
        "reason": next((c for c in codes if c in CANCELLATION_REASONS), "other"),
    }


def _risk_assessed(message: _Message, focus: Json, systems: Systems, bundle: Json) -> Json:
    kind = _expect(focus, ("Observation", "RiskAssessment"), "risk-assessed")
    if kind == "Observation":
        if RISK_SNOMED not in _codes(focus.get("code")):
            raise _Refusal(422, "Observation.code", f"a risk assessment Observation has SNOMED {RISK_SNOMED}")
        levels = _codes(focus.get("valueCodeableConcept"))
        at = focus.get("effectiveDateTime")
        at_element, level_element = "Observation.effectiveDateTime", "Observation.valueCodeableConcept"
    else:
        levels = [c for p in focus.get("prediction", []) for c in _codes(p.get("qualitativeRisk"))]
        at = focus.get("occurrenceDateTime")
        at_element, level_element = "RiskAssessment.occurrenceDateTime", "RiskAssessment.prediction.qualitativeRisk"
    level = next((RISK_LEVELS[c] for c in levels if c in RISK_LEVELS), None)
    performers = _as_list(focus.get("performer"))
    assessor = message.resolve(_require(performers[:1], f"{kind}.performer")[0], f"{kind}.performer")
    if assessor.get("resourceType") != "Practitioner":
        raise _bad(f"{kind}.performer", "must be the Practitioner who assessed")
    return {
        "assessedAt": _require(at, at_element),
        "level": _require(level, level_element, "must be a risk level: low, medium (moderate) or high"),
        "assessor": {"staffId": _staff_id(assessor, systems, f"{kind}.performer"), "role": "other"},
    }


def _measure_recorded(message: _Message, focus: Json, systems: Systems, bundle: Json) -> Json:
    kind = _expect(focus, ("Observation", "QuestionnaireResponse"), "measure-recorded")
    if kind == "Observation":
        instrument = next((MEASURE_CODES[c] for c in _codes(focus.get("code")) if c in MEASURE_CODES), None)
        instrument = _require(instrument, "Observation.code", "must be an outcome measure podlink knows")
        items = [c.get("valueInteger") for c in focus.get("component", [])]
        at, at_element, items_element = focus.get("effectiveDateTime"), "Observation.effectiveDateTime", "Observation.component"
        performer = message.find((_as_list(focus.get("performer")) or [{}])[0])
    else:
        questionnaire = str(focus.get("questionnaire", "")).upper()
        instrument = next((name for name in INSTRUMENTS if questionnaire.rstrip("/").endswith(name)), None)
        instrument = _require(instrument, "QuestionnaireResponse.questionnaire",
                              f"must name the instrument ({', '.join(INSTRUMENTS)})")
        items = [(item.get("answer") or [{}])[0].get("valueInteger") for item in focus.get("item", [])]
        at, at_element, items_element = focus.get("authored"), "QuestionnaireResponse.authored", "QuestionnaireResponse.item"
        performer = message.find(focus.get("author") or focus.get("source") or {})
    if not items or any(not isinstance(score, int) for score in items):
        raise _bad(items_element, "must hold each item's score as an integer")
    timepoint = (_extension(focus, EXT_MEASURE_TIMEPOINT) or {}).get("valueCoding", {}).get("code")
    data: Json = {
        "recordedAt": _require(at, at_element),
        "instrument": instrument,
        "timepoint": _require(timepoint if timepoint in TIMEPOINTS else None, f"{kind}.extension",
                              f"must have {EXT_MEASURE_TIMEPOINT} (baseline, 3_months, 6_months, discharge)"),
        "items": items,
    }
    respondent = {"Patient": "service_user", "RelatedPerson": "carer", "Practitioner": "clinician"}.get(
        (performer or {}).get("resourceType", ""))
    if respondent:
        data["respondent"] = respondent
    return data


def _episode_discharged(message: _Message, focus: Json, systems: Systems, bundle: Json) -> Json:
    kind = _expect(focus, ("CarePlan", "EpisodeOfCare", "Encounter"), "episode-discharged")
    finished = {"CarePlan": "completed", "EpisodeOfCare": "finished", "Encounter": "finished"}[kind]
    if focus.get("status") != finished:
        raise _Refusal(422, f"{kind}.status", f"a discharge has status {finished}")
    if kind == "Encounter" and not focus.get("hospitalization", {}).get("dischargeDisposition"):
        raise _bad("Encounter.hospitalization.dischargeDisposition", "is required for a discharge")
    shared = (_extension(focus, EXT_SHARED_DECISION) or {}).get("valueBoolean")
    return {
        "dischargedAt": _require(focus.get("period", {}).get("end"), f"{kind}.period.end"),
        # The contract needs it; an EPR that does not record it has not recorded a shared decision.
        "sharedDecision": shared is True,
    }


def _expect(focus: Json, kinds: tuple[str, ...], code: str) -> str:
    kind = str(focus.get("resourceType"))
    if kind not in kinds:
        raise _Refusal(422, "MessageHeader.focus", f"{code} needs a focus of type {' or '.join(kinds)}")
    return kind


_READERS = {
    "meeting-scheduled": _meeting_scheduled,
    "meeting-held": _meeting_held,
    "meeting-cancelled": _meeting_cancelled,
    "risk-assessed": _risk_assessed,
    "measure-recorded": _measure_recorded,
    "episode-discharged": _episode_discharged,
}
