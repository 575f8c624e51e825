"""Reading one inbound record against the SPA contract (`../shared/contracts/`, v1).

A record either becomes an `Event` or a `Rejection` whose reason names the field and the rule
it broke, never the value: values can be NHS numbers, names or free text.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass
from importlib import resources
from typing import Any

import jsonschema_rs
from pydantic import ValidationError

from podlink.streams.core.bounded_json import Unreadable, load_bounded
from podlink.streams.core.events import Event, parse_event

SCHEMA_FILE = "pod-events.v1.schema.json"
_SAFE_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,40}$")


@dataclass(frozen=True)
class Rejection:
    reason: str


@dataclass(frozen=True)
class Accepted:
    event: Event


def load_schema() -> dict[str, Any]:
    return json.loads(resources.files(__package__).joinpath("contract", SCHEMA_FILE).read_text())


_VALIDATOR = jsonschema_rs.validator_for(load_schema())


def nhs_number_is_valid(number: str) -> bool:
    """Modulus 11 check (NHS Data Dictionary): digits 1-9 weighted 10..2, check digit 10th."""
    if len(number) != 10 or not number.isdigit():
        return False
    total = sum(int(digit) * weight for digit, weight in zip(number[:9], range(10, 1, -1)))
    check = 11 - total % 11
    if check == 11:
        check = 0
    return check != 10 and check == int(number[9])


def read_record(key: bytes | None, value: bytes | None) -> Accepted | Rejection:
    """Validate one Kafka record (key = referral id, value = CloudEvent JSON).

    Never raises: whatever a producer sends becomes an event or a rejection, so a poison
    record ends on the dead-letter topic and its neighbours are read as usual.
    """
    try:
        return _read(key, value)
    except Exception as exc:  # noqa: BLE001 - a bug here must cost one record, not the reader
        return Rejection(f"value could not be read ({type(exc).__name__})")


def _read(key: bytes | None, value: bytes | None) -> Accepted | Rejection:
    if value is None:
        return Rejection("record has no value")
    try:
        raw = load_bounded(value)
    except Unreadable as unreadable:
        return Rejection(unreadable.reason)
    if not isinstance(raw, dict):
        return Rejection("value is not a JSON object")
    problem = contract_problem(raw)
    if problem is not None:
        return Rejection(problem)
    try:
        event = parse_event(raw)
    except ValidationError as exc:
        # The first part of the location is the union's tag, the event type.
        return Rejection(f"contract: {_path(exc.errors()[0]['loc'][1:])}: {exc.errors()[0]['type']}")
    if key is None or key.decode("utf-8", "replace") != event.subject:
        return Rejection("record key is not the event subject (the referral id)")
    return Accepted(event)


def contract_problem(raw: dict[str, Any]) -> str | None:
    """The first way `raw` breaks the contract, or None if it keeps it."""
    # is_valid first: it builds no error objects, and nearly every event keeps the contract.
    error = None if _VALIDATOR.is_valid(raw) else next(iter(_VALIDATOR.iter_errors(raw)), None)
    if error is not None:
        return f"contract: {_path(error.instance_path)}: {_rule(error)}"
    data = raw["data"]
    if data.get("referralId") != raw["subject"]:
        return "contract: data.referralId differs from subject"
    if raw["type"] == "uk.nhs.spa.referral.received" and not nhs_number_is_valid(
        data["patient"]["nhsNumber"]
    ):
        return "contract: data.patient.nhsNumber fails the modulus 11 check"
    return None


def _path(parts: Any) -> str:
    # Property names the contract does not know are the producer's text: not echoed.
    return ".".join(
        str(p) if isinstance(p, int) or _SAFE_NAME.match(str(p)) else "?" for p in parts
    ) or "(event)"


def schema_keyword(error: Any) -> str:
    """The JSON Schema keyword a jsonschema-rs error broke (`enum`, `required` ...)."""
    path = list(error.schema_path)
    return str(path[-1]) if path else "schema"


def _rule(error: Any) -> str:
    keyword = schema_keyword(error)
    kind = error.kind
    if keyword == "required" and _SAFE_NAME.match(getattr(kind, "property", "") or ""):
        return f"required property {kind.property!s} is missing"
    if keyword == "additionalProperties":
        names = [n for n in getattr(kind, "unexpected", []) if _SAFE_NAME.match(str(n))]
        return f"property not in the contract ({', '.join(names) or 'unnamed'})"
    return f"breaks the '{keyword}' rule"
