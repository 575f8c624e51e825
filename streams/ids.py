"""Deterministic ids: the same input always yields the same output ids (replay-safe)."""
from __future__ import annotations

import uuid

# Fixed for ever: changing it would give every replayed output a new id.
PODLINK_NAMESPACE = uuid.UUID("6b1f3c52-8a4e-5d3b-9c1e-2f4a7d0e9b61")


def stable_id(*parts: str) -> str:
    """A UUID (version 5) named by `parts`; valid as a FHIR id and a CloudEvents id."""
    return str(uuid.uuid5(PODLINK_NAMESPACE, "|".join(parts)))
