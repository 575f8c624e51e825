"""How podlink spells what it writes: JSON records and moments in time.

One spelling each, so equal inputs give byte-equal records (ids, FHIR messages, outcome events)
whichever part of podlink wrote them.
"""
from __future__ import annotations

import json
from datetime import datetime, timezone
from typing import Any


def json_bytes(value: Any) -> bytes:
    """Compact UTF-8 JSON: the value of every record podlink publishes or stores."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode()


def utc_text(moment: datetime) -> str:
    """An aware moment in UTC, ISO 8601 with `Z` (a FHIR instant, a CloudEvents time)."""
    return moment.astimezone(timezone.utc).isoformat().removesuffix("+00:00") + "Z"
