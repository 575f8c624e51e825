"""Property tests: whatever contract-valid events arrive, in whatever order, every FHIR message
podlink builds is valid R4 (fhir.resources and the official JSON Schema).

The worker builds messages without checking them at run time (`PODLINK_FHIR_VALIDATION=off`,
docs/performance.md), so a mapping bug must be caught here, before release: these, the
example-based tests of test_messages.py and the HAPI validator run of tests/conformance/.
"""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

from fhir.resources.R4B.bundle import Bundle
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from podlink.fhir_mappings import patient, people, tasks, terminology
from podlink.fhir_mappings.messages import _references
from podlink.services.samples import SCENARIOS, Record, pathway
from podlink.streams.core import encoding, ids
from podlink.streams.core.encoding import json_bytes
from podlink.streams.core.episode import Episode, Policy, Position
from podlink.streams.pipeline.processor import process
from tests.support.episodes import accepted
from tests.support.fhir_schema import bundle_errors
from tests.unit.fhir_mappings.test_messages import reached_from_focus, references



@st.composite
def deliveries(draw: st.DrawFn) -> list[Record]:
    """One referral's pathway as the sources might deliver it: any scenario, moment and team,
    its events in any order, some delivered twice."""
    scenario = draw(st.sampled_from(SCENARIOS))
    received = datetime(2020, 1, 1, tzinfo=timezone.utc) + timedelta(
        minutes=draw(st.integers(0, 60 * 24 * 365 * 8)))
    team = draw(st.sampled_from(["POD-CANTERBURY", "POD-MEDWAY", "POD-THANET"]))
    records = pathway(f"REF-P-{draw(st.integers(0, 9999)):04d}", received, scenario, team=team,
                      n=draw(st.integers(0, 10_000)))
    order = draw(st.permutations(records))
    again = draw(st.lists(st.sampled_from(records), max_size=2))
    return [*order, *again]


def _messages(records: list[Record], validate: bool) -> list[dict]:  # type: ignore[type-arg]
    episode: Episode | None = None
    sent = []
    for offset, record in enumerate(records):
        result = process(episode, accepted(record.value), Policy(), Position(record.topic, 0, offset),
                         validate_fhir=validate)
        episode = result.episode
        sent.extend(result.fhir_messages)
    return sent


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(deliveries())
def test_every_message_of_any_delivery_is_valid_r4(records: list[Record]):
    messages = _messages(records, validate=False)
    assert messages  # every pathway applies its referral at least
    for message in messages:
        assert bundle_errors(message) == []
        # The FHIR messaging rule: the focus reaches every entry but the header.
        assert reached_from_focus(message) == {e["fullUrl"] for e in message["entry"][1:]}
        # Every resource through its fhir.resources model, and back to the same JSON.
        assert Bundle.model_validate(message).model_dump(mode="json", exclude_none=True) == message


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(deliveries())
def test_checking_at_run_time_changes_nothing_but_the_cost(records: list[Record]):
    assert _messages(records, validate=True) == _messages(records, validate=False)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(deliveries())
def test_references_are_read_where_the_mappings_put_them(records: list[Record]):
    # messages.REFERENCE_PATHS against a walk of every element of every resource.
    for message in _messages(records, validate=False):
        for entry in message["entry"][1:]:
            assert sorted(_references(entry["resource"])) == sorted(references(entry["resource"]))


# Every cache of the mappings (by their inputs, so a worker's messages are the same whatever it
# built before, as on a worker that has just started).
CACHES = (
    encoding._cached_utc_text, ids.stable_id, tasks._task, patient.patient, people.practitioner,
    people._related_person, people.location, terminology.local_coding, terminology.local_concept,
)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(deliveries())
def test_a_message_is_the_same_whatever_was_built_before_it(records: list[Record]):
    warm = _messages(records, validate=False)  # the caches hold this and earlier deliveries' parts
    cold = []
    episode: Episode | None = None
    for offset, record in enumerate(records):
        for cache in CACHES:
            cache.cache_clear()
        result = process(episode, accepted(record.value), Policy(), Position(record.topic, 0, offset),
                         validate_fhir=False)
        episode = result.episode
        cold.extend(result.fhir_messages)
    assert [json_bytes(m) for m in warm] == [json_bytes(m) for m in cold]
