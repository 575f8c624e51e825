from datetime import datetime, timezone

from podlink.services.intake.answers import (
    CONFLICT, bad_request, operation_outcome, response_message, unprocessable,
)

AT = datetime(2026, 5, 1, 9, 30, tzinfo=timezone.utc)
CODING = {"system": "https://podlink.nhs.uk/fhir/CodeSystem/podlink-message-events", "code": "meeting-held"}


def test_response_message_answers_the_request_bundle():
    response = response_message("req-bundle-1", CODING, AT)
    header = response["entry"][0]["resource"]
    assert response["type"] == "message" and response["timestamp"] == "2026-05-01T09:30:00Z"
    assert header["resourceType"] == "MessageHeader"
    assert header["response"] == {"identifier": "req-bundle-1", "code": "ok"}
    assert header["eventCoding"] == CODING
    assert response["entry"][0]["fullUrl"] == f"urn:uuid:{header['id']}"


def test_a_repeated_request_gets_the_same_response_ids():
    assert response_message("b", CODING, AT)["id"] == response_message("b", CODING, datetime.now(timezone.utc))["id"]
    assert response_message("b", CODING, AT)["id"] != response_message("c", CODING, AT)["id"]


def test_operation_outcomes_carry_the_bars_code_and_element():
    assert operation_outcome(bad_request("Encounter.identifier", "is required")) == {
        "resourceType": "OperationOutcome", "issue": [{
            "severity": "error", "code": "invalid",
            "details": {"coding": [{"system": "https://fhir.nhs.uk/CodeSystem/http-error-codes", "code": "REC_BAD_REQUEST"}]},
            "diagnostics": "Encounter.identifier is required", "expression": ["Encounter.identifier"]}]}
    assert unprocessable("event", "x").status == 422
    conflict = operation_outcome(CONFLICT)["issue"][0]
    assert CONFLICT.status == 409 and conflict["details"]["coding"][0]["code"] == "REC_CONFLICT"
    assert "expression" not in conflict
