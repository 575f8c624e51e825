"""Deterministic ids: the same input always yields the same output ids (replay-safe)."""
from __future__ import annotations

import hashlib
import json
import uuid
from functools import lru_cache

import orjson

# Fixed for ever: changing it would give every replayed output a new id.
PODLINK_NAMESPACE = uuid.UUID("6b1f3c52-8a4e-5d3b-9c1e-2f4a7d0e9b61")

_NAMESPACE_BYTES = PODLINK_NAMESPACE.bytes
_NAMES = json.JSONEncoder(separators=(",", ":"))
# The variant bits (RFC 4122: binary 10) over the top of the digest's ninth byte, by hex digit.
_VARIANT = {digit: "89ab"[int(digit, 16) & 0b11] for digit in "0123456789abcdef"}


@lru_cache(maxsize=65_536)  # a message asks for the same patient, referral and staff ids again
def stable_id(*parts: str) -> str:
    """A UUID (version 5) named by `parts`; valid as a FHIR id and a CloudEvents id.

    The parts are named as a JSON array, so no choice of part text can make two different
    lists of parts collide (as joining with a separator could).
    """
    return once_id(*parts)


def once_id(*parts: str) -> str:
    """`stable_id` of parts that are named once, such as an event's own: kept out of the cache,
    where one per event would push out the ids every message of a referral asks for again."""
    # uuid.uuid5 spelled out on the hex digest (version 5, RFC 4122 variant): the UUID object
    # it builds and formats cost twice the hash (measured); a test holds the two to the same ids.
    digest = hashlib.sha1(_NAMESPACE_BYTES + _named(parts)).hexdigest()
    return f"{digest[:8]}-{digest[8:12]}-5{digest[13:16]}-{_VARIANT[digest[16]]}{digest[17:20]}-{digest[20:32]}"


def _named(parts: tuple[str, ...]) -> bytes:
    # orjson spells text of printable ASCII (escaping only `"` and `\\`) as json does, 20 times
    # faster (measured); json names anything else, as it always did (it escapes non-ASCII and
    # DEL, which orjson does not).
    try:
        joined = "".join(parts)
    except TypeError:  # a part that is not text: json names it, or refuses it, as it did
        joined = ""
    if joined and joined.isascii() and joined.isprintable():
        return orjson.dumps(parts)
    return _NAMES.encode(parts).encode()
