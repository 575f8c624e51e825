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


def test_the_message_path_refuses_a_code_outside_the_r4_value_set(monkeypatch):
    from podlink.fhir_mappings import build_message, care_plan
    from podlink.streams.core.pathway import first_meeting_deadline
    from podlink.streams.core.episode import Policy
    from tests.support.episodes import feed, records

    scheduled = records("on-time", referral_id="REF-BOGUS-CODE")[:4]
    assert scheduled[-1].value["type"] == "uk.nhs.pod.meeting.scheduled"
    episode, steps = feed(scheduled)
    event = steps[-1].transitions[0].event
    deadline = first_meeting_deadline(episode, Policy())
    assert build_message(event, episode, deadline)["type"] == "message"
    # The planned meeting's activity status becomes a code R4 does not have.
    monkeypatch.setitem(care_plan._MEETING_STATUS, "planned", "bogus")
    with pytest.raises(MappingError, match=r"^not a valid FHIR R4 message: "
                       r"CarePlan\.activity\.2\.detail\.status: breaks the 'enum' rule$"):
        build_message(event, episode, deadline)
