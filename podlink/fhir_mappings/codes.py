"""Code values and element formats checked against the official FHIR R4 JSON Schema.

fhir.resources validates structure, types and required elements, but not codes; the schema
(`schema/fhir.schema.json`) has the enumerations and patterns. Compiled with jsonschema-rs, a
check costs about a microsecond per resource.
"""
from __future__ import annotations

import functools
import json
from importlib import resources
from typing import Any

import jsonschema_rs

from podlink.streams.core.contract import schema_keyword


@functools.cache
def _definitions() -> dict[str, Any]:
    text = resources.files(__package__).joinpath("schema", "fhir.schema.json").read_text()
    return json.loads(text)["definitions"]


@functools.cache
def _validator(resource_type: str) -> Any:
    # One definition at a time, not the root's oneOf over every resource type: errors then
    # say which element is wrong rather than that no resource type matched.
    return jsonschema_rs.Draft6Validator(
        {"$ref": f"#/definitions/{resource_type}", "definitions": _definitions()}
    )


def code_problems(resource: dict[str, Any]) -> list[str]:
    """Where `resource` breaks the FHIR schema, by path and rule (never the value)."""
    if resource.get("resourceType") not in _definitions():
        return ["resourceType: not a FHIR R4 resource type"]
    return [
        f"{resource['resourceType']}.{'.'.join(str(p) for p in error.instance_path)}: "
        f"breaks the '{schema_keyword(error)}' rule"
        for error in _validator(resource["resourceType"]).iter_errors(resource)
    ]
