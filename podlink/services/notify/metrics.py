"""What `podlink notify` counts, for Prometheus. Labels are closed sets and reasons that name a
field or a status, never a value."""
from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

CONTENT_TYPE = "text/plain; version=0.0.4"


class NotifyMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.alerts = Counter("podlink_notify_alerts_total", "alert records read, by kind and outcome",
                              ["kind", "outcome"], registry=self.registry)
        self.deliveries = Counter("podlink_notify_deliveries_total",
                                  "messages by channel and outcome (sent, failed, retried, interrupted)",
                                  ["channel", "outcome"], registry=self.registry)
        self.acknowledgements = Counter("podlink_notify_acknowledgements_total", "alerts acknowledged",
                                        registry=self.registry)
        self.open_alerts = Gauge("podlink_notify_open_alerts", "alerts not yet acknowledged or resolved",
                                 registry=self.registry)
        self.send_seconds = Histogram("podlink_notify_send_seconds", "one successful send, by channel",
                                      ["channel"], registry=self.registry,
                                      buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30))

    def exposition(self) -> bytes:
        return generate_latest(self.registry)
