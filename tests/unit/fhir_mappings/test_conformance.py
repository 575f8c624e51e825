"""podlink's published CodeSystems, ValueSets and extension StructureDefinitions.

A receiver validates our messages against these: every local code a message carries must be in
its published CodeSystem with the same display, and the CodeSystems must hold every value the
contract allows (checked against the contract's own schema, not against our tables).
"""
from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from podlink.fhir_mappings.conformance import published_resources
from tests.unit.fhir_mappings.test_messages import EXAMPLES, LOCAL, every_message

TRUST = "https://fhir.trust.example/podlink"
CONTRACT = json.loads((EXAMPLES.parent / "pod-events.v1.schema.json").read_text())


def codings(node: Any) -> Iterator[dict[str, Any]]:
    if isinstance(node, dict):
        if "system" in node and "code" in node:
            yield node
        for value in node.values():
            yield from codings(value)
    elif isinstance(node, list):
        for item in node:
            yield from codings(item)


def codes(resources: dict[tuple[str, str], dict[str, Any]], system_id: str) -> dict[str, str]:
    system = resources[("CodeSystem", system_id)]
    return {c["code"]: c["display"] for c in system["concept"]}


def test_every_local_code_sent_is_published_with_the_display_sent():
    published = {r["url"]: r for r in published_resources(LOCAL).values() if r["resourceType"] == "CodeSystem"}
    used = 0
    for sent in every_message():
        for coding in codings(sent.message):
            if coding["system"].startswith(LOCAL + "/"):
                system = published[coding["system"]]
                concepts = {c["code"]: c["display"] for c in system["concept"]}
                assert concepts[coding["code"]] == coding["display"]
                used += 1
    assert used > 100


def test_resources_are_keyed_by_type_and_id_with_urls_under_the_base_url():
    resources = published_resources(TRUST + "/")
    kinds = sorted({kind for kind, _ in resources})
    assert kinds == ["CodeSystem", "StructureDefinition", "ValueSet"]
    for (kind, resource_id), resource in resources.items():
        assert (resource["resourceType"], resource["id"]) == (kind, resource_id)
        assert resource["url"] == f"{TRUST}/{kind}/{resource_id}"
        assert resource["status"] == "active"


def test_the_code_systems_hold_every_value_the_contract_allows():
    resources = published_resources(LOCAL)
    definitions = CONTRACT["$defs"]
    assert set(definitions["staffRole"]["enum"]) == set(codes(resources, "pod-staff-role"))
    meeting = definitions["data_pod_meeting_cancelled"]["properties"]["reason"]["enum"]
    assert set(meeting) == set(codes(resources, "pod-cancellation-reason"))
    measure = definitions["data_pod_measure_recorded"]["properties"]
    assert set(measure["timepoint"]["enum"]) == set(codes(resources, "pod-measure-timepoint"))
    assert set(definitions["data_pod_risk_assessed"]["properties"]["level"]["enum"]) == set(
        codes(resources, "pod-risk-level"))
    # Items: the contract's largest count per instrument (HoNOS items are SNOMED codes).
    items = codes(resources, "pod-measure-item")
    for rule in definitions["data_pod_measure_recorded"]["allOf"]:
        instrument = rule["if"]["properties"]["instrument"]["const"]
        if instrument != "HONOS":
            most = rule["then"]["properties"]["items"]["maxItems"]
            assert f"{instrument.lower()}-{most}" in items and f"{instrument.lower()}-{most + 1}" not in items
    # Relationships v3 RoleCode has no code for.
    assert set(codes(resources, "pod-network-relationship")) == {"carer", "other"}


def test_each_code_system_has_a_value_set_of_all_its_codes():
    resources = published_resources(TRUST)
    for (kind, system_id), system in resources.items():
        if kind == "CodeSystem":
            assert system["content"] == "complete" and system["count"] == len(system["concept"])
            assert system["valueSet"] == f"{TRUST}/ValueSet/{system_id}"
            value_set = resources[("ValueSet", system_id)]
            assert value_set["compose"] == {"include": [{"system": system["url"]}]}


@pytest.mark.parametrize("extension_id, context, value", [
    ("Extension-POD-ServiceUserAttended", "Encounter", {"code": "boolean"}),
    ("Extension-POD-CancellationReason", "Encounter", {"code": "Coding"}),
    ("Extension-POD-MeasureTimepoint", "Observation", {"code": "Coding"}),
])
def test_extensions_are_defined_for_their_element_and_value_type(extension_id: str, context: str, value: dict):
    definition = published_resources(TRUST)[("StructureDefinition", extension_id)]
    url = f"{TRUST}/StructureDefinition/{extension_id}"
    assert definition["context"] == [{"type": "element", "expression": context}]
    assert (definition["type"], definition["derivation"]) == ("Extension", "constraint")
    elements = {e["id"]: e for e in definition["differential"]["element"]}
    assert elements["Extension.url"]["fixedUri"] == url
    assert elements["Extension.value[x]"]["type"] == [value] and elements["Extension.value[x]"]["min"] == 1
