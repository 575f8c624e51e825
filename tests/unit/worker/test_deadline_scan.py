"""The deadline timer's decisions, with fakes for the group consumer, the producer and the ledger."""
from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from dataclasses import dataclass, field

import pytest
from faust.types import TP

from podlink.streams.core.deadlines import Deadline
from podlink.streams.worker.catchup import CatchUp
from podlink.streams.worker.codecs import DEADLINE_ENTRY, DeadlineEntry
from podlink.streams.worker.deadline_scan import DeadlineEntries, DeadlineScan
from podlink.streams.worker.metrics import Metrics
from podlink.streams.worker.settings import CARE_TOPIC, SPA_TOPIC
from tests.support.episodes import T0, hours

NOW = T0 + hours(30)  # six hours past the deadline of a referral received at T0
BREACHED = "uk.nhs.podlink.sla.breached"


def stored(ref: str, partition: int = 0, met: float | None = None) -> bytes:
    deadline = Deadline(referral_id=ref, team_code=None, starts_at=T0, due_at=T0 + hours(24),
                        at_risk_from=T0 + hours(18), met_at=T0 + hours(met) if met else None)
    return DEADLINE_ENTRY.encode(DeadlineEntry(partition, deadline))


@dataclass
class FakeConsumer:
    ends: dict[TP, int]
    committed_offsets: dict[TP, int | None] = field(default_factory=dict)

    def assignment(self) -> set[TP]:
        return set(self.ends)

    async def highwaters(self, *tps: TP) -> dict[TP, int]:
        return {tp: self.ends[tp] for tp in tps}

    def committed(self) -> dict[TP, int | None]:
        return self.committed_offsets


@dataclass
class FakeLedger:
    raised_kinds: dict[str, set[str]] = field(default_factory=dict)
    while_catching_up: Callable[[], None] = lambda: None

    def raised(self, referral_id: str) -> frozenset[str]:
        return frozenset(self.raised_kinds.get(referral_id, ()))

    def record(self, referral_id: str, kind: str) -> None:
        self.raised_kinds.setdefault(referral_id, set()).add(kind)

    async def catch_up(self, timeout: float) -> bool:
        self.while_catching_up()
        return True


@dataclass
class FakeProducer:
    sent: list[tuple[bytes, dict]] = field(default_factory=list)
    headers: list[dict[str, bytes]] = field(default_factory=list)  # of each record sent
    fails: bool = False

    async def send_and_wait(self, key: bytes, value: bytes, headers: list[tuple[str, bytes]]) -> None:
        if self.fails:
            raise ConnectionError("broker gone")
        self.sent.append((key, json.loads(value)))
        self.headers.append(dict(headers))


class Harness:
    """A scan over partition 0, whose input partitions each end at offset 10."""

    def __init__(self) -> None:
        self.deadlines: dict[bytes, bytes] = {}
        self.consumer = FakeConsumer({TP(SPA_TOPIC, 0): 10, TP(CARE_TOPIC, 0): 10})
        self.ledger = FakeLedger()
        self.producer = FakeProducer()
        self.catch_up = CatchUp(quiet_seconds=3)
        self.metrics = Metrics()
        self.ready = True
        self.scan = DeadlineScan(
            deadlines=self.deadlines, consumer=self.consumer, send_alert=self.producer.send_and_wait,
            ledger=self.ledger, catch_up=self.catch_up, metrics=self.metrics, clock=lambda: NOW,
            is_ready=lambda: self.ready, ledger_timeout=1.0)

    def read_to(self, topic: str, end: int) -> None:
        self.catch_up.processed(TP(topic, 0), end - 1, at=0.0)

    def run(self) -> list[tuple[bytes, dict]]:
        asyncio.run(self.scan.run())
        return self.producer.sent

    def scans(self) -> float:
        return self.metrics.registry.get_sample_value("podlink_deadline_scans_total") or 0.0


@pytest.fixture
def h() -> Harness:
    harness = Harness()
    harness.deadlines[b"REF-1"] = stored("REF-1")
    return harness


def test_an_alert_waits_until_both_input_topics_of_its_partition_are_read_to_their_end(h):
    h.read_to(SPA_TOPIC, 10)
    h.read_to(CARE_TOPIC, 9)  # one care event not yet processed: it might meet the deadline
    assert h.run() == [] and h.scans() == 0  # the scan left an alert waiting
    h.read_to(CARE_TOPIC, 10)
    (key, alert), = h.run()
    assert h.scans() == 1
    assert (key, alert["type"], alert["subject"]) == (b"REF-1", BREACHED, "REF-1")
    assert h.ledger.raised("REF-1") == {"breached"}


def test_an_alert_is_a_structured_mode_cloudevent_record(h):
    # The CloudEvents Kafka binding (section 3.3.1): without this header a consumer such as the
    # Java SDK's deserializer reads the record as binary mode and refuses it.
    h.read_to(SPA_TOPIC, 10)
    h.read_to(CARE_TOPIC, 10)
    assert [alert["type"] for _, alert in h.run()] == [BREACHED]
    assert h.producer.headers == [{"content-type": b"application/cloudevents+json; charset=UTF-8"}]


def test_the_spa_topic_behind_holds_the_alert_too(h):
    h.read_to(SPA_TOPIC, 9)
    h.read_to(CARE_TOPIC, 10)
    assert h.run() == []


def test_the_committed_offset_stands_in_for_records_not_processed_since_the_start(h):
    h.consumer.committed_offsets = {TP(SPA_TOPIC, 0): 10, TP(CARE_TOPIC, 0): 10}
    assert [alert["type"] for _, alert in h.run()] == [BREACHED]


def test_a_partition_no_longer_assigned_is_not_alerted_on(h):
    h.read_to(SPA_TOPIC, 10)
    h.read_to(CARE_TOPIC, 10)
    h.deadlines[b"REF-2"] = stored("REF-2", partition=1)  # another worker's, since a rebalance
    assert [key for key, _ in h.run()] == [b"REF-1"]
    assert h.scans() == 1  # nothing of its own left waiting


def test_a_deadline_met_while_the_scan_waited_raises_nothing(h):
    h.read_to(SPA_TOPIC, 10)
    h.read_to(CARE_TOPIC, 10)
    # The first meeting is processed while the scan waits for the ledger.
    h.ledger.while_catching_up = lambda: h.deadlines.update({b"REF-1": stored("REF-1", met=23)})
    assert h.run() == []
    assert h.ledger.raised("REF-1") == frozenset()


def test_a_failed_send_is_not_recorded_and_the_next_scan_raises_the_alert(h):
    h.read_to(SPA_TOPIC, 10)
    h.read_to(CARE_TOPIC, 10)
    h.producer.fails = True
    assert h.run() == []
    assert h.ledger.raised("REF-1") == frozenset() and h.scans() == 0
    h.producer.fails = False
    assert [alert["type"] for _, alert in h.run()] == [BREACHED]
    assert h.run() == [(b"REF-1", h.producer.sent[0][1])]  # raised once: the ledger has it now


def test_no_scan_before_the_worker_is_ready(h):
    h.read_to(SPA_TOPIC, 10)
    h.read_to(CARE_TOPIC, 10)
    h.ready = False
    assert h.run() == [] and h.scans() == 0
    assert h.metrics.registry.get_sample_value("podlink_deadlines_breached") == 0
    h.ready = True
    assert len(h.run()) == 1 and h.scans() == 1
    assert h.metrics.registry.get_sample_value("podlink_deadlines_breached") == 1


def test_each_scan_sees_the_table_as_it_is_now():
    entries = DeadlineEntries()
    first = entries.read([stored("a"), stored("b", partition=2)])
    assert [(e.partition, e.deadline.referral_id, e.deadline.met_at) for e in first] == [
        (0, "a", None), (2, "b", None)]
    # "a" met its deadline, "b" left with its partition, "c" arrived.
    second = entries.read([stored("a", met=10), stored("c")])
    assert [(e.partition, e.deadline.referral_id, e.deadline.met_at) for e in second] == [
        (0, "a", T0 + hours(10)), (0, "c", None)]


def test_an_unchanged_deadline_is_not_parsed_again():
    entries = DeadlineEntries()
    once, = entries.read([stored("a")])
    again, = entries.read([stored("a")])
    assert again is once
