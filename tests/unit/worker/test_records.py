"""One input record through the worker, with dicts for its tables and a recorder for its sends."""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import pytest
from faust.types import TP

from podlink.services.samples import pathway
from podlink.streams.core.encoding import json_bytes
from podlink.streams.core.episode import Policy
from podlink.streams.worker import group_work, records
from podlink.streams.worker.catchup import CatchUp
from podlink.streams.worker.metrics import Metrics
from podlink.streams.worker.records import RecordHandler
from podlink.streams.worker.settings import DEAD_LETTER_TOPIC, FHIR_TOPIC, OUTCOMES_TOPIC, SPA_TOPIC
from tests.support.episodes import T0


@dataclass
class Message:
    key: bytes | None
    value: bytes | None
    offset: int
    partition: int = 0
    topic: str = SPA_TOPIC
    timestamp: float = 0.0


@dataclass
class Harness:
    episodes: dict[bytes, bytes] = field(default_factory=dict)
    deadlines: dict[bytes, bytes] = field(default_factory=dict)
    marks: dict[bytes, bytes] = field(default_factory=dict)
    sent: list[tuple[str, bytes | None, bytes | None, list[tuple[str, bytes]]]] = field(default_factory=list)
    metrics: Metrics = field(default_factory=Metrics)
    catch_up: CatchUp = field(default_factory=lambda: CatchUp(quiet_seconds=3))

    def handler(self, max_record_bytes: int = 1_000_000, policy: Policy = Policy(), **options: Any) -> RecordHandler:
        return RecordHandler(policy, self.episodes, self.deadlines, self.marks,
                             lambda *record: self.sent.append(record), self.metrics, self.catch_up,
                             max_record_bytes, **options)

    def to(self, topic: str) -> list[tuple[bytes | None, bytes | None, dict[str, bytes]]]:
        return [(key, value, dict(headers)) for t, key, value, headers in self.sent if t == topic]

    def count(self, name: str, **labels: str) -> float:
        return self.metrics.registry.get_sample_value(name, labels) or 0.0


def referral(ref: str = "REF-1", offset: int = 0) -> Message:
    record = pathway(ref, T0, "on-time")[0]
    return Message(record.key.encode(), json_bytes(record.value), offset)


@pytest.fixture
def h() -> Harness:
    return Harness()


def test_a_referral_is_stored_and_its_messages_sent(h):
    h.handler().handle(referral(offset=3))
    assert set(h.episodes) == {b"REF-1"} and set(h.deadlines) == {b"REF-1"}
    assert json.loads(h.deadlines[b"REF-1"])["partition"] == 0
    assert [key for key, _, _ in h.to(FHIR_TOPIC)] == [b"REF-1"]
    assert h.to(OUTCOMES_TOPIC) and h.to(DEAD_LETTER_TOPIC) == []
    assert h.count("podlink_records_total", topic=SPA_TOPIC, type="uk.nhs.spa.referral.received",
                   outcome="applied") == 1
    assert h.catch_up.position(TP(SPA_TOPIC, 0), None) == 4


def test_outcome_events_alone_are_sent_as_structured_mode_cloudevents(h):
    # The CloudEvents Kafka binding (section 3.3.1) wants this header on every structured-mode
    # record; FHIR messages and dead letters are not CloudEvents and must not claim to be.
    handler = h.handler()
    handler.handle(referral(offset=0))
    handler.handle(Message(b"REF-9", b"{ not json", offset=1))
    outcomes, fhir, dead = h.to(OUTCOMES_TOPIC), h.to(FHIR_TOPIC), h.to(DEAD_LETTER_TOPIC)
    assert outcomes and fhir and dead
    assert [headers for _, _, headers in outcomes] == (
        [{"content-type": b"application/cloudevents+json; charset=UTF-8"}] * len(outcomes))
    assert [json.loads(value)["specversion"] for _, value, _ in outcomes] == ["1.0"] * len(outcomes)
    assert [headers for _, _, headers in fhir] == [{}] * len(fhir)
    assert all(name.startswith("podlink-") for _, _, headers in dead for name in headers)


def test_a_record_that_breaks_the_contract_is_dead_lettered_with_where_it_came_from(h):
    h.handler().handle(Message(b"REF-9", b"{ not json", offset=7, partition=2))
    (key, value, headers), = h.to(DEAD_LETTER_TOPIC)
    assert (key, value) == (b"REF-9", b"{ not json")
    assert headers == {"podlink-error": b"value is not JSON (line 1, column 3)",
                       "podlink-source-topic": SPA_TOPIC.encode(),
                       "podlink-source-partition": b"2", "podlink-source-offset": b"7"}
    assert h.count("podlink_records_total", topic=SPA_TOPIC, type="unreadable", outcome="dead-letter") == 1
    assert h.count("podlink_dead_letters_total", reason="value is not JSON (line N, column N)") == 1
    assert h.catch_up.position(TP(SPA_TOPIC, 2), None) == 8


def test_a_reader_that_raises_dead_letters_the_record_and_the_next_one_flows(h, monkeypatch):
    def read_record(key, value):
        raise RecursionError("maximum recursion depth exceeded")
    handler = h.handler()
    with monkeypatch.context() as patched:
        patched.setattr(group_work, "read_record", read_record)
        handler.handle(Message(b"x", b"[[[]]]", offset=0))
    handler.handle(referral(offset=1))
    (_, value, headers), = h.to(DEAD_LETTER_TOPIC)
    assert value == b"[[[]]]"
    assert headers["podlink-error"] == b"podlink could not read the record (RecursionError)"
    assert [key for key, _, _ in h.to(FHIR_TOPIC)] == [b"REF-1"]
    assert h.count("podlink_records_total", topic=SPA_TOPIC, type="unreadable", outcome="dead-letter") == 1
    assert h.count("podlink_processing_latency_seconds_count") == 2
    assert h.catch_up.position(TP(SPA_TOPIC, 0), None) == 2


@pytest.mark.parametrize("value", [b"[" * 100_000 + b"]" * 100_000, b'{"n":' + b"9" * 5000 + b"}",
                                   b"\xff\xfe", b"", b"[1,2]"],
                         ids=["nested", "long-number", "not-utf8", "empty", "not-an-object"])
def test_poison_values_are_dead_lettered(h, value):
    h.handler().handle(Message(b"REF-P", value, offset=0))
    (_, sent, headers), = h.to(DEAD_LETTER_TOPIC)
    assert sent == value and headers["podlink-error"]


def test_an_event_that_fails_to_process_is_dead_lettered_with_the_reason(h):
    h.episodes[b"REF-1"] = b'{"not": "an episode"}'
    h.handler().handle(referral(offset=5))
    (key, _, headers), = h.to(DEAD_LETTER_TOPIC)
    assert key == b"REF-1"
    assert headers["podlink-error"] == b"podlink could not process the event (ValidationError)"
    assert h.to(FHIR_TOPIC) == [] and h.episodes[b"REF-1"] == b'{"not": "an episode"}'
    assert h.count("podlink_records_total", topic=SPA_TOPIC, type="uk.nhs.spa.referral.received",
                   outcome="dead-letter") == 1


class Writes(dict):
    """A table that notes every key written, the same value again included."""

    def __init__(self) -> None:
        super().__init__()
        self.written: list[bytes] = []

    def __setitem__(self, key: bytes, value: bytes) -> None:
        self.written.append(key)
        super().__setitem__(key, value)


def test_a_replay_writes_the_stored_episode_and_deadline_entry_again_for_the_changelog():
    # A worker killed after its store had the writes and before the changelog did: what it
    # reads again are replays, and writing what the store holds again (unchanged) is what puts
    # it in the changelog that standbys and a worker without this disk recover from.
    h = Harness(episodes=Writes(), deadlines=Writes())
    handler = h.handler()
    records = pathway("REF-1", T0, "on-time")
    for offset, record in enumerate(records[:3]):
        handler.handle(Message(record.key.encode(), json_bytes(record.value), offset))
    stored = dict(h.episodes), dict(h.deadlines)
    h.episodes.written.clear(), h.deadlines.written.clear()
    handler.handle(Message(records[1].key.encode(), json_bytes(records[1].value), 1))
    assert h.count("podlink_records_total", topic=SPA_TOPIC, type="uk.nhs.spa.referral.accepted",
                   outcome="replayed") == 1
    assert (h.episodes.written, h.deadlines.written) == ([b"REF-1"], [b"REF-1"])
    assert (dict(h.episodes), dict(h.deadlines)) == stored


def test_a_duplicate_from_the_source_writes_nothing():
    h = Harness(episodes=Writes(), deadlines=Writes())
    handler = h.handler()
    record = pathway("REF-1", T0, "on-time")[0]
    handler.handle(Message(record.key.encode(), json_bytes(record.value), 0))
    h.episodes.written.clear(), h.deadlines.written.clear()
    handler.handle(Message(record.key.encode(), json_bytes(record.value), 5))
    assert h.count("podlink_records_total", topic=SPA_TOPIC, type="uk.nhs.spa.referral.received",
                   outcome="duplicate") == 1
    assert (h.episodes.written, h.deadlines.written) == ([], [])


def test_a_record_dead_lettered_before_is_not_dead_lettered_or_counted_again(h):
    bad = Message(b"REF-9", b"{ not json", offset=4)
    handler = h.handler()
    handler.handle(bad)
    assert h.marks == {f"{SPA_TOPIC}/0".encode(): b"4"}
    handler.handle(bad)  # a replay, or a re-read after a rebalance
    handler.handle(Message(b"REF-8", b"{ not json", offset=3))  # read before it, so dead-lettered then
    assert len(h.to(DEAD_LETTER_TOPIC)) == 1
    assert h.count("podlink_dead_letters_total", reason="value is not JSON (line N, column N)") == 1
    assert h.count("podlink_records_total", topic=SPA_TOPIC, type="unreadable", outcome="replayed") == 2
    # A later record, and the same offset on another partition, are new.
    handler.handle(Message(b"REF-7", b"{ not json", offset=5))
    handler.handle(Message(b"REF-9", b"{ not json", offset=4, partition=1))
    assert [h_["podlink-source-offset"] for _, _, h_ in h.to(DEAD_LETTER_TOPIC)] == [b"4", b"5", b"4"]


def test_a_value_too_large_to_send_on_is_dead_lettered_without_it(h):
    value = b"x" * 20_000
    h.handler(max_record_bytes=20_000).handle(Message(b"REF-BIG", value, offset=0))
    (key, sent, headers), = h.to(DEAD_LETTER_TOPIC)
    assert (key, sent) == (b"REF-BIG", None)
    assert headers["podlink-value-omitted"] == b"20000 bytes" and headers["podlink-source-offset"] == b"0"
    # One byte less and it would have fitted, with room for the framing and the headers.
    h.handler(max_record_bytes=20_000 + len(b"REF-BIG") + records.RECORD_OVERHEAD_BYTES).handle(
        Message(b"REF-BIG", value, offset=1))
    assert h.to(DEAD_LETTER_TOPIC)[1][1] == value


def test_a_rule_that_raises_is_logged_and_counted_and_the_event_still_applied(h):
    from structlog.testing import capture_logs

    from podlink.streams.core.rules import Rule

    def trust_rule(given):
        raise KeyError("Jordan Example")  # a message may quote patient data: never shown

    with capture_logs() as logged:
        h.handler(policy=Policy(rules=(Rule("trust-rule", trust_rule), *Policy().rules))).handle(referral(offset=0))
    assert set(h.episodes) == {b"REF-1"} and h.to(FHIR_TOPIC) and h.to(DEAD_LETTER_TOPIC) == []
    assert h.count("podlink_rule_failures_total", rule="trust-rule") == 1
    assert h.count("podlink_records_total", topic=SPA_TOPIC, type="uk.nhs.spa.referral.received",
                   outcome="applied") == 1
    failed, = (e for e in logged if e["event"].startswith("rule failed"))
    assert (failed["rule"], failed["error"], failed["referral"]) == ("trust-rule", "KeyError", "REF-1")
    assert "Jordan" not in repr(logged)


def test_fhir_messages_name_podlinks_own_terms_under_the_configured_base_url(h):
    h.handler(fhir_base_url="https://fhir.trust.example/podlink").handle(referral(offset=0))
    [(_, value, _)] = h.to(FHIR_TOPIC)
    bundle = json.loads(value)
    request = next(e["resource"] for e in bundle["entry"] if e["resource"]["resourceType"] == "ServiceRequest")
    assert request["identifier"][0]["system"] == "https://fhir.trust.example/podlink/Id/referral-id"
    assert b"podlink.example.org" not in value


def test_at_info_records_are_counted_once_a_second_instead_of_logged_one_by_one(h):
    import logging

    import structlog
    from structlog.testing import capture_logs

    ticks = iter([0.0, 0.4, 1.2])
    handler = h.handler()
    handler.clock = lambda: next(ticks)
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.INFO))
    try:
        with capture_logs() as logged:
            handler.handle(referral("REF-1", offset=0))
            handler.handle(Message(b"REF-9", b"{ not json", offset=1))
            handler.handle(referral("REF-2", offset=2))
    finally:
        structlog.reset_defaults()
    assert [e["event"] for e in logged] == ["record rejected", "records"]
    assert {k: v for k, v in logged[1].items() if k != "log_level"} == {
        "event": "records", "seconds": 1.2, "records": 3, "applied": 2, "dead_letter": 1}


def test_at_debug_each_record_has_its_line_and_no_summary(h):
    from structlog.testing import capture_logs

    handler = h.handler()
    handler.clock = iter([0.0, 5.0]).__next__
    with capture_logs() as logged:
        handler.handle(referral("REF-1", offset=0))
        handler.handle(referral("REF-2", offset=1))
    assert [(e["event"], e["referral"]) for e in logged] == [("record", "REF-1"), ("record", "REF-2")]
