"""Deterministic ids: the same input always yields the same output ids (replay-safe)."""
from __future__ import annotations

import json
import uuid
from functools import lru_cache

# Fixed for ever: changing it would give every replayed output a new id.
PODLINK_NAMESPACE = uuid.UUID("6b1f3c52-8a4e-5d3b-9c1e-2f4a7d0e9b61")


@lru_cache(maxsize=65_536)  # a message asks for the same patient, referral and staff ids again
def stable_id(*parts: str) -> str:
    """A UUID (version 5) named by `parts`; valid as a FHIR id and a CloudEvents id.

    The parts are named as a JSON array, so no choice of part text can make two different
    lists of parts collide (as joining with a separator could).
    """
    return str(uuid.uuid5(PODLINK_NAMESPACE, json.dumps(parts, separators=(",", ":"))))
