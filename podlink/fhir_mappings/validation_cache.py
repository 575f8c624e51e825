"""Remembering which resources have passed validation, so an identical one is not checked again."""
from __future__ import annotations

import hashlib
from collections import OrderedDict
from typing import Any, Callable

from podlink.streams.core.encoding import json_bytes


class ValidationCache:
    """A bounded set of digests of resources (their JSON) that validated.

    Validation is a pure function of the JSON, so the same JSON needs it once; the bound keeps
    memory flat on a long-running worker (16-byte digests: about 20 MB at 200,000).
    """

    def __init__(self, max_entries: int) -> None:
        self._max = max_entries
        self._digests: OrderedDict[bytes, None] = OrderedDict()

    def check(self, resource: dict[str, Any], validate: Callable[[dict[str, Any]], Any]) -> None:
        """Validate `resource` (raising as `validate` does) unless the same JSON passed before."""
        # Not sorted: the mappings build equal resources with their keys in the same order, and
        # sorting was 4% of a worker's time; a different order only costs one more validation.
        canonical = json_bytes(resource)
        digest = hashlib.blake2b(canonical, digest_size=16).digest()
        if digest in self._digests:
            self._digests.move_to_end(digest)
            return
        validate(resource)
        self._digests[digest] = None
        if len(self._digests) > self._max:
            self._digests.popitem(last=False)
