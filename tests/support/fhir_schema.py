"""The official FHIR R4 (4.0.1) JSON Schema, for tests that check code values.

fhir.resources checks structure but not codes (it accepts Encounter.status "bogus"); the
schema's enums and patterns catch those.
"""
from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import Any

from jsonschema.protocols import Validator
from jsonschema.validators import validator_for

from podlink import fhir_mappings


def schema_path() -> Path:
    # The copy podlink ships and checks codes with at run time; the tests check it
    # independently, with the reference Python implementation of JSON Schema.
    return Path(fhir_mappings.__file__).parent / "schema" / "fhir.schema.json"


@functools.cache
def _definitions() -> dict[str, Any]:
    schema = json.loads(schema_path().read_text())
    validator_for(schema).check_schema(schema)  # the schema says draft-06
    return schema


@functools.cache
def _validator(definition: str) -> Validator:
    # One definition at a time rather than the root's oneOf over every resource type: about
    # ten times faster, and errors say which element is wrong instead of "no schema matched".
    schema = _definitions()
    cls = validator_for(schema)
    return cls({"$ref": f"#/definitions/{definition}", "definitions": schema["definitions"]})


def resource_errors(resource: dict[str, Any]) -> list[str]:
    """Where and why `resource` breaks the FHIR schema (empty when it conforms)."""
    if resource.get("resourceType") not in _definitions()["discriminator"]["mapping"]:
        return [f"$.resourceType: not a FHIR R4 resource type: {resource.get('resourceType')!r}"]
    return [
        f"{error.json_path}: {error.message[:300]}"
        for error in _validator(resource["resourceType"]).iter_errors(resource)
    ]


def bundle_errors(bundle: dict[str, Any]) -> list[str]:
    """Schema errors of a Bundle and of each of its entries' resources."""
    shell = {**bundle, "entry": [{k: v for k, v in e.items() if k != "resource"} for e in bundle.get("entry", [])]}
    errors = resource_errors(shell)
    for index, entry in enumerate(bundle.get("entry", [])):
        errors += [f"entry[{index}].resource {problem}" for problem in resource_errors(entry["resource"])]
    return errors
