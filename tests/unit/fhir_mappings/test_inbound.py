"""The EPR's message Bundles back into contract events: podlink's own shapes (the journey's
golden messages, sent back) and the plainer resources an EPR has (Appointment, RiskAssessment,
QuestionnaireResponse, EpisodeOfCare), with every refusal naming an element and no value."""
from __future__ import annotations

import copy
import json
from datetime import datetime, timezone
from pathlib import Path

import pytest

from podlink.fhir_mappings.inbound import Refused, Systems, Translated, translate
from podlink.fhir_mappings.systems import DEFAULT_BASE_URL, namespace
from podlink.streams.core.contract import Accepted, read_record
from podlink.streams.core.encoding import json_bytes

JOURNEY = json.loads((Path(__file__).resolve().parents[2] / "golden" / "bundles-examples-journey.json").read_text())
SOURCE = "urn:podlink:intake:epr-main"
NOW = datetime(2026, 4, 1, 12, 0, tzinfo=timezone.utc)
REF = "REF-2026-000123"
MEETING_SYSTEM = "https://trust.example.nhs.uk/Id/meeting-id"


def golden(code: str) -> dict:
    """podlink's own message for `code` in the examples' journey, as the EPR would send it back."""
    return copy.deepcopy(next(b for b in JOURNEY if b["entry"][0]["resource"]["eventCoding"]["code"] == code))


def focus(bundle: dict) -> dict:
    ref = bundle["entry"][0]["resource"]["focus"][0]["reference"]
    return next(e["resource"] for e in bundle["entry"] if e["fullUrl"] == ref)


def accepted(bundle: dict) -> dict:
    result = translate(bundle, SOURCE, NOW)
    assert isinstance(result, Translated), result
    # Exactly the check the stream processor makes of every input record.
    assert isinstance(read_record(result.referral_id.encode(), json_bytes(result.event)), Accepted)
    return result.event


def refused(bundle: object) -> Refused:
    result = translate(bundle, SOURCE, NOW)
    assert isinstance(result, Refused), result
    return result


def test_meeting_held_from_podlinks_own_message():
    bundle = golden("meeting-held")
    event = accepted(bundle)
    assert {k: event[k] for k in ("id", "source", "type", "subject", "time")} == {
        "id": bundle["id"], "source": SOURCE, "type": "uk.nhs.pod.meeting.held", "subject": REF,
        "time": bundle["timestamp"]}
    assert event["data"] == {
        # MTG-1: the meetingId of the contract example the message was made from.
        "referralId": REF, "meetingId": "MTG-1",
        "start": "2026-03-29T14:40:00Z", "end": "2026-03-29T16:10:00Z", "location": "home",
        "attendees": [
            {"kind": "service_user"},
            {"kind": "network_member", "personId": "81dd0410-c156-50d8-aeb6-0fe81a82bd95",
             "relationship": "spouse_or_partner"},
            {"kind": "staff", "staffId": "STF-0042", "role": "peer_support_worker"},
            {"kind": "staff", "staffId": "STF-0007", "role": "nurse"},
        ]}


def test_service_user_absent_when_the_extension_says_false():
    bundle = golden("meeting-held")
    focus(bundle)["extension"][0]["valueBoolean"] = False
    kinds = [a["kind"] for a in accepted(bundle)["data"]["attendees"]]
    assert kinds == ["network_member", "staff", "staff"]


@pytest.mark.parametrize("code,location", [("HH", "home"), ("AMB", "clinic"), ("FLD", "community"),
                                           ("VR", "virtual"), ("IMP", "inpatient_ward")])
def test_location_from_the_class_when_no_podlink_location(code, location):
    bundle = golden("meeting-held")
    del focus(bundle)["location"]
    focus(bundle)["class"]["code"] = code
    assert accepted(bundle)["data"]["location"] == location


def test_a_meeting_with_no_setting_is_400():
    bundle = golden("meeting-held")
    del focus(bundle)["location"]
    focus(bundle)["class"] = {"system": "http://terminology.hl7.org/CodeSystem/v3-NullFlavor", "code": "UNK"}
    assert (refused(bundle).status, refused(bundle).element) == (400, "Encounter.class")


def test_meeting_scheduled_from_an_encounter_and_from_an_appointment():
    assert accepted(golden("meeting-scheduled"))["data"] == {
        "referralId": REF, "meetingId": "MTG-1", "scheduledStart": "2026-03-29T14:40:00Z", "location": "home"}
    bundle = golden("meeting-scheduled")
    encounter = focus(bundle)
    appointment = {"resourceType": "Appointment", "id": encounter["id"], "status": "booked",
                   "identifier": [{"system": MEETING_SYSTEM, "value": "APT-1"}],
                   "appointmentType": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "AMB"}]},
                   "start": "2026-03-30T10:00:00Z", "end": "2026-03-30T11:00:00Z",
                   "basedOn": encounter["basedOn"], "participant": [{"status": "accepted", "actor": encounter["subject"]}]}
    entry = next(e for e in bundle["entry"] if e["resource"] is encounter)
    entry["resource"] = appointment
    assert accepted(bundle)["data"] == {
        "referralId": REF, "meetingId": "APT-1", "scheduledStart": "2026-03-30T10:00:00Z", "location": "clinic"}


def test_meeting_cancelled_with_its_reason():
    bundle = golden("meeting-cancelled")
    assert accepted(bundle)["data"] == {
        "referralId": REF, "meetingId": "MTG-3", "cancelledAt": bundle["timestamp"],
        "reason": "service_user_request"}


def test_risk_assessed_from_the_observation_and_from_a_risk_assessment():
    bundle = golden("risk-assessed")
    assert accepted(bundle)["data"] == {
        "referralId": REF, "assessedAt": "2026-03-29T16:20:00Z", "level": "medium",
        "assessor": {"staffId": "STF-0007", "role": "other"}}
    observation = focus(bundle)
    entry = next(e for e in bundle["entry"] if e["resource"] is observation)
    entry["resource"] = {
        "resourceType": "RiskAssessment", "id": observation["id"], "status": "final",
        "subject": observation["subject"], "basedOn": observation["basedOn"][0],
        "occurrenceDateTime": "2026-03-30T09:00:00Z", "performer": observation["performer"][0],
        "prediction": [{"qualitativeRisk": {"coding": [
            {"system": "http://terminology.hl7.org/CodeSystem/risk-probability", "code": "high"}]}}]}
    assert accepted(bundle)["data"]["level"] == "high"
    assert accepted(bundle)["data"]["assessedAt"] == "2026-03-30T09:00:00Z"


def test_measure_recorded_from_the_observation_and_from_a_questionnaire_response():
    bundle = golden("measure-recorded")
    assert accepted(bundle)["data"] == {
        "referralId": REF, "recordedAt": "2026-03-29T16:40:00Z", "instrument": "SWEMWBS",
        "timepoint": "baseline", "items": [2, 3, 2, 3, 2, 2, 3], "respondent": "service_user"}
    observation = focus(bundle)
    entry = next(e for e in bundle["entry"] if e["resource"] is observation)
    entry["resource"] = {
        "resourceType": "QuestionnaireResponse", "id": observation["id"], "status": "completed",
        "questionnaire": "https://trust.example.nhs.uk/Questionnaire/WSAS",
        "extension": observation["extension"], "basedOn": observation["basedOn"],
        "subject": observation["subject"], "authored": "2026-04-01T10:00:00Z", "author": observation["subject"],
        "item": [{"linkId": str(n), "answer": [{"valueInteger": score}]} for n, score in enumerate([1, 0, 8, 2, 3], 1)]}
    assert accepted(bundle)["data"] == {
        "referralId": REF, "recordedAt": "2026-04-01T10:00:00Z", "instrument": "WSAS",
        "timepoint": "baseline", "items": [1, 0, 8, 2, 3], "respondent": "service_user"}


def test_a_score_out_of_range_is_for_the_contract_to_refuse():
    bundle = golden("measure-recorded")
    focus(bundle)["component"][0]["valueInteger"] = 9  # SWEMWBS items are 1 to 5
    result = translate(bundle, SOURCE, NOW)
    assert isinstance(result, Translated)
    rejection = read_record(result.referral_id.encode(), json_bytes(result.event))
    assert not isinstance(rejection, Accepted) and "data.items" in rejection.reason


def test_discharge_from_the_care_plan_an_episode_of_care_and_an_encounter():
    bundle = golden("episode-discharged")
    assert accepted(bundle)["data"] == {"referralId": REF, "dischargedAt": "2026-10-04T23:40:00Z",
                                        "sharedDecision": False}
    plan = focus(bundle)
    plan["extension"] = [{"url": "https://trust.example.nhs.uk/fhir/StructureDefinition/Extension-POD-SharedDecision",
                          "valueBoolean": True}]
    assert accepted(bundle)["data"]["sharedDecision"] is True
    entry = next(e for e in bundle["entry"] if e["resource"] is plan)
    service_request = next(e["fullUrl"] for e in bundle["entry"] if e["resource"]["resourceType"] == "ServiceRequest")
    entry["resource"] = {"resourceType": "EpisodeOfCare", "id": plan["id"], "status": "finished",
                         "patient": plan["subject"], "referralRequest": [{"reference": service_request}],
                         "period": {"start": "2026-03-28T23:40:00Z", "end": "2026-10-05T09:00:00Z"}}
    assert accepted(bundle)["data"]["dischargedAt"] == "2026-10-05T09:00:00Z"
    entry["resource"] = {"resourceType": "Encounter", "id": plan["id"], "status": "finished",
                         "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "IMP"},
                         "subject": plan["subject"], "basedOn": [{"reference": service_request}],
                         "period": {"start": "2026-09-01T10:00:00Z", "end": "2026-10-06T12:00:00Z"},
                         "hospitalization": {"dischargeDisposition": {"text": "home"}}}
    assert accepted(bundle)["data"]["dischargedAt"] == "2026-10-06T12:00:00Z"
    del entry["resource"]["hospitalization"]
    assert refused(bundle).element == "Encounter.hospitalization.dischargeDisposition"


def test_the_referral_by_a_logical_reference_and_under_the_trusts_own_system():
    bundle = golden("risk-assessed")
    focus(bundle)["basedOn"] = [{"identifier": {"system": namespace(DEFAULT_BASE_URL).referral_id, "value": "REF-LOGICAL-1"}}]
    assert accepted(bundle)["subject"] == "REF-LOGICAL-1"
    trust = Systems.of("https://trust.example.nhs.uk/fhir")
    result = translate(golden("risk-assessed"), SOURCE, NOW, trust)
    assert isinstance(result, Refused) and result.element == "Observation.basedOn"


def test_time_falls_back_to_receipt_without_a_bundle_timestamp():
    bundle = golden("risk-assessed")
    del bundle["timestamp"]
    assert accepted(bundle)["time"] == "2026-04-01T12:00:00Z"


@pytest.mark.parametrize("code", ["servicerequest-request", "contact-made", "medication-prescribed", "nonsense"])
def test_message_events_podlink_does_not_apply_are_422(code):
    bundle = golden("meeting-held")
    bundle["entry"][0]["resource"]["eventCoding"]["code"] = code
    assert refused(bundle).status == 422


def test_the_event_code_must_be_podlinks():
    bundle = golden("meeting-held")
    bundle["entry"][0]["resource"]["eventCoding"]["system"] = "https://fhir.nhs.uk/CodeSystem/message-events-bars"
    assert refused(bundle).status == 422


def test_wrong_focus_type_and_status_are_422():
    bundle = golden("meeting-held")
    bundle["entry"][0]["resource"]["eventCoding"]["code"] = "risk-assessed"
    assert (refused(bundle).status, refused(bundle).element) == (422, "MessageHeader.focus")
    bundle = golden("meeting-held")
    focus(bundle)["status"] = "in-progress"
    assert (refused(bundle).status, refused(bundle).element) == (422, "Encounter.status")


@pytest.mark.parametrize("change,element", [
    (lambda b: b.update(type="collection"), "Bundle.type"),
    (lambda b: b.pop("id"), "Bundle.id"),
    (lambda b: b["entry"].insert(0, b["entry"].pop(1)), "Bundle.entry[0]"),
    (lambda b: b["entry"][0]["resource"].update(focus=[{"reference": "urn:uuid:nowhere"}]), "MessageHeader.focus"),
    (lambda b: focus(b).pop("identifier"), "Encounter.identifier"),
    (lambda b: focus(b)["period"].pop("end"), "Encounter.period.end"),
    (lambda b: focus(b).pop("basedOn"), "Encounter.basedOn"),
    (lambda b: focus(b)["participant"][1]["individual"].update(reference="urn:uuid:gone"),
     "Encounter.participant[1].individual"),
])
def test_unreadable_messages_are_400_naming_the_element(change, element):
    bundle = golden("meeting-held")
    change(bundle)
    assert (refused(bundle).status, refused(bundle).element) == (400, element)


def test_invalid_fhir_names_the_element_and_never_the_value():
    bundle = golden("meeting-held")
    focus(bundle)["period"] = "9990000018"
    result = refused(bundle)
    assert result.status == 400 and result.element == "Bundle.entry[1].resource.period"
    assert "9990000018" not in result.problem + result.element


@pytest.mark.parametrize("body", [[], "text", {"resourceType": "Patient"}, {"resourceType": "Bundle", "entry": [{"resource": {"resourceType": "NotAThing"}}]}])
def test_not_a_bundle_is_400(body):
    assert refused(body).status == 400


def test_relationships_and_roles_podlink_cannot_place_become_other():
    bundle = golden("meeting-held")
    person = next(e["resource"] for e in bundle["entry"] if e["resource"]["resourceType"] == "RelatedPerson")
    person["relationship"] = [{"coding": [{"system": "http://example.org/local", "code": "GODPARENT"}]}]
    focus(bundle)["participant"][1]["type"] = [{"coding": [{"system": "http://example.org/local", "code": "CHAPLAIN"}]}]
    attendees = accepted(bundle)["data"]["attendees"]
    assert attendees[1]["relationship"] == "other" and attendees[2]["role"] == "other"


@pytest.mark.parametrize("code,level", [("negligible", "low"), ("low", "low"), ("moderate", "medium"),
                                        ("high", "high"), ("certain", "high")])
def test_risk_probability_codes_map_to_contract_levels(code, level):
    bundle = golden("risk-assessed")
    focus(bundle)["valueCodeableConcept"] = {"coding": [{"code": code}]}
    assert accepted(bundle)["data"]["level"] == level


def test_an_unknown_element_is_placed_but_not_named():
    bundle = golden("meeting-held")
    focus(bundle)["SmithJohn"] = "9990000018"
    result = refused(bundle)
    assert (result.status, result.element) == (400, "Bundle.entry[1].resource")
    assert "SmithJohn" not in result.problem + result.element


def test_the_meeting_id_is_the_one_under_the_trusts_meeting_id_system():
    bundle = golden("meeting-held")
    focus(bundle)["identifier"].insert(0, {"system": "https://epr.example.nhs.uk/Id/appointment", "value": "APT-99"})
    assert accepted(bundle)["data"]["meetingId"] == "MTG-1"
    focus(bundle)["identifier"].pop(1)  # only the EPR's own id left: that is the meeting's id then
    assert accepted(bundle)["data"]["meetingId"] == "APT-99"
