"""What `podlink deliver` counts, for dashboards and paging rules (no patient data in labels)."""
from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

# From an EPR answering at once to a message that waited out an outage of hours.
LATENCY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600, 4 * 3600, 24 * 3600)


class DeliverMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.deliveries = Counter("podlink_epr_deliveries", "messages finished, by result "
                                  "(delivered, dead-letter)", ["result"], registry=self.registry)
        self.attempts = Counter("podlink_epr_attempts", "POSTs to the EPR, by answer (HTTP status "
                                "class, BaRS code or failure)", ["answer"], registry=self.registry)
        self.latency = Histogram("podlink_epr_delivery_latency_seconds", "from the message's "
                                 "broker timestamp to the EPR's final answer",
                                 buckets=LATENCY_BUCKETS, registry=self.registry)
        self.waiting = Gauge("podlink_epr_messages_waiting", "messages read and not yet delivered "
                             "or dead-lettered", registry=self.registry)
        self.retrying = Gauge("podlink_epr_referrals_retrying", "referrals whose head message failed "
                              "and is being retried", registry=self.registry)

    def exposition(self) -> bytes:
        return generate_latest(self.registry)


def answer_label(status: int | None, response_code: str | None, failure: str | None) -> str:
    """A closed set: `2xx`, `4xx`, `5xx`, `429`, `408`, `transient-error`, `fatal-error`,
    `timeout`, `connection`."""
    if response_code in ("transient-error", "fatal-error"):
        return response_code
    if status is None:
        return "timeout" if failure == "timeout" else "connection"
    if status in (408, 429):
        return str(status)
    return f"{status // 100}xx"
