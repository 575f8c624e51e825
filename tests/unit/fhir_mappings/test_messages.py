"""FHIR message Bundles for the contract's example events, checked for what an EPR relies on.

Episodes are built by applying the contract examples through `streams.episode.apply`; each
transition gives one message, as the service sends it.
"""
from __future__ import annotations

import copy
import functools
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from fhir.resources.R4B.bundle import Bundle

from podlink.fhir_mappings import MappingError, build_message
from podlink.fhir_mappings.messages import _references, reachable
from podlink.streams.core.deadlines import Deadline
from podlink.streams.core.pathway import first_meeting_deadline
from podlink.streams.core.episode import Episode, Policy, apply
from podlink.streams.core.events import Event, parse_event
from podlink.streams.core.ids import stable_id
from tests.support.episodes import FIRST_CONTACT_START, policy_from
from tests.support.fhir_schema import bundle_errors, resource_errors

REPO = Path(__file__).resolve().parents[3]
EXAMPLES = REPO.parent / "shared" / "contracts" / "examples"
POLICY = Policy()

UK_CORE = "https://fhir.hl7.org.uk/StructureDefinition/UKCore-"
BARS_EVENTS = "https://fhir.nhs.uk/CodeSystem/message-events-bars"
BARS_REASON = "https://fhir.nhs.uk/CodeSystem/message-reason-bars"
# The default namespace of podlink's own terms, until a trust sets PODLINK_FHIR_BASE_URL.
LOCAL = "https://podlink.example.org/fhir"
PODLINK_EVENTS = LOCAL + "/CodeSystem/podlink-message-events"
NHS_NUMBER = "https://fhir.nhs.uk/Id/nhs-number"
VERIFICATION_EXT = "https://fhir.hl7.org.uk/StructureDefinition/Extension-UKCore-NHSNumberVerificationStatus"
STAFF_ROLE = LOCAL + "/CodeSystem/pod-staff-role"
V3_PARTICIPATION = "http://terminology.hl7.org/CodeSystem/v3-ParticipationType"
V3_ACT = "http://terminology.hl7.org/CodeSystem/v3-ActCode"
V3_ROLE = "http://terminology.hl7.org/CodeSystem/v3-RoleCode"
SNOMED = "http://snomed.info/sct"

MAIN_REFERRAL = "REF-2026-000123"
OTHER_NHS_NUMBER = "9990000018"  # passes the check digit; 999 numbers are never issued


# --- building messages from the examples -------------------------------------------------


@dataclass(frozen=True)
class Sent:
    """One message and the inputs it was built from."""

    label: str
    event: Event
    episode: Episode
    deadline: Deadline | None
    message: dict[str, Any]


def example(name: str) -> dict[str, Any]:
    return json.loads((EXAMPLES / f"{name}.json").read_text())


def for_referral(raw: dict[str, Any], referral_id: str, event_id: str, **data: Any) -> dict[str, Any]:
    """A copy of an example event about another referral (or with other data)."""
    event = copy.deepcopy(raw)
    event["id"] = event_id
    event["subject"] = referral_id
    event["data"] = {**event["data"], "referralId": referral_id, **data}
    return event


def send(raws: list[dict[str, Any]], label: str = "", policy: Policy = POLICY, **options: Any) -> list[Sent]:
    episode: Episode | None = None
    sent = []
    for raw in raws:
        step = apply(episode, parse_event(raw), policy)
        episode = step.episode
        for change in step.transitions:
            deadline = first_meeting_deadline(change.after, policy)
            message = build_message(change.event, change.after, deadline, **options)
            name = change.event.type.rsplit(".", 2)[-2:]
            sent.append(Sent(label + "-".join(name), change.event, change.after, deadline, message))
    return sent


@functools.cache
def journey() -> tuple[Sent, ...]:
    """Every example about the main referral, in time order: one message per event type."""
    raws = [json.loads(p.read_text()) for p in sorted(EXAMPLES.glob("*.json"))]
    main = sorted((r for r in raws if r["subject"] == MAIN_REFERRAL), key=lambda r: r["time"])
    return tuple(send(main))


@functools.cache
def closed_early() -> tuple[Sent, ...]:
    """The rejected and withdrawn examples, each after a referral of its own."""
    received = example("referral-received")
    sent: list[Sent] = []
    for name, referral_id, nhs_number in [
        ("referral-rejected", "REF-2026-000124", OTHER_NHS_NUMBER),
        ("referral-withdrawn", "REF-2026-000125", "9995260182"),
    ]:
        patient = {**received["data"]["patient"], "nhsNumber": nhs_number}
        referral = for_referral(received, referral_id, f"received-{referral_id}", patient=patient)
        sent += send([referral, example(name)], label=f"{referral_id}:")
    return tuple(sent)


@functools.cache
def variants() -> tuple[Sent, ...]:
    """Paths the examples do not take: a late first meeting, HoNOS, a carer's CWS, CMHS, coded
    reason and medicine, an early discharge."""
    received = example("referral-received")
    late = for_referral(received, "REF-LATE", "received-late")
    held_late = for_referral(
        example("meeting-held"), "REF-LATE", "held-late",
        start="2026-03-30T01:00:00Z", end="2026-03-30T02:00:00Z",
    )
    honos = for_referral(
        example("measure-recorded"), MAIN_REFERRAL, "honos",
        instrument="HONOS", respondent="clinician", items=[1, 2, 0, 0, 3, 4, 2, 1, 0, 2, 1, 3],
    )
    cws = for_referral(
        example("measure-recorded"), MAIN_REFERRAL, "cws",
        instrument="CWS", respondent="carer", respondentPersonId="NET-2", items=[2] * 17,
    )
    cmhs = for_referral(
        example("measure-recorded"), MAIN_REFERRAL, "cmhs", instrument="CMHS", items=[7, 8, 8],
    )
    # Codes here are test values for the mapping, not real SNOMED or dm+d concepts.
    early = for_referral(
        received, "REF-EARLY", "received-early",
        reason={"text": "Crisis", "snomedCode": "1234567890"}, referrer=None, network=[],
    )
    prescribed = for_referral(
        example("medication-prescribed"), "REF-EARLY", "prescribed-early",
        medication={"dmdCode": "9876543210", "display": "Test medicine"},
    )
    discharged = for_referral(example("episode-discharged"), "REF-EARLY", "discharged-early")
    return tuple(
        send([late, held_late], label="late:")
        + send([received, honos], label="honos:")[1:]
        + send([received, cws], label="cws:")[1:]
        + send([received, cmhs], label="cmhs:")[1:]
        + send([early, prescribed, discharged], label="early:")
    )


def every_message() -> list[Sent]:
    return [*journey(), *closed_early(), *variants()]


def by_label(label: str) -> dict[str, Any]:
    return next(s.message for s in every_message() if s.label == label)


def resources(message: dict[str, Any], kind: str | None = None) -> list[dict[str, Any]]:
    return [e["resource"] for e in message["entry"] if kind is None or e["resource"]["resourceType"] == kind]


def one(message: dict[str, Any], kind: str) -> dict[str, Any]:
    (found,) = resources(message, kind)
    return found


def resolve(message: dict[str, Any], ref: dict[str, Any]) -> dict[str, Any]:
    return next(e["resource"] for e in message["entry"] if e["fullUrl"] == ref["reference"])


def references(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        if isinstance(node.get("reference"), str):
            yield node["reference"]
        for value in node.values():
            yield from references(value)
    elif isinstance(node, list):
        for item in node:
            yield from references(item)


def encounter_of_type(message: dict[str, Any], code: str) -> dict[str, Any]:
    (found,) = [r for r in resources(message, "Encounter") if r["type"][0]["coding"][0]["code"] == code]
    return found


def deadline_activity(message: dict[str, Any]) -> dict[str, Any]:
    plan = one(message, "CarePlan")
    (found,) = [a for a in plan["activity"]
                if a["detail"]["code"]["coding"][0]["code"] == "first-network-meeting-within-24h"]
    return found


def activities(message: dict[str, Any], code: str) -> list[dict[str, Any]]:
    plan = one(message, "CarePlan")
    return [a["detail"] for a in plan["activity"] if a["detail"]["code"]["coding"][0]["code"] == code]


ALL = pytest.mark.parametrize("sent", every_message(), ids=lambda s: s.label)


# --- every message -------------------------------------------------------------------------


def test_the_examples_cover_every_event_type():
    covered = {s.event.type for s in every_message()}
    examples = {json.loads(p.read_text())["type"] for p in EXAMPLES.glob("*.json")}
    assert len(examples) == 16 and covered == examples


@ALL
def test_is_a_message_bundle_whose_first_entry_is_the_message_header(sent: Sent):
    message = sent.message
    assert message["resourceType"] == "Bundle" and message["type"] == "message"
    assert message["id"] == stable_id("bundle", sent.event.source, sent.event.id)
    assert message["meta"]["profile"] == [UK_CORE + "Bundle"]
    assert message["timestamp"] == sent.event.time.isoformat().replace("+00:00", "Z")
    header = message["entry"][0]["resource"]
    assert header["resourceType"] == "MessageHeader"
    assert header["source"]["endpoint"] == "urn:podlink"
    assert [r["resourceType"] for r in resources(message)].count("MessageHeader") == 1


@ALL
def test_every_reference_resolves_to_an_entry_of_the_bundle(sent: Sent):
    full_urls = [e["fullUrl"] for e in sent.message["entry"]]
    assert len(full_urls) == len(set(full_urls))
    for entry in sent.message["entry"]:
        assert entry["fullUrl"] == f"urn:uuid:{entry['resource']['id']}"
    dangling = [ref for ref in references(sent.message) if ref not in full_urls]
    assert dangling == []


@ALL
def test_every_resource_declares_its_uk_core_profile(sent: Sent):
    for resource in resources(sent.message):
        assert resource["meta"]["profile"] == [UK_CORE + resource["resourceType"]]


@ALL
def test_every_message_names_the_patient_by_verified_nhs_number(sent: Sent):
    patient = one(sent.message, "Patient")
    (identifier,) = patient["identifier"]
    assert identifier["system"] == NHS_NUMBER
    assert identifier["value"] == sent.episode.referral.patient.nhsNumber
    assert patient["id"] == stable_id("patient", identifier["value"])
    (verification,) = identifier["extension"]
    assert verification["url"] == VERIFICATION_EXT
    coding = verification["valueCodeableConcept"]["coding"][0]
    assert coding["system"] == "https://fhir.hl7.org.uk/CodeSystem/UKCore-NHSNumberVerificationStatusEngland"
    assert (coding["code"], coding["display"]) == ("01", "Number present and verified")


@ALL
def test_round_trips_through_the_fhir_resources_model(sent: Sent):
    assert Bundle.model_validate(sent.message).model_dump(mode="json", exclude_none=True) == sent.message


@ALL
def test_conforms_to_the_official_fhir_r4_json_schema(sent: Sent):
    assert bundle_errors(sent.message) == []


@ALL
def test_equal_inputs_give_an_equal_message(sent: Sent):
    assert build_message(sent.event, sent.episode, sent.deadline) == sent.message


def test_the_schema_check_catches_codes_that_fhir_resources_lets_through():
    encounter = copy.deepcopy(encounter_of_type(by_label("meeting-held"), "network-meeting"))
    encounter["status"] = "bogus"
    assert resource_errors(encounter) != []


# --- the message header --------------------------------------------------------------------

# Event code, reason, and the types of the focus resources: what the event changed, main first.
HEADERS = {
    "referral-received": (BARS_EVENTS, "servicerequest-request", "new",
                          ["ServiceRequest", "Encounter", "CarePlan", "RelatedPerson", "RelatedPerson"]),
    "referral-accepted": (BARS_EVENTS, "servicerequest-response", "update", ["ServiceRequest", "CarePlan"]),
    "REF-2026-000124:referral-rejected": (BARS_EVENTS, "servicerequest-response", "update",
                                          ["ServiceRequest", "CarePlan", "Encounter"]),
    "REF-2026-000125:referral-withdrawn": (BARS_EVENTS, "servicerequest-response", "update",
                                           ["ServiceRequest", "CarePlan", "Encounter"]),
    "contact-made": (PODLINK_EVENTS, "contact-made", "update", ["CarePlan"]),
    "meeting-scheduled": (PODLINK_EVENTS, "meeting-scheduled", "update", ["Encounter", "CarePlan"]),
    "meeting-held": (PODLINK_EVENTS, "meeting-held", "update", ["Encounter", "CarePlan"]),
    "meeting-cancelled": (PODLINK_EVENTS, "meeting-cancelled", "update", ["Encounter", "CarePlan"]),
    "risk-assessed": (PODLINK_EVENTS, "risk-assessed", "update", ["Observation"]),
    "measure-recorded": (PODLINK_EVENTS, "measure-recorded", "update", ["Observation"]),
    "cpa-coordinator-assigned": (PODLINK_EVENTS, "cpa-coordinator-assigned", "update", ["CarePlan"]),
    "cpa-review-held": (PODLINK_EVENTS, "cpa-review-held", "update", ["CarePlan"]),
    "medication-prescribed": (PODLINK_EVENTS, "medication-prescribed", "update", ["CarePlan"]),
    "admission-started": (PODLINK_EVENTS, "admission-started", "update", ["CarePlan"]),
    "admission-ended": (PODLINK_EVENTS, "admission-ended", "update", ["CarePlan"]),
    "episode-discharged": (PODLINK_EVENTS, "episode-discharged", "update", ["CarePlan"]),
}


@pytest.mark.parametrize("label", HEADERS)
def test_the_header_names_the_event_and_focuses_on_what_it_changed(label: str):
    system, code, reason, focus_types = HEADERS[label]
    message = by_label(label)
    header = message["entry"][0]["resource"]
    assert (header["eventCoding"]["system"], header["eventCoding"]["code"]) == (system, code)
    assert header["reason"]["coding"] == [{"system": BARS_REASON, "code": reason}]
    assert [resolve(message, focus)["resourceType"] for focus in header["focus"]] == focus_types
    # The main focus is the entry right after the header.
    assert message["entry"][1]["fullUrl"] == header["focus"][0]["reference"]


def reached_from_focus(message: dict[str, Any]) -> set[str]:
    by_url = {e["fullUrl"]: e["resource"] for e in message["entry"]}
    reached: set[str] = set()
    frontier = [f["reference"] for f in message["entry"][0]["resource"]["focus"]]
    while frontier:
        url = frontier.pop()
        if url not in reached:
            reached.add(url)
            frontier.extend(references(by_url[url]))
    return reached


@ALL
def test_every_entry_is_reachable_from_the_message_header_focus(sent: Sent):
    # The FHIR messaging rule: an entry nothing in the message leads to has no business there.
    entries = [e["fullUrl"] for e in sent.message["entry"][1:]]
    assert sorted(reached_from_focus(sent.message)) == sorted(entries)


@ALL
def test_references_are_read_where_the_mappings_put_them(sent: Sent):
    # Which entries a message needs is worked out from the places references are
    # (messages.REFERENCE_PATHS), not from every element: a reference anywhere else is missed.
    for entry in sent.message["entry"][1:]:
        assert sorted(_references(entry["resource"])) == sorted(references(entry["resource"]))


def test_what_the_focus_reaches_leaves_out_a_resource_nothing_references():
    patient = {"resourceType": "Patient", "id": "p"}
    plan = {"resourceType": "CarePlan", "id": "c", "subject": {"reference": "urn:uuid:p"}}
    practitioner = {"resourceType": "Practitioner", "id": "x"}
    person = {"resourceType": "RelatedPerson", "id": "r", "patient": {"reference": "urn:uuid:p"}}
    # The RelatedPerson points at the Patient, but nothing points at it.
    assert reachable([plan], [plan, person, practitioner, patient]) == [plan, patient]


def test_a_mapping_that_sends_a_resource_nothing_references_is_caught_when_checking(monkeypatch):
    # The worker builds messages unchecked (every entry as the mappings give it): a mapping
    # bug of this kind must fail the tests, which build messages checked.
    from podlink.fhir_mappings import messages

    stray = {"resourceType": "Practitioner", "id": stable_id("stray")}
    mapped = messages.care_plan
    monkeypatch.setattr(messages, "care_plan", lambda *args: [*mapped(*args), stray])
    event = parse_event(example("referral-accepted"))
    episode = apply(None, parse_event(example("referral-received")), POLICY).episode
    episode = apply(episode, event, POLICY).episode
    with pytest.raises(MappingError, match="referenced by none of its focus"):
        build_message(event, episode, None)
    unchecked = build_message(event, episode, None, validate=False)
    assert stray in resources(unchecked)


# --- what each event sends ----------------------------------------------------------------


def kinds(message: dict[str, Any]) -> list[str]:
    return sorted(r["resourceType"] for r in resources(message))


def test_a_received_referral_sends_the_request_with_its_patient_plan_and_network():
    message = by_label("referral-received")
    assert kinds(message) == sorted([
        "MessageHeader", "ServiceRequest", "Patient", "Encounter", "CarePlan",
        "RelatedPerson", "RelatedPerson",
    ])
    request = one(message, "ServiceRequest")
    assert request["id"] == stable_id("servicerequest", MAIN_REFERRAL)
    assert request["identifier"] == [{"system": LOCAL + "/Id/referral-id", "value": MAIN_REFERRAL}]
    assert (request["status"], request["intent"], request["priority"]) == ("active", "order", "urgent")
    assert request["authoredOn"] == "2026-03-28T23:40:00Z"
    assert request["reasonCode"][0]["text"].startswith("Mental health crisis")
    assert request["category"]
    assert resolve(message, request["subject"])["resourceType"] == "Patient"
    assert request["performer"][0]["identifier"]["value"] == "POD-CANTERBURY"

    patient = one(message, "Patient")
    assert patient["name"] == [{"use": "official", "family": "Example", "given": ["Jordan"]}]
    assert (patient["birthDate"], patient["gender"]) == ("1990-05-17", "female")
    assert patient["address"] == [{"postalCode": "CT1 1AA"}]

    network = {p["id"]: p for p in resources(message, "RelatedPerson")}
    partner = network[stable_id("relatedperson", MAIN_REFERRAL, "NET-1")]
    parent = network[stable_id("relatedperson", MAIN_REFERRAL, "NET-2")]
    assert partner["relationship"][0]["coding"][0] == {
        "system": V3_ROLE, "code": "SIGOTHR", "display": "significant other"}
    assert partner["name"] == [{"text": "Chris Example"}]
    assert partner["telecom"] == [{"system": "phone", "value": "07700 900123"}]
    assert parent["relationship"][0]["coding"][0]["code"] == "PRN" and "name" not in parent

    planned = encounter_of_type(message, "first-network-meeting")
    assert planned["id"] == FIRST_MEETING
    assert planned["status"] == "planned"
    assert planned["class"]["code"] == "UNK"  # no meeting arranged yet: setting unknown
    assert "identifier" not in planned and "period" not in planned
    assert resolve(message, planned["basedOn"][0]) is request

    plan = one(message, "CarePlan")
    assert (plan["status"], plan["intent"]) == ("draft", "plan")
    assert plan["category"][0]["coding"][0] == {
        "system": SNOMED, "code": "736253002", "display": "Mental health crisis plan"}
    assert plan["period"] == {"start": "2026-03-28T23:40:00Z"}
    assert resolve(message, plan["supportingInfo"][0]) is request
    detail = deadline_activity(message)["detail"]
    assert detail["status"] == "not-started"
    assert detail["scheduledPeriod"] == {"start": "2026-03-28T23:40:00Z", "end": "2026-03-29T23:40:00Z"}


def test_before_the_deadline_clock_starts_the_deadline_activity_has_no_period():
    policy = policy_from(FIRST_CONTACT_START)
    (received,) = send([example("referral-received")], policy=policy)
    assert received.deadline is None
    detail = deadline_activity(received.message)["detail"]
    assert detail["status"] == "not-started" and "scheduledPeriod" not in detail
    assert bundle_errors(received.message) == []


def test_an_unverified_nhs_number_is_sent_as_not_traced():
    received = example("referral-received")
    received["data"]["patient"]["nhsNumberVerified"] = False
    (sent,) = send([received])
    coding = one(sent.message, "Patient")["identifier"][0]["extension"][0]["valueCodeableConcept"]["coding"][0]
    assert (coding["code"], coding["display"]) == ("02", "Number present but not traced")


@pytest.mark.parametrize("urgency, priority", [
    ("emergency", "stat"), ("very_urgent", "asap"), ("urgent", "urgent"), ("routine", "routine"),
])
def test_urgency_becomes_the_request_priority(urgency: str, priority: str):
    received = example("referral-received")
    received["data"]["urgency"] = urgency
    (sent,) = send([received])
    assert one(sent.message, "ServiceRequest")["priority"] == priority


def test_acceptance_activates_the_request_and_the_plan():
    message = by_label("referral-accepted")
    assert kinds(message) == ["CarePlan", "MessageHeader", "Patient", "ServiceRequest"]
    assert one(message, "ServiceRequest")["status"] == "active"
    assert one(message, "CarePlan")["status"] == "active"


@pytest.mark.parametrize("label, ended", [
    ("REF-2026-000124:referral-rejected", "2026-03-28T23:40:00Z"),
    ("REF-2026-000125:referral-withdrawn", "2026-03-28T23:40:00Z"),
])
def test_rejection_and_withdrawal_revoke_the_request_and_cancel_the_first_meeting(label: str, ended: str):
    message = by_label(label)
    assert kinds(message) == ["CarePlan", "Encounter", "MessageHeader", "Patient", "ServiceRequest"]
    request = one(message, "ServiceRequest")
    assert request["status"] == "revoked" and request["note"]
    plan = one(message, "CarePlan")
    assert plan["status"] == "revoked" and plan["period"]["end"] == ended
    assert deadline_activity(message)["detail"]["status"] == "cancelled"
    assert encounter_of_type(message, "first-network-meeting")["status"] == "cancelled"


FIRST_MEETING = stable_id("encounter", MAIN_REFERRAL, "first-meeting-planned")
MEETING_ID = LOCAL + "/Id/meeting-id"


def test_the_first_meeting_arranged_is_the_first_meeting_encounter_the_referral_planned():
    message = by_label("meeting-scheduled")
    (meeting,) = resources(message, "Encounter")
    # The same Encounter the referral sent as planned, now with its time, place and meeting id.
    assert meeting["id"] == FIRST_MEETING
    assert meeting["identifier"] == [{"system": MEETING_ID, "value": "MTG-1"}]
    assert meeting["type"][0]["coding"][0]["code"] == "network-meeting"
    assert meeting["status"] == "planned"
    assert meeting["class"] == {"system": V3_ACT, "code": "HH", "display": "home health"}
    assert meeting["period"] == {"start": "2026-03-29T14:40:00Z"}
    assert "participant" not in meeting
    assert deadline_activity(message)["detail"]["status"] == "scheduled"
    (planned,) = activities(message, "network-meeting")
    assert planned["status"] == "scheduled"


def test_a_held_meeting_records_who_attended_and_meets_the_deadline():
    message = by_label("meeting-held")
    # One meeting, one Encounter: the one planned since the referral, now finished.
    (meeting,) = resources(message, "Encounter")
    assert meeting["id"] == FIRST_MEETING
    assert meeting["identifier"] == [{"system": MEETING_ID, "value": "MTG-1"}]
    assert meeting["status"] == "finished"
    assert meeting["class"] == {"system": V3_ACT, "code": "HH", "display": "home health"}
    assert meeting["type"][0]["coding"][0]["code"] == "network-meeting"
    assert meeting["period"] == {"start": "2026-03-29T14:40:00Z", "end": "2026-03-29T16:10:00Z"}
    assert resolve(message, meeting["subject"])["resourceType"] == "Patient"
    assert resolve(message, meeting["basedOn"][0])["resourceType"] == "ServiceRequest"
    where = resolve(message, meeting["location"][0]["location"])
    assert (where["resourceType"], where["mode"], where["id"]) == ("Location", "kind", stable_id("location", "home"))
    assert meeting["extension"] == [{
        "url": LOCAL + "/StructureDefinition/Extension-POD-ServiceUserAttended",
        "valueBoolean": True,
    }]

    performer = {"coding": [{"system": V3_PARTICIPATION, "code": "PPRF", "display": "primary performer"}]}
    staff = {}
    network = []
    for participant in meeting["participant"]:
        who = resolve(message, participant["individual"])
        if who["resourceType"] == "Practitioner":
            staff[who["identifier"][0]["value"]] = participant["type"]
            assert who["id"] == stable_id("practitioner", who["identifier"][0]["value"])
        else:
            network.append((who, participant["type"]))
    assert staff["STF-0042"] == [performer, {"coding": [
        {"system": STAFF_ROLE, "code": "peer_support_worker", "display": "Peer support worker"}]}]
    assert staff["STF-0007"] == [performer, {"coding": [{"system": STAFF_ROLE, "code": "nurse", "display": "Nurse"}]}]
    ((partner, partner_type),) = network
    assert partner_type == [{"coding": [{"system": V3_PARTICIPATION, "code": "PART", "display": "Participation"}]}]
    assert partner["resourceType"] == "RelatedPerson"
    assert partner["relationship"][0]["coding"][0]["code"] == "SIGOTHR"
    assert resolve(message, partner["patient"])["resourceType"] == "Patient"

    activity = deadline_activity(message)
    assert activity["detail"]["status"] == "completed"
    assert activity["detail"]["scheduledPeriod"] == {
        "start": "2026-03-28T23:40:00Z", "end": "2026-03-29T23:40:00Z"}
    assert activity["outcomeCodeableConcept"][0]["coding"][0]["code"] == "met-within-deadline"


def meeting_encounters(sent: list[Sent] | tuple[Sent, ...]) -> dict[str, set[str]]:
    """Encounter ids by the meeting id they carry, over every message sent."""
    ids: dict[str, set[str]] = {}
    for s in sent:
        for encounter in resources(s.message, "Encounter"):
            for identifier in encounter.get("identifier", []):
                assert identifier["system"] == MEETING_ID
                ids.setdefault(identifier["value"], set()).add(encounter["id"])
    return ids


def test_one_meeting_is_one_encounter_throughout_the_journey():
    # The referral's planned first meeting, MTG-1 scheduled and MTG-1 held are one resource;
    # MTG-3 is another. An EPR filing every message holds two Encounters, one of them finished.
    assert meeting_encounters(journey()) == {
        "MTG-1": {FIRST_MEETING},
        "MTG-3": {stable_id("encounter", MAIN_REFERRAL, "MTG-3")},
    }
    latest: dict[str, str] = {}
    for s in journey():
        for encounter in resources(s.message, "Encounter"):
            latest[encounter["id"]] = encounter["status"]
    assert latest == {FIRST_MEETING: "finished", stable_id("encounter", MAIN_REFERRAL, "MTG-3"): "cancelled"}


def scheduled(meeting_id: str, start: str, location: str = "home") -> dict[str, Any]:
    return for_referral(example("meeting-scheduled"), MAIN_REFERRAL, f"scheduled-{meeting_id}",
                        meetingId=meeting_id, scheduledStart=start, location=location)


def test_the_first_meeting_heard_of_keeps_the_planned_encounter_even_if_another_is_held_first():
    held_b = for_referral(example("meeting-held"), MAIN_REFERRAL, "held-B", meetingId="MTG-B",
                          start="2026-03-29T09:00:00Z", end="2026-03-29T10:00:00Z")
    sent = send([example("referral-received"), scheduled("MTG-A", "2026-03-29T18:00:00Z"), held_b])
    assert meeting_encounters(sent) == {
        "MTG-A": {FIRST_MEETING}, "MTG-B": {stable_id("encounter", MAIN_REFERRAL, "MTG-B")},
    }
    (first,) = resources(sent[1].message, "Encounter")
    assert (first["id"], first["status"]) == (FIRST_MEETING, "planned")
    # Held first, MTG-B meets the deadline; MTG-A is still planned and is not sent again.
    (held,) = resources(sent[2].message, "Encounter")
    assert held["status"] == "finished"
    assert deadline_activity(sent[2].message)["detail"]["status"] == "completed"


def test_a_meeting_held_without_being_scheduled_first_takes_the_planned_encounter():
    sent = send([example("referral-received"), example("meeting-held")])
    (held,) = resources(sent[1].message, "Encounter")
    assert (held["id"], held["status"], held["identifier"][0]["value"]) == (FIRST_MEETING, "finished", "MTG-1")


def test_closing_the_referral_cancels_the_meetings_still_planned():
    withdrawn = for_referral(example("referral-withdrawn"), MAIN_REFERRAL, "withdrawn-main")
    sent = send([example("referral-received"), scheduled("MTG-1", "2026-03-29T14:40:00Z"),
                 scheduled("MTG-2", "2026-03-30T14:40:00Z"), withdrawn])
    message = sent[-1].message
    cancelled = {e["identifier"][0]["value"]: e for e in resources(message, "Encounter")}
    assert {k: (e["id"], e["status"]) for k, e in cancelled.items()} == {
        "MTG-1": (FIRST_MEETING, "cancelled"),
        "MTG-2": (stable_id("encounter", MAIN_REFERRAL, "MTG-2"), "cancelled"),
    }
    assert [a["status"] for a in activities(message, "network-meeting")] == ["cancelled", "cancelled"]
    focus = [resolve(message, f)["resourceType"] for f in message["entry"][0]["resource"]["focus"]]
    assert focus == ["ServiceRequest", "CarePlan", "Encounter", "Encounter"]


@pytest.mark.parametrize("location, code, display", [
    ("home", "HH", "home health"),
    ("clinic", "AMB", "ambulatory"),
    ("community", "FLD", "field"),
    ("virtual", "VR", "virtual"),
    ("inpatient_ward", "IMP", "inpatient encounter"),
])
def test_the_meeting_location_gives_the_encounter_class(location: str, code: str, display: str):
    sent = send([example("referral-received"), scheduled("MTG-1", "2026-03-29T14:40:00Z", location)])
    (meeting,) = resources(sent[1].message, "Encounter")
    assert meeting["class"] == {"system": V3_ACT, "code": code, "display": display}


def test_a_first_meeting_after_the_due_time_is_met_after_the_deadline():
    message = by_label("late:meeting-held")
    assert deadline_activity(message)["outcomeCodeableConcept"][0]["coding"][0]["code"] == "met-after-deadline"


def test_a_meeting_cancelled_before_it_was_scheduled_has_no_known_setting():
    message = by_label("meeting-cancelled")
    # A later meeting is an Encounter of its own; the first one, held, is not sent again.
    (meeting,) = resources(message, "Encounter")
    assert meeting["id"] == stable_id("encounter", MAIN_REFERRAL, "MTG-3")
    assert meeting["identifier"] == [{"system": MEETING_ID, "value": "MTG-3"}]
    assert meeting["status"] == "cancelled"
    assert meeting["class"]["code"] == "UNK" and "location" not in meeting
    assert meeting["extension"] == [{
        "url": LOCAL + "/StructureDefinition/Extension-POD-CancellationReason",
        "valueCoding": {"system": LOCAL + "/CodeSystem/pod-cancellation-reason", "code": "service_user_request",
                        "display": "Cancelled at the service user's request"},
    }]
    assert [a["status"] for a in activities(message, "network-meeting")] == ["completed", "cancelled"]


def test_a_swemwbs_measure_is_an_observation_of_its_raw_total():
    message = by_label("measure-recorded")
    assert kinds(message) == ["MessageHeader", "Observation", "Patient", "ServiceRequest"]
    observation = one(message, "Observation")
    assert observation["code"]["coding"] == [{"system": SNOMED, "code": "718466001"}]
    assert (observation["status"], observation["valueInteger"]) == ("final", 17)
    assert observation["effectiveDateTime"] == "2026-03-29T16:40:00Z"
    assert [c["valueInteger"] for c in observation["component"]] == [2, 3, 2, 3, 2, 2, 3]
    assert observation["extension"][0]["valueCoding"]["code"] == "baseline"
    assert resolve(message, observation["performer"][0])["resourceType"] == "Patient"
    assert resolve(message, observation["basedOn"][0])["resourceType"] == "ServiceRequest"


def test_honos_items_carry_their_snomed_scale_codes():
    observation = one(by_label("honos:measure-recorded"), "Observation")
    assert observation["code"]["coding"][0]["code"] == "honos-total"
    assert observation["valueInteger"] == 19
    codes = [c["code"]["coding"][0] for c in observation["component"]]
    assert all(c["system"] == SNOMED for c in codes)
    assert (codes[0]["code"], codes[-1]["code"]) == ("979641000000103", "979751000000109")
    assert "performer" not in observation  # a clinician, whose staff id the event does not give


def test_a_carer_rated_measure_is_performed_by_the_carer():
    message = by_label("cws:measure-recorded")
    observation = one(message, "Observation")
    carer = resolve(message, observation["performer"][0])
    assert carer["resourceType"] == "RelatedPerson" and carer["relationship"][0]["coding"][0]["code"] == "PRN"


def test_cmhs_is_the_mean_of_its_items():
    observation = one(by_label("cmhs:measure-recorded"), "Observation")
    assert observation["code"]["coding"][0]["code"] == "cmhs-mean"
    assert observation["valueQuantity"] == {"value": 7.67}


def test_coded_reasons_and_medicines_keep_their_codes():
    request = one(by_label("early:referral-received"), "ServiceRequest")
    assert request["reasonCode"] == [{"coding": [{"system": SNOMED, "code": "1234567890"}], "text": "Crisis"}]
    assert "requester" not in request
    (medication,) = activities(by_label("early:medication-prescribed"), "medication")
    assert medication["productCodeableConcept"] == {
        "coding": [{"system": "https://dmd.nhs.uk", "code": "9876543210"}], "text": "Test medicine"}


def test_a_risk_assessment_is_an_observation_by_the_assessor():
    message = by_label("risk-assessed")
    observation = one(message, "Observation")
    assert observation["code"]["coding"] == [{"system": SNOMED, "code": "225338004", "display": "Risk assessment"}]
    assert observation["valueCodeableConcept"]["coding"][0]["code"] == "medium"
    assessor = resolve(message, observation["performer"][0])
    assert assessor["identifier"][0]["value"] == "STF-0007"
    assert observation["performer"][0]["display"] == "Alex Nurse"


def test_the_care_coordinator_authors_the_plan():
    message = by_label("cpa-coordinator-assigned")
    plan = one(message, "CarePlan")
    assert plan["author"]["display"] == "Alex Nurse"
    assert resolve(message, plan["author"])["identifier"][0]["value"] == "STF-0007"


def test_care_events_are_activities_of_the_plan():
    (contact,) = activities(by_label("contact-made"), "first-contact")
    assert contact["status"] == "completed" and contact["scheduledPeriod"]["start"] == "2026-03-29T01:10:00Z"
    (medication,) = activities(by_label("medication-prescribed"), "medication")
    assert (medication["kind"], medication["status"]) == ("MedicationRequest", "in-progress")
    assert medication["productCodeableConcept"] == {"text": "Sertraline 50mg tablets"}
    (admitted,) = activities(by_label("admission-started"), "inpatient-admission")
    assert admitted["status"] == "in-progress" and admitted["description"] == "Acute ward"
    (ended,) = activities(by_label("admission-ended"), "inpatient-admission")
    assert ended["status"] == "completed" and ended["scheduledPeriod"]["end"] == "2026-04-20T23:40:00Z"
    reviews = activities(by_label("cpa-review-held"), "cpa-review")
    assert [(r["status"], r["scheduledPeriod"]["start"]) for r in reviews] == [
        ("completed", "2026-09-24T23:40:00Z"), ("scheduled", "2027-09-24T23:40:00Z")]


def test_discharge_completes_the_request_and_the_plan():
    message = by_label("episode-discharged")
    assert one(message, "ServiceRequest")["status"] == "completed"
    plan = one(message, "CarePlan")
    assert plan["status"] == "completed" and plan["period"]["end"] == "2026-10-04T23:40:00Z"
    assert deadline_activity(message)["detail"]["status"] == "completed"
    # No meeting was left planned: discharge changes no Encounter, so it sends none.
    assert resources(message, "Encounter") == []


def test_discharge_before_any_meeting_stops_the_deadline_and_cancels_the_first_meeting():
    message = by_label("early:episode-discharged")
    assert deadline_activity(message)["detail"]["status"] == "stopped"
    assert encounter_of_type(message, "first-network-meeting")["status"] == "cancelled"


# --- ids --------------------------------------------------------------------------------


def test_ids_differ_between_referrals_but_the_patient_is_one_person():
    main = by_label("referral-received")
    withdrawn = by_label("REF-2026-000125:referral-received")  # same NHS number
    rejected = by_label("REF-2026-000124:referral-received")  # another NHS number
    for kind in ("ServiceRequest", "CarePlan", "Encounter"):
        assert len({one(m, kind)["id"] for m in (main, withdrawn, rejected)}) == 3
    assert one(main, "Patient")["id"] == one(withdrawn, "Patient")["id"] != one(rejected, "Patient")["id"]
    assert len({m["id"] for m in (main, withdrawn, rejected)}) == 3


def test_a_measure_sent_again_updates_the_same_observation():
    measure = example("measure-recorded")
    again = for_referral(measure, MAIN_REFERRAL, "measure-again", recordedAt="2026-03-29T17:40:00+01:00")
    first, second = send([example("referral-received"), measure, again])[1:]
    assert one(first.message, "Observation")["id"] == one(second.message, "Observation")["id"]
    assert first.message["id"] != second.message["id"]


def test_a_replayed_journey_gives_the_same_messages():
    raws = [json.loads(p.read_text()) for p in sorted(EXAMPLES.glob("*.json"))]
    main = sorted((r for r in raws if r["subject"] == MAIN_REFERRAL), key=lambda r: r["time"])
    assert [s.message for s in send(main)] == [s.message for s in journey()]


def test_messages_do_not_depend_on_the_process_or_its_hash_seed():
    script = (
        "import json; from tests.unit.fhir_mappings.test_messages import every_message; "
        "print(json.dumps([s.message for s in every_message()], sort_keys=True))"
    )
    here = json.dumps([s.message for s in every_message()], sort_keys=True)
    env = {**os.environ, "PYTHONHASHSEED": "12345"}
    result = subprocess.run([sys.executable, "-c", script], cwd=REPO, env=env,
                            capture_output=True, text=True, timeout=120, check=True)
    assert result.stdout.strip() == here


def test_the_plan_does_not_depend_on_the_order_events_arrived_in():
    received = example("referral-received")
    first = for_referral(example("medication-prescribed"), MAIN_REFERRAL, "rx-1")
    second = for_referral(example("medication-prescribed"), MAIN_REFERRAL, "rx-2",
                          prescribedAt="2026-04-01T10:00:00Z", medication={"display": "Zopiclone 3.75mg tablets"})
    one_way = send([received, first, second])[-1]
    other_way = send([received, second, first])[-1]
    assert one(one_way.message, "CarePlan") == one(other_way.message, "CarePlan")


# --- the trust's namespace ----------------------------------------------------------------

TRUST = "https://fhir.trust.example/podlink"


def test_local_code_systems_extensions_and_identifiers_live_under_the_trusts_base_url():
    main = [e for e in (json.loads(p.read_text()) for p in sorted(EXAMPLES.glob("*.json")))
            if e["subject"] == MAIN_REFERRAL]
    default = [s.message for s in send(sorted(main, key=lambda r: r["time"]))]
    trust = [s.message for s in send(sorted(main, key=lambda r: r["time"]), base_url=TRUST + "/")]
    text = json.dumps(trust)
    assert LOCAL not in text and "podlink.nhs.uk" not in text
    # Only the URIs of our own terms move: the same messages with the base swapped back.
    assert json.loads(text.replace(TRUST + "/", LOCAL + "/")) == default
    held = next(m for m in trust if m["entry"][0]["resource"]["eventCoding"]["code"] == "meeting-held")
    (encounter,) = resources(held, "Encounter")
    assert encounter["identifier"][0]["system"] == TRUST + "/Id/meeting-id"
    assert encounter["extension"][0]["url"] == TRUST + "/StructureDefinition/Extension-POD-ServiceUserAttended"
    assert held["entry"][0]["resource"]["eventCoding"]["system"] == TRUST + "/CodeSystem/podlink-message-events"


@pytest.mark.parametrize("base_url", ["fhir.trust.example", "ftp://fhir.trust.example", "https://x/?a=1", ""])
def test_a_base_url_that_is_not_an_http_url_is_refused(base_url: str):
    with pytest.raises(ValueError, match="base URL"):
        send([example("referral-received")], base_url=base_url)


# --- failures ---------------------------------------------------------------------------


def test_an_episode_without_its_referral_has_nothing_to_send():
    event = parse_event(example("contact-made"))
    with pytest.raises(MappingError, match="no referral"):
        build_message(event, Episode(referral_id=MAIN_REFERRAL), None)


def test_an_invalid_result_is_refused_without_patient_data_in_the_error():
    received = example("referral-received")
    received["data"]["patient"]["name"]["family"] = ""
    with pytest.raises(MappingError) as caught:
        send([received])
    text = str(caught.value)
    assert "family" in text
    for value in ("9995260182", "Jordan", "1990-05-17", "CT1 1AA", "Chris"):
        assert value not in text
    # Nothing that shows input values hangs off our error either.
    assert caught.value.__cause__ is None and caught.value.__context__ is None
