import json

from podlink.services.deliver.bars import (
    MAX_OUTCOME_BYTES, Sender, correlation_id, operation_outcome, request_headers, response_code,
)


def _response(code):
    return json.dumps({"resourceType": "Bundle", "type": "message", "entry": [
        {"resource": {"resourceType": "MessageHeader", "response": {"identifier": "b-1", "code": code}}}]}).encode()


def test_request_headers_are_bars_headers():
    headers = request_headers("bundle-1", "REF-1", Sender("tgt", "RX1", "podlink/9"), "s3cret")
    assert headers == {
        "Content-Type": "application/fhir+json",
        "Accept": "application/fhir+json",
        "X-Request-Id": "bundle-1",
        "X-Correlation-Id": correlation_id("REF-1"),
        "NHSD-Requesting-Software": "podlink/9",
        "NHSD-Target-Identifier": "tgt",
        "NHSD-End-User-Organisation-ODS": "RX1",
        "Authorization": "Bearer s3cret",
    }


def test_optional_headers_are_left_out_when_not_configured():
    headers = request_headers("bundle-1", "REF-1", Sender(), None)
    assert "Authorization" not in headers and "NHSD-Target-Identifier" not in headers
    assert "NHSD-End-User-Organisation-ODS" not in headers


def test_correlation_id_is_stable_per_referral_and_differs_between_referrals():
    assert correlation_id("REF-1") == correlation_id("REF-1")
    assert correlation_id("REF-1") != correlation_id("REF-2")
    assert "REF-1" not in correlation_id("REF-1")


def test_response_code_read_from_the_message_header():
    assert response_code(_response("ok")) == "ok"
    assert response_code(_response("transient-error")) == "transient-error"
    assert response_code(_response("fatal-error")) == "fatal-error"
    assert response_code(_response("maybe")) is None
    assert response_code(b"not json") is None
    assert response_code(b'{"resourceType": "OperationOutcome"}') is None
    assert response_code(b'{"resourceType": "Bundle", "entry": []}') is None


def test_operation_outcome_alone_or_inside_a_bundle():
    outcome = {"resourceType": "OperationOutcome", "issue": [{"severity": "error", "code": "invalid"}]}
    assert json.loads(operation_outcome(json.dumps(outcome).encode())) == outcome
    bundle = {"resourceType": "Bundle", "entry": [{"resource": {"resourceType": "MessageHeader"}},
                                                   {"resource": outcome}]}
    assert json.loads(operation_outcome(json.dumps(bundle).encode())) == outcome
    assert operation_outcome(b"<html>bad gateway</html>") is None


def test_operation_outcome_is_cut_to_a_bounded_header():
    huge = {"resourceType": "OperationOutcome", "issue": [{"diagnostics": "x" * 100_000}]}
    assert len(operation_outcome(json.dumps(huge).encode())) == MAX_OUTCOME_BYTES
