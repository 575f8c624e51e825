"""What a worker counts, in Prometheus form, for trust IT's dashboards and paging rules.

Labels are closed sets (topics, event types from the contract's enum, outcomes, alert kinds) or
dead-letter reasons, which name a field and a rule and never a value; digits in a reason
(array indices, JSON line and column) are folded so that the set of reasons stays small.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)


CONTENT_TYPE = "text/plain; version=0.0.4"
UNREADABLE = "unreadable"

# From a few milliseconds (a record handled as it arrives) to minutes (a backlog).
PROCESSING_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900)
# From the scan interval to a day: a backlog replayed after an outage alerts late, and shows it.
ALERT_BUCKETS = (1, 5, 10, 30, 60, 120, 300, 900, 1800, 3600, 4 * 3600, 24 * 3600)
# From the loop's own scheduling (under a millisecond) to a stuck worker; 0.1 s is the bound
# issue 12 sets, so the buckets either side of it tell how many stalls passed it.
LOOP_LAG_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)
GC_PAUSE_BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5)


@dataclass(frozen=True)
class DeadlineCounts:
    open_episodes: int
    at_risk: int
    breached: int


def reason_label(reason: str) -> str:
    return re.sub(r"\d+", "N", reason)


class Metrics:
    """One worker's metrics, in a registry of its own (tests run several workers in a process)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.records = Counter(
            "podlink_records", "Input records read, by topic, event type and what became of them",
            ["topic", "type", "outcome"], registry=r)
        self.records_missed = Counter(
            "podlink_records_missed", "Input records the group consumer skipped (around a "
            "rebalance), read from the broker and handled before the records after them", registry=r)
        self.consumer_rewinds = Counter(
            "podlink_consumer_rewinds", "Times the group consumer was sent back to input records that "
            "waited unhandled on a quiet partition (fetched and dropped around a rebalance)", registry=r)
        self.dead_letters = Counter(
            "podlink_dead_letters", "Records sent to the dead-letter topic, by reason",
            ["reason"], registry=r)
        self.processing_latency = Histogram(
            "podlink_processing_latency_seconds",
            "From a record's broker timestamp to its outputs handed to the producer",
            buckets=PROCESSING_BUCKETS, registry=r)
        self.alerts = Counter(
            "podlink_alerts", "SLA alerts published, by kind", ["kind"], registry=r)
        self.alert_latency = Histogram(
            "podlink_alert_latency_seconds",
            "From the moment an alert became due (at-risk time, deadline, meeting or closure) "
            "to the alert published", ["kind"], buckets=ALERT_BUCKETS, registry=r)
        self.rule_failures = Counter(
            "podlink_rule_failures", "Deadline rules and hooks that raised on an event (the event "
            "was applied; the rule's effects for it were dropped)", ["rule"], registry=r)
        self.deadline_scans = Counter(
            "podlink_deadline_scans", "Deadline scans that raised every alert due on this "
            "worker's partitions (none left waiting for a partition to be read to its end)", registry=r)
        self.open_episodes = Gauge(
            "podlink_open_episodes", "Referrals on this worker's partitions that are not closed "
            "(rejected, withdrawn or discharged), as of the last deadline scan", registry=r)
        self.deadlines_at_risk = Gauge(
            "podlink_deadlines_at_risk", "Open deadlines (every policy) inside the at-risk window",
            registry=r)
        self.deadlines_breached = Gauge(
            "podlink_deadlines_breached", "Open deadlines (every policy) past due and not met",
            registry=r)
        self.consumer_lag = Gauge(
            "podlink_consumer_lag", "Records on an input partition not yet processed by this worker",
            ["topic", "partition"], registry=r)
        self.ready = Gauge(
            "podlink_ready", "1 once this worker's tables are recovered and it is not rebalancing",
            registry=r)
        self.broker_reachable = Gauge(
            "podlink_broker_reachable", "1 while the Kafka cluster answers this worker's metadata "
            "requests, 0 from the moment the worker logs 'broker unreachable' until it is back",
            registry=r)
        self.work_helper_share = Gauge(
            "podlink_work_helper_share", "The share of a batch's referrals the worker's helper "
            "process worked out last (0 to 1); 0 while there is no helper (off, starting, or lost "
            "and not yet started again) or the batches are too small to share", registry=r)
        self.loop_lag = Histogram(
            "podlink_event_loop_lag_seconds", "How much later than asked a sleep of the worker's "
            "loop-lag monitor (every 10 ms) ended: how long something else held the event loop",
            buckets=LOOP_LAG_BUCKETS, registry=r)
        self.loop_lag_max = Gauge(
            "podlink_event_loop_lag_max_seconds", "The longest the event loop was held since the "
            "worker started (podlink_event_loop_lag_seconds' largest observation)", registry=r)
        self.gc_full_pause = Histogram(
            "podlink_gc_full_pause_seconds", "Pauses of full (generation 2) garbage collections, "
            "which hold every thread of the worker, the event loop's too",
            buckets=GC_PAUSE_BUCKETS, registry=r)
        self.gc_full_pause_max = Gauge(
            "podlink_gc_full_pause_max_seconds", "The longest full garbage collection since the "
            "worker started", registry=r)
        self._loop_lag_max = 0.0
        self._gc_full_pause_max = 0.0

    def loop_held(self, seconds: float) -> None:
        self.loop_lag.observe(seconds)
        if seconds > self._loop_lag_max:
            self._loop_lag_max = seconds
            self.loop_lag_max.set(seconds)

    def gc_paused(self, seconds: float) -> None:
        self.gc_full_pause.observe(seconds)
        if seconds > self._gc_full_pause_max:
            self._gc_full_pause_max = seconds
            self.gc_full_pause_max.set(seconds)

    def rule_failed(self, rule: str) -> None:
        self.rule_failures.labels(rule=rule).inc()

    def record(self, topic: str, event_type: str, outcome: str) -> None:
        self.records.labels(topic=topic, type=event_type, outcome=outcome).inc()

    def dead_letter(self, reason: str) -> None:
        self.dead_letters.labels(reason=reason_label(reason)).inc()

    def alert(self, kind: str, latency_seconds: float) -> None:
        self.alerts.labels(kind=kind).inc()
        self.alert_latency.labels(kind=kind).observe(max(latency_seconds, 0.0))

    def deadlines(self, counts: DeadlineCounts) -> None:
        self.open_episodes.set(counts.open_episodes)
        self.deadlines_at_risk.set(counts.at_risk)
        self.deadlines_breached.set(counts.breached)

    def lag(self, lags: dict[tuple[str, int], int]) -> None:
        # Partitions move between workers: a revoked one must not keep its last value.
        self.consumer_lag.clear()
        for (topic, partition), lag in lags.items():
            self.consumer_lag.labels(topic=topic, partition=str(partition)).set(lag)

    def exposition(self) -> bytes:
        return generate_latest(self.registry)
