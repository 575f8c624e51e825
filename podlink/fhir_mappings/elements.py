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


# reference, coding and period build their dict directly rather than through `compact`: they
# are most of the elements of a message (a quarter of a million references over the 16,000
# messages of handler_bench), and only their optional fields can be missing.


def reference(resource_id: str, display: str | None = None) -> Json:
    """A literal reference to another entry of the same message Bundle."""
    if display is None:
        return {"reference": full_url(resource_id)}
    return {"reference": full_url(resource_id), "display": display}


def coding(system: str, code: str, display: str | None = None) -> Json:
    if display is None:
        return {"system": system, "code": code}
    return {"system": system, "code": code, "display": display}


def concept(system: str, code: str, display: str | None = None, text: str | None = None) -> Json:
    return compact({"coding": [coding(system, code, display)], "text": text})


def meta(profile: str) -> Json:
    return {"profile": [profile]}


def period(start: datetime | None, end: datetime | None = None) -> Json | None:
    if start and end:
        return {"start": utc_text(start), "end": utc_text(end)}
    if start:
        return {"start": utc_text(start)}
    if end:
        return {"end": utc_text(end)}
    return None


def compact(fields: Json) -> Json:
    """The fields that have a value: FHIR forbids null and empty arrays or objects."""
    # An empty list or dict is the only falsy value to drop besides None (False, 0 and "" stay):
    # tested by truth first, which spares building an empty list and dict to compare with.
    return {key: value for key, value in fields.items()
            if value is not None and (value or not isinstance(value, (list, dict)))}
