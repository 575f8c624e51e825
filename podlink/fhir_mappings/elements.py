"""FHIR datatypes as plain dicts.

Resources are assembled from dicts and each validated once, by its own fhir.resources model, in
`messages.py`, rather than built datatype by datatype as models (see `messages._validated`).
"""
from __future__ import annotations

from datetime import datetime
from typing import Any

from podlink.streams.core.encoding import utc_text

Json = dict[str, Any]


def full_url(resource_id: str) -> str:
    return f"urn:uuid:{resource_id}"


def reference(resource_id: str, display: str | None = None) -> Json:
    """A literal reference to another entry of the same message Bundle."""
    return compact({"reference": full_url(resource_id), "display": display})


def coding(system: str, code: str, display: str | None = None) -> Json:
    return compact({"system": system, "code": code, "display": display})


def concept(system: str, code: str, display: str | None = None, text: str | None = None) -> Json:
    return compact({"coding": [coding(system, code, display)], "text": text})


def meta(profile: str) -> Json:
    return {"profile": [profile]}


def period(start: datetime | None, end: datetime | None = None) -> Json | None:
    return compact({
        "start": utc_text(start) if start else None,
        "end": utc_text(end) if end else None,
    }) or None


def compact(fields: Json) -> Json:
    """The fields that have a value: FHIR forbids null and empty arrays or objects."""
    return {key: value for key, value in fields.items() if value is not None and value != [] and value != {}}
