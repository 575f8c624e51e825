import json
import uuid

from hypothesis import given
from hypothesis import strategies as st

from podlink.streams.core.ids import PODLINK_NAMESPACE, once_id, stable_id


def test_the_namespace_is_pinned():
    assert PODLINK_NAMESPACE == uuid.UUID("6b1f3c52-8a4e-5d3b-9c1e-2f4a7d0e9b61")


def test_ids_of_known_parts_are_pinned():
    # Computed once, outside podlink, as uuid.uuid5(namespace, '["patient","9434765919"]')
    # and written out: a change of namespace or of how parts are named changes every id.
    assert stable_id("patient", "9434765919") == "c26de8c4-5ba3-5cab-87ad-b838b7ce8024"
    assert stable_id("bundle", "urn:nhs:ods:RXY:spa", "evt-1") == "12d3ceaf-c36a-53f2-ba60-25a8cacd520e"


def test_parts_cannot_collide_by_where_they_are_split():
    assert stable_id("a,b", "c") != stable_id("a", "b,c") != stable_id("a", "b", "c")


@given(st.lists(st.text(), min_size=1, max_size=4))
def test_ids_are_the_uuid5_of_the_parts_named_as_a_json_array(parts: list[str]):
    # The definition, spelled with the standard library: what every id podlink ever sent was.
    expected = str(uuid.uuid5(PODLINK_NAMESPACE, json.dumps(parts, separators=(",", ":"))))
    assert once_id(*parts) == expected
    assert stable_id(*parts) == expected


@given(st.lists(st.text(st.characters(max_codepoint=0x7F)), min_size=1, max_size=4))
def test_ids_of_ascii_parts_are_the_uuid5_of_the_parts_named_as_a_json_array(parts: list[str]):
    # ASCII (quotes, backslashes, control characters and DEL among it) is named by a faster
    # writer than other text: held to the same definition.
    expected = str(uuid.uuid5(PODLINK_NAMESPACE, json.dumps(parts, separators=(",", ":"))))
    assert once_id(*parts) == expected
