"""Who is calling: a bearer token whose SHA-256 is configured (PODLINK_INTAKE_TOKENS), or a
client certificate verified by TLS. The answer is the EPR system's configured name."""
from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def bearer_name(authorization: str | None, tokens: Mapping[str, str]) -> str | None:
    """The name whose token hash matches the Authorization header, or None.

    Every configured hash is compared, in constant time, so the time taken tells nothing of
    which (or whether one) matched.
    """
    if not authorization:
        return None
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    presented = token_hash(token.strip()).encode()
    found = None
    for name, digest in tokens.items():
        if hmac.compare_digest(presented, digest.encode()):
            found = name
    return found
