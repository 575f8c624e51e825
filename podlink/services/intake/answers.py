"""BaRS answers: a response message for an accepted request, an OperationOutcome otherwise.

Diagnostics name elements and rules, never values: the request can hold an NHS number or a name.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from podlink.streams.core.encoding import utc_text
from podlink.streams.core.ids import stable_id

Json = dict[str, Any]
HTTP_ERROR_CODES = "https://fhir.nhs.uk/CodeSystem/http-error-codes"


@dataclass(frozen=True)
class Refusal:
    status: int
    code: str  # BaRS error code (DOMAIN.md section 3), or the closest HTTP name
    issue_type: str  # FHIR IssueType
    diagnostics: str
    element: str | None = None


def bad_request(element: str, problem: str) -> Refusal:
    return Refusal(400, "REC_BAD_REQUEST", "invalid", f"{element} {problem}", element)


def unprocessable(element: str, problem: str) -> Refusal:
    return Refusal(422, "REC_UNPROCESSABLE_ENTITY", "processing", f"{element}: {problem}", element)


CONFLICT = Refusal(409, "REC_CONFLICT", "duplicate",
                   "X-Request-Id was already used for a different message; send a new X-Request-Id")
UNAUTHORISED = Refusal(401, "ACCESS_DENIED", "security", "a valid bearer token or client certificate is required")
UNSUPPORTED_MEDIA = Refusal(415, "UNSUPPORTED_MEDIA_TYPE", "not-supported",
                            "Content-Type must be application/fhir+json")
UNAVAILABLE = Refusal(503, "SERVICE_UNAVAILABLE", "transient",
                      "podlink cannot publish to Kafka at the moment; send the same request again later")
NOT_FOUND = Refusal(404, "NOT_FOUND", "not-found", "podlink publishes no definition with this type and id")
MISSING_REQUEST_ID = Refusal(400, "REC_BAD_REQUEST", "required", "the X-Request-Id header is required: "
                             "1 to 128 letters, digits, '.', '_', ':' or '-' (a UUID)", "X-Request-Id")


def too_large(limit: int) -> Refusal:
    return Refusal(413, "PAYLOAD_TOO_LARGE", "too-long", f"the body is over the {limit} bytes accepted")


def operation_outcome(refusal: Refusal) -> Json:
    issue: Json = {
        "severity": "error",
        "code": refusal.issue_type,
        "details": {"coding": [{"system": HTTP_ERROR_CODES, "code": refusal.code}]},
        "diagnostics": refusal.diagnostics,
    }
    if refusal.element:
        issue["expression"] = [refusal.element]
    return {"resourceType": "OperationOutcome", "issue": [issue]}


def response_message(request_bundle_id: str, event_coding: Json, at: datetime) -> Json:
    """The BaRS response: `response.identifier` the request Bundle's id, `code` ok. Its ids
    follow from the request's, so a repeated request gets the same response."""
    header_id = stable_id("intake-response-header", request_bundle_id)
    return {
        "resourceType": "Bundle",
        "id": stable_id("intake-response", request_bundle_id),
        "type": "message",
        "timestamp": utc_text(at),
        "entry": [{
            "fullUrl": f"urn:uuid:{header_id}",
            "resource": {
                "resourceType": "MessageHeader",
                "id": header_id,
                "eventCoding": event_coding,
                "source": {"name": "podlink", "endpoint": "urn:podlink:intake"},
                "response": {"identifier": request_bundle_id, "code": "ok"},
            },
        }],
    }
