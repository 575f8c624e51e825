import pytest

from podlink.fhir_mappings.codes import code_problems
from podlink.fhir_mappings.errors import MappingError
from podlink.fhir_mappings.messages import _validate


def _encounter(**overrides):
    return {"resourceType": "Encounter", "id": "6b1f3c52-8a4e-5d3b-9c1e-2f4a7d0e9b61",
            "status": "planned",
            "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "HH"},
            **overrides}


def test_a_valid_resource_has_no_code_problems():
    assert code_problems(_encounter()) == []


def test_a_code_outside_its_value_set_is_caught_without_echoing_it():
    problems = code_problems(_encounter(status="bogus"))
    assert problems == ["Encounter.status: breaks the 'enum' rule"]


def test_fhir_resources_alone_accepts_a_bogus_code_but_podlink_does_not():
    from fhir.resources.R4B.encounter import Encounter
    Encounter.model_validate(_encounter(status="bogus"))  # the library's gap
    with pytest.raises(MappingError, match="Encounter.status"):
        _validate(_encounter(status="bogus"))


def test_an_unknown_resource_type_is_a_problem():
    assert code_problems({"resourceType": "Spaceship"}) == ["resourceType: not a FHIR R4 resource type"]
