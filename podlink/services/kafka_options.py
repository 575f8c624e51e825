"""What the operator tools (`podlink dead-letters`, `podlink replay`) pass to kafka-python clients."""
from __future__ import annotations

from datetime import datetime
from typing import Any

from podlink.streams.worker.kafka_security import client_options as security_options
from podlink.streams.worker.settings import Settings


def client_options(settings: Settings) -> dict[str, Any]:
    """Keyword arguments for every kafka-python client the operator tools make: the brokers and
    the worker's own TLS and SASL settings."""
    return {"bootstrap_servers": settings.kafka_bootstrap.split(","), **security_options(settings)}


def aware_time(text: str) -> datetime:
    """An ISO 8601 time that says its time zone, e.g. `2026-05-01T09:00Z` or `...+01:00`.

    A time without a zone is refused: in the UK it is an hour off for half the year.
    """
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(f"{text!r} is not an ISO 8601 time such as 2026-05-01T09:00:00Z") from None
    if moment.tzinfo is None:
        raise ValueError(f"{text!r} has no time zone: add Z for UTC or an offset such as +01:00")
    return moment
