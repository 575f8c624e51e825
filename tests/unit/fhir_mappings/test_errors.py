import pytest

from podlink.fhir_mappings import MappingError, build_message
from podlink.fhir_mappings.errors import require_referral
from podlink.streams.core.episode import Episode
from tests.support.contract_examples import example
from tests.support.episodes import feed, records


def test_an_episode_without_its_referral_has_nothing_to_send():
    with pytest.raises(MappingError, match="^episode has no referral yet: nothing to send$"):
        require_referral(Episode(referral_id="REF-T-1"))


def test_an_out_of_scope_episode_has_nothing_to_send():
    episode, _ = feed(records("on-time")[:1])
    assert require_referral(episode) is episode.referral
    with pytest.raises(MappingError, match="^episode is out of scope: nothing to send$"):
        require_referral(episode.model_copy(update={"status": "out-of-scope"}))


def test_a_meeting_event_for_a_meeting_the_episode_lacks_is_refused():
    episode, steps = feed([example("referral-received"), example("meeting-held")])
    event = steps[-1].transitions[0].event
    without = episode.model_copy(update={"meetings": {}})
    with pytest.raises(MappingError, match="^the episode has no meeting with the event's meeting id$"):
        build_message(event, without, None)
