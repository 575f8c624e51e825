"""The timeline keeps each event's times, flags and codes as the Occurrence model declares them
(occurrences are built without validation, so the kinds must hold by construction)."""
import typing
from datetime import datetime, timezone

from podlink.services.samples import SCENARIOS, pathway
from podlink.streams.core.events import DATA_MODELS
from podlink.streams.core.timeline import KEPT_FIELDS, SHORT_TYPES, Occurrence, _is_union, occurrence_of
from tests.support.episodes import T0, accepted


def test_every_code_the_timeline_keeps_is_a_literal_of_strings():
    for event_type, model in DATA_MODELS.items():
        for name, kind in KEPT_FIELDS[SHORT_TYPES[event_type]].items():
            if kind != "code":
                continue
            annotation = model.model_fields[name].annotation
            options = typing.get_args(annotation) if _is_union(annotation) else (annotation,)
            values = [v for option in options if option is not type(None) for v in typing.get_args(option)]
            assert values and all(type(v) is str for v in values), (event_type, name, values)


def test_occurrences_of_every_sample_event_are_what_validation_would_give():
    for scenario in SCENARIOS:
        for record in pathway("REF-T-1", T0, scenario):
            occurrence = occurrence_of(accepted(record.value).event)
            assert Occurrence.model_validate(occurrence.model_dump()) == occurrence
            assert occurrence.at.tzinfo is timezone.utc and isinstance(occurrence.at, datetime)
