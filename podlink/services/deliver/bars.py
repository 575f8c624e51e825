"""The BaRS parts of a delivery: the request's headers and what the EPR's answer says.

Pure functions: the HTTP client (sender.py) and the tests both go through them.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from importlib.metadata import version
from typing import Any

from podlink.services.deliver.policy import ResponseCode
from podlink.streams.core.ids import stable_id

FHIR_JSON = "application/fhir+json"
RESPONSE_CODES: frozenset[str] = frozenset({"ok", "transient-error", "fatal-error"})
# A dead letter keeps the EPR's OperationOutcome in a header; a misbehaving EPR must not make
# that header unbounded.
MAX_OUTCOME_BYTES = 8192


@dataclass(frozen=True)
class Sender:
    """Who is sending, for the headers BaRS asks of a requester (deployment settings)."""

    target_identifier: str | None = None  # NHSD-Target-Identifier: the EPR's service
    organisation_ods: str | None = None  # NHSD-End-User-Organisation-ODS: the trust
    software: str = f"podlink/{version('podlink')}"  # NHSD-Requesting-Software


def correlation_id(referral_id: str) -> str:
    """X-Correlation-Id: one per referral, so the EPR can follow every message of a referral."""
    return stable_id("epr-correlation", referral_id)


def request_headers(bundle_id: str, referral_id: str, sender: Sender, token: str | None) -> dict[str, str]:
    """The headers of a `$process-message` POST. X-Request-Id is the Bundle id: the same for
    every retry and redrive of one message, so the EPR recognises a repeat."""
    headers = {
        "Content-Type": FHIR_JSON,
        "Accept": FHIR_JSON,
        "X-Request-Id": bundle_id,
        "X-Correlation-Id": correlation_id(referral_id),
        "NHSD-Requesting-Software": sender.software,
    }
    if sender.target_identifier:
        headers["NHSD-Target-Identifier"] = sender.target_identifier
    if sender.organisation_ods:
        headers["NHSD-End-User-Organisation-ODS"] = sender.organisation_ods
    if token:
        headers["Authorization"] = f"Bearer {token}"
    return headers


def response_code(body: bytes) -> ResponseCode | None:
    """`MessageHeader.response.code` of a BaRS response Bundle; None when the body is not one."""
    parsed = _json(body)
    if not isinstance(parsed, dict) or parsed.get("resourceType") != "Bundle":
        return None
    entries = parsed.get("entry")
    if not isinstance(entries, list) or not entries or not isinstance(entries[0], dict):
        return None
    header = entries[0].get("resource")
    if not isinstance(header, dict) or header.get("resourceType") != "MessageHeader":
        return None
    response = header.get("response")
    code = response.get("code") if isinstance(response, dict) else None
    return code if code in RESPONSE_CODES else None  # type: ignore[return-value]


def operation_outcome(body: bytes) -> bytes | None:
    """The EPR's OperationOutcome (alone, or the first one in a response Bundle), compact and
    cut to MAX_OUTCOME_BYTES, for the dead letter's headers."""
    parsed = _json(body)
    found = _find_outcome(parsed)
    if found is None:
        return None
    text = json.dumps(found, separators=(",", ":"), ensure_ascii=False).encode()
    return text[:MAX_OUTCOME_BYTES]


def _find_outcome(parsed: Any) -> dict[str, Any] | None:
    if not isinstance(parsed, dict):
        return None
    if parsed.get("resourceType") == "OperationOutcome":
        return parsed
    if parsed.get("resourceType") == "Bundle" and isinstance(parsed.get("entry"), list):
        for entry in parsed["entry"]:
            resource = entry.get("resource") if isinstance(entry, dict) else None
            if isinstance(resource, dict) and resource.get("resourceType") == "OperationOutcome":
                return resource
    return None


def _json(body: bytes) -> Any:
    try:
        return json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return None
