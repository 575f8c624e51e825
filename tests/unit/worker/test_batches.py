"""A batch of records grouped by referral does exactly what the same records one at a time do."""
from __future__ import annotations

import json
from collections import defaultdict
from itertools import zip_longest

from faust.types import TP

from podlink.services.samples import pathway
from podlink.streams.core.encoding import json_bytes
from podlink.streams.worker.settings import DEAD_LETTER_TOPIC, FHIR_TOPIC, OUTCOMES_TOPIC, SPA_TOPIC
from tests.support.episodes import T0
from tests.unit.worker.test_records import Harness, Message

CARE_TOPIC = "pod.care-events.v1"


def mixed_batch() -> list[Message]:
    """Three referrals interleaved (two on partition 0, one on partition 1), with a record that
    is not JSON, a duplicate delivery of an event at a new offset, and two replays (records of
    events already applied, read again at their own offsets)."""
    pathways = {
        ("REF-A", 0): pathway("REF-A", T0, "on-time"),       # 8 events
        ("REF-B", 1): pathway("REF-B", T0, "care-first"),    # 2 care events before the referral
        ("REF-C", 0): pathway("REF-C", T0, "breached"),      # 3 events
    }
    next_offset: dict[tuple[str, int], int] = defaultdict(int)

    def message(topic: str, partition: int, key: bytes, value: bytes) -> Message:
        offset = next_offset[(topic, partition)]
        next_offset[(topic, partition)] += 1
        return Message(key, value, offset, partition, topic)

    batch: list[Message] = []
    rounds = zip_longest(*[[(partition, r) for r in records] for (_, partition), records in pathways.items()])
    for n, row in enumerate(rounds):
        for item in row:
            if item is not None:
                partition, record = item
                batch.append(message(record.topic, partition, record.key.encode(), json_bytes(record.value)))
        if n == 1:
            batch.append(message(SPA_TOPIC, 0, b"REF-A", b"{ not json"))
    accepted_a = next(m for m in batch if m.key == b"REF-A" and b"referral.accepted" in (m.value or b""))
    batch.append(message(accepted_a.topic, accepted_a.partition, accepted_a.key or b"", accepted_a.value or b""))
    contact_a = next(m for m in batch if m.key == b"REF-A" and b"contact.made" in (m.value or b""))
    batch.append(contact_a)  # the same topic, partition and offset: a replay
    # A replay of the meeting that met REF-A's first-meeting deadline sends that news again.
    batch.append(next(m for m in batch if m.key == b"REF-A" and b"meeting.held" in (m.value or b"")))
    return batch


def outputs_by_key(h: Harness) -> dict[tuple[str, bytes | None], list[tuple[bytes | None, dict[str, bytes]]]]:
    # Kafka orders records per key (one partition); across keys there is no order to keep.
    found: dict[tuple[str, bytes | None], list[tuple[bytes | None, dict[str, bytes]]]] = defaultdict(list)
    for topic, key, value, headers in h.sent:
        found[(topic, key)].append((value, dict(headers)))
    return dict(found)


def counts(h: Harness) -> dict[tuple[str, str], float]:
    return {(s.labels["type"], s.labels["outcome"]): s.value
            for metric in h.metrics.registry.collect() if metric.name == "podlink_records"
            for s in metric.samples if s.name == "podlink_records_total"}


def test_a_mixed_batch_gives_exactly_what_the_records_one_at_a_time_give():
    batch = mixed_batch()
    one_at_a_time, batched = Harness(), Harness()
    per_record = one_at_a_time.handler()
    for message in batch:
        per_record.handle(message)
    batched.handler().handle_batch(batch)

    assert batched.episodes == one_at_a_time.episodes
    assert batched.deadlines == one_at_a_time.deadlines
    assert batched.marks == one_at_a_time.marks
    assert outputs_by_key(batched) == outputs_by_key(one_at_a_time)
    assert counts(batched) == counts(one_at_a_time)
    for tp in {TP(m.topic, m.partition) for m in batch}:
        assert batched.catch_up.position(tp, None) == one_at_a_time.catch_up.position(tp, None)

    # What both must be, worked out from the pathways: REF-A 8 events applied, plus its
    # contact.made and first meeting replayed (sent again); REF-B's two care events wait, then
    # its referral releases them (three messages for one record) and 5 more apply; REF-C 3.
    fhir = [key for topic, key, _, _ in batched.sent if topic == FHIR_TOPIC]
    assert (fhir.count(b"REF-A"), fhir.count(b"REF-B"), fhir.count(b"REF-C")) == (10, 8, 3)
    met = [json.loads(v)["type"] for t, k, v, _ in batched.sent
           if t == OUTCOMES_TOPIC and k == b"REF-A" and b"deadline.met" in (v or b"")]
    assert met == ["uk.nhs.podlink.deadline.met"] * 2  # applied, then replayed
    outcomes = {verdict: 0.0 for verdict in ("applied", "pending", "duplicate", "replayed", "dead-letter")}
    for (_, outcome), n in counts(batched).items():
        outcomes[outcome] += n
    assert outcomes == {"applied": 17, "pending": 2, "duplicate": 1, "replayed": 2, "dead-letter": 1}
    (key, value, headers), = [(k, v, dict(hs)) for t, k, v, hs in batched.sent if t == DEAD_LETTER_TOPIC]
    # Partition 0 of the referral topic: A and C received (0, 1), accepted (2, 3), then the bad one.
    assert (key, value, headers["podlink-source-offset"]) == (b"REF-A", b"{ not json", b"4")
    assert batched.marks == {f"{SPA_TOPIC}/0".encode(): b"4"}
    # The episode as stored once: a duplicate's offset (5) is not recorded as read; REF-A's
    # last care event is offset 6 (A and C's contacts at 0 and 1, then A's five).
    episode_a = json.loads(batched.episodes[b"REF-A"])
    assert episode_a["positions"] == {f"{SPA_TOPIC}/0": 2, f"{CARE_TOPIC}/0": 6}


def test_each_referral_is_loaded_and_stored_once_per_batch():
    class Counting(dict):  # type: ignore[type-arg]
        def __init__(self) -> None:
            super().__init__()
            self.reads = 0
            self.writes = 0

        def get(self, key, default=None):  # type: ignore[no-untyped-def]
            self.reads += 1
            return super().get(key, default)

        def __setitem__(self, key, value):  # type: ignore[no-untyped-def]
            self.writes += 1
            super().__setitem__(key, value)

    h = Harness(episodes=Counting())
    h.handler().handle_batch(mixed_batch())
    assert (h.episodes.reads, h.episodes.writes) == (3, 3)


def test_a_record_dead_lettered_earlier_in_the_same_batch_is_a_replay_when_read_again():
    h = Harness()
    bad = Message(b"REF-9", b"{ not json", offset=4)
    h.handler().handle_batch([bad, Message(b"REF-8", b"{ not json", offset=5), bad])
    assert [dict(hs)["podlink-source-offset"] for t, _, _, hs in h.sent if t == DEAD_LETTER_TOPIC] == [b"4", b"5"]
    assert h.marks == {f"{SPA_TOPIC}/0".encode(): b"5"}


def test_kept_episodes_change_nothing_that_is_sent_or_stored():
    kept, not_kept = Harness(), Harness()
    with_cache, without = kept.handler(), not_kept.handler(recent_episodes=0)
    for message in mixed_batch():
        with_cache.handle(message)
        without.handle(message)
    assert kept.sent == not_kept.sent
    assert (kept.episodes, kept.deadlines) == (not_kept.episodes, not_kept.deadlines)


def test_an_episode_written_by_another_worker_is_read_from_the_table_not_from_what_was_kept():
    records = [Message(r.key.encode(), json_bytes(r.value), offset, 0, r.topic)
               for offset, r in enumerate(pathway("REF-A", T0, "on-time"))]
    here, elsewhere = Harness(), Harness()
    worker_here, worker_elsewhere = here.handler(), elsewhere.handler()
    for message in records[:2]:
        worker_here.handle(message)  # keeps the episode after received and accepted
    for message in records[:3]:
        worker_elsewhere.handle(message)
    # The partition moved away and back: the table now holds the episode after first contact.
    here.episodes[b"REF-A"] = elsewhere.episodes[b"REF-A"]
    here.sent.clear()
    elsewhere.sent.clear()
    worker_here.handle(records[3])
    worker_elsewhere.handle(records[3])
    assert here.sent == elsewhere.sent and here.sent
    assert here.episodes[b"REF-A"] == elsewhere.episodes[b"REF-A"]
