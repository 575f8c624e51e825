"""podlink's own terms as FHIR conformance resources, so a receiver can validate our messages.

`published_resources(base_url)` renders, from the tables in `local_codes.py` (the ones the
messages take their codes from), one CodeSystem and one all-codes ValueSet per local code
system, and one StructureDefinition per extension, each with the canonical URL the messages
use under `base_url`. This is the single source of those resources: the intake service serves
them at `GET [base]/CodeSystem/{id}` (and ValueSet, StructureDefinition), and the conformance
tests load them into the HAPI validator.
"""
from __future__ import annotations

from podlink.fhir_mappings.elements import Json, compact
from podlink.fhir_mappings.local_codes import CODE_SYSTEMS, EXTENSIONS, LocalCodeSystem, LocalExtension
from podlink.fhir_mappings.systems import Namespace, namespace

# The business version of every published resource: bump it when a code or extension is added.
PUBLISHED_VERSION = "1.1.0"  # 1.1.0: deadline policies and outcomes (Task)
_PUBLISHER = "podlink"
_EXTENSION_BASE = "http://hl7.org/fhir/StructureDefinition/Extension"


def published_resources(base_url: str) -> dict[tuple[str, str], Json]:
    """Every CodeSystem, ValueSet and StructureDefinition podlink defines, by (resourceType, id),
    with canonical URLs under `base_url` (ValueError if it is not an absolute http(s) URL)."""
    ns = namespace(base_url)
    resources = [
        *(_code_system(ns, system) for system in CODE_SYSTEMS),
        *(_value_set(ns, system) for system in CODE_SYSTEMS),
        *(_extension(ns, extension) for extension in EXTENSIONS),
    ]
    return {(resource["resourceType"], resource["id"]): resource for resource in resources}


def _common(resource_type: str, resource_id: str, url: str, name: str, title: str,
            description: str) -> Json:
    return {
        "resourceType": resource_type,
        "id": resource_id,
        "url": url,
        "version": PUBLISHED_VERSION,
        "name": name,
        "title": title,
        "status": "active",
        "experimental": False,
        "publisher": _PUBLISHER,
        "description": description,
    }


def _code_system(ns: Namespace, system: LocalCodeSystem) -> Json:
    return {
        **_common("CodeSystem", system.id, ns.code_system(system.id), system.name, system.title,
                  system.description),
        "caseSensitive": True,
        "valueSet": ns.value_set(system.id),
        "content": "complete",
        "count": len(system.concepts),
        "concept": [{"code": code, "display": display} for code, display in system.concepts.items()],
    }


def _value_set(ns: Namespace, system: LocalCodeSystem) -> Json:
    return {
        **_common("ValueSet", system.id, ns.value_set(system.id), system.name,
                  f"{system.title} (all codes)", f"Every code of the CodeSystem {system.title}."),
        "compose": {"include": [{"system": ns.code_system(system.id)}]},
    }


def _extension(ns: Namespace, extension: LocalExtension) -> Json:
    url = ns.extension(extension.id)
    value = compact({
        "id": "Extension.value[x]",
        "path": "Extension.value[x]",
        "min": 1,
        "type": [{"code": extension.value_type}],
        "binding": {
            "strength": "required",
            "valueSet": ns.value_set(extension.code_system.id),
        } if extension.code_system else None,
    })
    return {
        **_common("StructureDefinition", extension.id, url, extension.name, extension.title,
                  extension.description),
        "fhirVersion": "4.0.1",
        "kind": "complex-type",
        "abstract": False,
        "context": [{"type": "element", "expression": extension.context}],
        "type": "Extension",
        "baseDefinition": _EXTENSION_BASE,
        "derivation": "constraint",
        "differential": {"element": [
            {
                "id": "Extension",
                "path": "Extension",
                "short": extension.title,
                "definition": extension.description,
                "max": "1",
            },
            {"id": "Extension.url", "path": "Extension.url", "fixedUri": url},
            value,
        ]},
    }
