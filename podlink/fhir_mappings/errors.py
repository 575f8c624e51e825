"""Mapping failures. Messages name fields and rules only, never values: a value may identify a patient."""
from __future__ import annotations

from podlink.streams.core.episode import Episode
from podlink.streams.core.events import ReferralReceived


class MappingError(ValueError):
    """The event and episode cannot be expressed as a valid message."""


def require_referral(episode: Episode) -> ReferralReceived:
    """The episode's referral, if the episode is one we send messages about."""
    # Care events wait in the episode until their referral arrives, so none should get here.
    if episode.referral is None:
        raise MappingError("episode has no referral yet: nothing to send")
    if episode.status == "out-of-scope":
        raise MappingError("episode is out of scope: nothing to send")
    return episode.referral
