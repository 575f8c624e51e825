"""The deadline timer's decisions, with fakes for the group consumer, the producer and the ledger."""
from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from dataclasses import dataclass, field

import pytest
from faust.types import TP

from podlink.streams.core.alerts import alert_id
from podlink.streams.core.deadlines import Deadline
from podlink.streams.core.rules import Flag
from podlink.streams.pipeline.processor import Watch
from podlink.streams.worker.catchup import CatchUp
from podlink.streams.worker.alert_ledger import Sent
from podlink.streams.worker.codecs import DEADLINE_ENTRY, DeadlineEntry
from podlink.streams.worker.deadline_scan import DeadlineScan
from podlink.streams.worker.metrics import Metrics
from podlink.streams.worker.settings import CARE_TOPIC, SPA_TOPIC
from podlink.streams.worker.watch_index import WatchIndex
from tests.support.episodes import T0, hours

NOW = T0 + hours(30)  # six hours past the deadline of a referral received at T0
BREACHED = "uk.nhs.podlink.sla.breached"


def deadline(ref: str, met: float | None = None, policy: str = "first-meeting", cycle: int = 0) -> Deadline:
    return Deadline(referral_id=ref, policy=policy, cycle=cycle, team_code=None, starts_at=T0,
                    due_at=T0 + hours(24), at_risk_from=T0 + hours(18),
                    met_at=T0 + hours(met) if met else None)


def stored(ref: str, partition: int = 0, met: float | None = None, flags: tuple[Flag, ...] = (),
           closed: bool = False, deadlines: tuple[Deadline, ...] | None = None) -> bytes:
    watch = Watch(deadlines if deadlines is not None else (deadline(ref, met),), flags, closed)
    return DEADLINE_ENTRY.encode(DeadlineEntry(partition, watch))


def breach_id(ref: str) -> str:
    return alert_id(deadline(ref), "breached")


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
    ids: set[str] = field(default_factory=set)
    while_catching_up: Callable[[], None] = lambda: None
    recorded: list[tuple[str, str, int, int]] = field(default_factory=list)  # id, referral, partition, offset
    forgotten: list[str] = field(default_factory=list)

    def raised(self, alert_id: str) -> bool:
        return alert_id in self.ids

    def record(self, alert_id: str, referral: str, sent: Sent) -> None:
        self.ids.add(alert_id)
        self.recorded.append((alert_id, referral, sent.partition, sent.offset))

    def forget(self, referral: str) -> None:
        self.forgotten.append(referral)

    def holds(self, referral: str) -> bool:
        return any(r == referral for _, r, _, _ in self.recorded)

    async def catch_up(self, timeout: float) -> bool:
        self.while_catching_up()
        return True


@dataclass
class FakeProducer:
    sent: list[tuple[bytes, dict]] = field(default_factory=list)
    headers: list[dict[str, bytes]] = field(default_factory=list)  # of each record sent
    fails: bool = False
    while_sending: Callable[[], None] = lambda: None  # records handled while an alert is sent

    async def send_and_wait(self, key: bytes, value: bytes, headers: list[tuple[str, bytes]]) -> Placed:
        self.while_sending()
        if self.fails:
            raise ConnectionError("broker gone")
        self.sent.append((key, json.loads(value)))
        self.headers.append(dict(headers))
        return Placed(partition=3, offset=100 + len(self.sent))  # where a broker would put it


@dataclass(frozen=True)
class Placed:
    partition: int
    offset: int


class Harness:
    """A scan over partition 0, whose input partitions each end at offset 10."""

    def __init__(self) -> None:
        self.deadlines: dict[bytes, bytes] = {}
        self.index = WatchIndex()
        self.outcomes: list[dict] = []
        self.consumer = FakeConsumer({TP(SPA_TOPIC, 0): 10, TP(CARE_TOPIC, 0): 10})
        self.ledger = FakeLedger()
        self.producer = FakeProducer()
        self.catch_up = CatchUp(quiet_seconds=3)
        self.metrics = Metrics()
        self.ready = True
        self.scan = DeadlineScan(
            entries=self, index=self.index, consumer=self.consumer, send_alert=self.producer.send_and_wait,
            send_outcome=lambda key, value, headers: self.outcomes.append(json.loads(value)),
            ledger=self.ledger, catch_up=self.catch_up, metrics=self.metrics, clock=lambda: NOW,
            is_ready=lambda: self.ready, ledger_timeout=1.0)

    def get(self, key: bytes) -> DeadlineEntry | None:
        value = self.deadlines.get(key)
        return DEADLINE_ENTRY.decode(value) if value is not None else None

    def store(self, key: bytes, value: bytes) -> None:
        """As the record handler stores an entry: into the table, and the timer's index told."""
        self.deadlines[key] = value
        self.index.put(key, DEADLINE_ENTRY.decode(value))

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
    harness.store(b"REF-1", stored("REF-1"))
    return harness


def test_an_alert_waits_until_both_input_topics_of_its_partition_are_read_to_their_end(h):
    h.read_to(SPA_TOPIC, 10)
    h.read_to(CARE_TOPIC, 9)  # one care event not yet processed: it might meet the deadline
    assert h.run() == [] and h.scans() == 0  # the scan left an alert waiting
    h.read_to(CARE_TOPIC, 10)
    (key, alert), = h.run()
    assert h.scans() == 1
    assert (key, alert["type"], alert["subject"]) == (b"REF-1", BREACHED, "REF-1")
    assert h.ledger.ids == {alert["id"]} == {breach_id("REF-1")}


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
    h.store(b"REF-2", stored("REF-2", partition=1))  # another worker's, since a rebalance
    assert [key for key, _ in h.run()] == [b"REF-1"]
    assert h.scans() == 1  # nothing of its own left waiting


def test_a_deadline_met_while_the_scan_waited_raises_nothing(h):
    h.read_to(SPA_TOPIC, 10)
    h.read_to(CARE_TOPIC, 10)
    # The first meeting is processed while the scan waits for the ledger.
    h.ledger.while_catching_up = lambda: h.deadlines.update({b"REF-1": stored("REF-1", met=23)})
    assert h.run() == []
    assert h.ledger.ids == set()


def test_a_failed_send_is_not_recorded_and_the_next_scan_raises_the_alert(h):
    h.read_to(SPA_TOPIC, 10)
    h.read_to(CARE_TOPIC, 10)
    h.producer.fails = True
    assert h.run() == []
    assert h.ledger.ids == set() and h.scans() == 0
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


def test_a_breach_is_also_a_missed_deadline_outcome_with_the_id_a_late_meeting_gives_it(h):
    h.read_to(SPA_TOPIC, 10)
    h.read_to(CARE_TOPIC, 10)
    h.run()
    missed, = h.outcomes
    assert missed["type"] == "uk.nhs.podlink.deadline.missed"
    assert (missed["data"]["policy"], missed["data"]["metAt"], missed["data"]["minutesLate"]) == ("first-meeting", None, 360)
    from podlink.streams.core.outcomes import missed_event
    assert missed["id"] == missed_event(deadline("REF-1", met=27), T0 + hours(27))["id"]


def test_a_scan_reads_only_referrals_whose_moment_has_come(h):
    h.read_to(SPA_TOPIC, 10)
    h.read_to(CARE_TOPIC, 10)
    later = Deadline(referral_id="REF-2", team_code=None, starts_at=NOW, due_at=NOW + hours(24),
                     at_risk_from=NOW + hours(18))
    h.store(b"REF-2", stored("REF-2", deadlines=(later,)))
    read = []
    get = h.get
    h.get = lambda key: read.append(key) or get(key)  # type: ignore[method-assign]
    h.run()
    assert set(read) == {b"REF-1"}  # REF-2's at-risk time is 18 hours away
    read.clear()
    h.run()
    assert read == []  # REF-1's breach is raised: nothing of it can fall due again


def test_referrals_due_on_a_partition_still_being_read_are_not_read_from_the_table(h):
    h.read_to(SPA_TOPIC, 10)
    h.read_to(CARE_TOPIC, 9)  # partition 0 not read to its end: none of its alerts may go out
    for n in range(2, 50):
        h.store(f"REF-{n}".encode(), stored(f"REF-{n}"))
    read = []
    get = h.get
    h.get = lambda key: read.append(key) or get(key)  # type: ignore[method-assign]
    assert h.run() == [] and read == []
    h.read_to(CARE_TOPIC, 10)
    assert len(h.run()) == 49 and len(set(read)) == 49  # each read once it may alert


def test_every_open_deadline_of_a_referral_alerts_on_its_own(h):
    h.read_to(SPA_TOPIC, 10)
    h.read_to(CARE_TOPIC, 10)
    h.store(b"REF-1", stored("REF-1", deadlines=(deadline("REF-1"), deadline("REF-1", policy="cpa-review", cycle=2))))
    sent = [(a["data"]["policy"], a["data"]["cycle"], a["type"]) for _, a in h.run()]
    assert sent == [("first-meeting", 0, BREACHED), ("cpa-review", 2, BREACHED)]
    assert len(h.ledger.ids) == 2


def _flag(only_while_open: bool) -> Flag:
    return Flag("REF-1", None, "high-risk-referral", "on-call", "critical", T0, "spa\x1fe-1", only_while_open)


@pytest.mark.parametrize("closed, expected", [(False, 1), (True, 0)])
def test_a_high_risk_flag_pages_only_while_the_referral_is_open(h, closed, expected):
    h.read_to(SPA_TOPIC, 10)
    h.read_to(CARE_TOPIC, 10)
    h.store(b"REF-1", stored("REF-1", deadlines=(), flags=(_flag(True),), closed=closed))
    flags = [a for _, a in h.run() if a["type"] == "uk.nhs.podlink.governance.flagged"]
    assert len(flags) == expected
    h.store(b"REF-1", h.deadlines[b"REF-1"])  # told again, as when another event changes the entry
    assert len(h.run()) == expected  # at most once


def test_an_alert_is_recorded_with_its_referral_and_where_the_broker_put_it(h):
    h.read_to(SPA_TOPIC, 10)
    h.read_to(CARE_TOPIC, 10)
    h.run()
    assert h.ledger.recorded == [(breach_id("REF-1"), "REF-1", 3, 101)]


def test_a_referral_closed_once_its_breach_is_resolved_is_forgotten_by_the_ledger(h):
    h.read_to(SPA_TOPIC, 10)
    h.read_to(CARE_TOPIC, 10)
    h.run()
    assert h.ledger.forgotten == []  # open: its breach stands
    # Withdrawn at 28 hours: the scan resolves the breach, and then nothing more can alert.
    closed = deadline("REF-1").model_copy(update={"closed_at": T0 + hours(28)})
    h.scan.written(b"REF-1", DEADLINE_ENTRY.decode(stored("REF-1", deadlines=(closed,), closed=True)))
    h.deadlines[b"REF-1"] = stored("REF-1", deadlines=(closed,), closed=True)
    assert [a["type"] for _, a in h.run()][-1] == "uk.nhs.podlink.sla.resolved"
    assert h.ledger.forgotten == ["REF-1"]


def test_a_closed_referral_with_no_moment_left_is_looked_at_once_and_forgotten(h):
    # Warned at risk, met in time (so it leaves the watch), then withdrawn: the index has no
    # moment for it, yet its at-risk id is held.
    h.read_to(SPA_TOPIC, 10)
    h.read_to(CARE_TOPIC, 10)
    h.ledger.recorded.append(("at-risk-id", "REF-2", 0, 5))
    h.deadlines[b"REF-2"] = stored("REF-2", deadlines=(), closed=True)
    h.scan.written(b"REF-2", DEADLINE_ENTRY.decode(h.deadlines[b"REF-2"]))
    h.run()
    assert "REF-2" in h.ledger.forgotten


def test_a_closed_referral_the_ledger_holds_nothing_of_is_not_looked_at(h):
    h.deadlines[b"REF-2"] = stored("REF-2", deadlines=(), closed=True)
    h.scan.written(b"REF-2", DEADLINE_ENTRY.decode(h.deadlines[b"REF-2"]))
    assert h.index.due(NOW) == [b"REF-1"]


def test_a_closed_referral_waits_for_its_partition_to_be_read_before_it_is_forgotten(h):
    # A later record in the backlog could still raise the breach's resolution.
    h.ledger.recorded.append(("at-risk-id", "REF-2", 0, 5))
    h.deadlines[b"REF-2"] = stored("REF-2", deadlines=(), closed=True)
    h.scan.written(b"REF-2", DEADLINE_ENTRY.decode(h.deadlines[b"REF-2"]))
    h.read_to(SPA_TOPIC, 10)
    h.read_to(CARE_TOPIC, 9)
    h.run()
    assert h.ledger.forgotten == []
    h.read_to(CARE_TOPIC, 10)
    h.run()
    assert "REF-2" in h.ledger.forgotten


def test_a_deadline_a_record_adds_while_an_alert_is_sent_is_alerted_on(h):
    h.read_to(SPA_TOPIC, 10)
    h.read_to(CARE_TOPIC, 10)
    review = deadline("REF-1", policy="cpa-review", cycle=1)  # as overdue as the first meeting
    both = stored("REF-1", deadlines=(deadline("REF-1"), review))

    def record_handled() -> None:
        h.producer.while_sending = lambda: None
        h.store(b"REF-1", both)

    h.producer.while_sending = record_handled
    assert [(a["data"]["policy"], a["type"]) for _, a in h.run()] == [("first-meeting", BREACHED)]
    h.producer.sent.clear()
    assert [(a["data"]["policy"], a["type"]) for _, a in h.run()] == [("cpa-review", BREACHED)]
