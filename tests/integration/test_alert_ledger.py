"""The alert ledger on a real broker: what a restarted ledger knows, and what it no longer holds.

Each test has topics of its own (the broker is shared), named as the worker's are by role.
"""
from __future__ import annotations

import asyncio
import uuid

import pytest
from aiokafka import AIOKafkaProducer
from aiokafka.structs import RecordMetadata

from podlink.streams.core.alerts import alert_event
from podlink.streams.core.deadlines import Deadline
from podlink.streams.worker.alert_ledger import AlertLedger
from podlink.streams.worker.cloudevents_binding import structured
from tests.support.brokers import consume_until, create_topics, produce
from tests.support.episodes import T0, hours

GRACE = 0.5  # seconds an alert may go unrecorded before a ledger that sees it records it


@pytest.fixture
def topics(broker) -> tuple[str, str]:
    suffix = uuid.uuid4().hex[:8]
    alerts, ledger = f"alerts-{suffix}", f"alert-ledger-{suffix}"
    create_topics(broker.bootstrap, [alerts], partitions=2)
    create_topics(broker.bootstrap, [ledger], partitions=2)
    return alerts, ledger


def breach(referral: str) -> dict:
    deadline = Deadline(referral_id=referral, team_code=None, starts_at=T0, due_at=T0 + hours(24),
                        at_risk_from=T0 + hours(18))
    return alert_event(deadline, "breached", T0 + hours(30))


async def send(bootstrap: str, topic: str, alert: dict) -> RecordMetadata:
    """As the worker sends an alert: keyed by referral, structured mode, acknowledged."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()
    try:
        value, headers = structured(alert)
        return await producer.send_and_wait(topic, value, key=alert["subject"].encode(), headers=headers)
    finally:
        await producer.stop()


async def started(bootstrap: str, topics: tuple[str, str]) -> AlertLedger:
    ledger = AlertLedger(bootstrap, *topics, grace_seconds=GRACE)
    await ledger.start()
    assert await ledger.catch_up(timeout=30)
    return ledger


async def eventually(condition, timeout: float = 30.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not condition():
        assert asyncio.get_running_loop().time() < deadline, "condition not met in time"
        await asyncio.sleep(0.1)


def test_an_alert_whose_ledger_record_was_never_written_is_known_after_a_restart(broker, topics):
    """The kill between the send and the ledger record: the broker has the alert, the ledger
    topic does not, and the next ledger to start must still know it (else it pages again)."""
    recorded, unrecorded = breach("REF-LEDGER-1"), breach("REF-LEDGER-2")

    async def scenario() -> None:
        first = await started(broker.bootstrap, topics)
        first.record(recorded["id"], "REF-LEDGER-1", await send(broker.bootstrap, topics[0], recorded))
        # Settled into the ledger topic, with a checkpoint past it.
        await eventually(lambda: first._checkpoints and not first._unrecorded)
        await first.stop()
        # The worker that sent this one was killed before its ledger could record it.
        await send(broker.bootstrap, topics[0], unrecorded)

        second = await started(broker.bootstrap, topics)
        try:
            assert second.raised(recorded["id"])  # from the ledger topic
            assert second.raised(unrecorded["id"])  # from the alerts topic's tail
            assert not second.raised(breach("REF-LEDGER-3")["id"])
            # It records what it found unrecorded once the grace period is over.
            await eventually(lambda: not second._unrecorded)
        finally:
            await second.stop()

    asyncio.run(scenario())
    # The ledger that found it unrecorded recorded it, for the starts after it.
    record = consume_until(broker.bootstrap, topics[1], lambda r: r.key == unrecorded["id"].encode(), 30)
    assert record.value is not None and b'"referral":"REF-LEDGER-2"' in record.value


def test_a_running_ledger_learns_another_workers_alert_that_was_never_recorded(broker, topics):
    """A takeover: the worker that raised the alert was killed before recording it, and the
    worker that takes over its partitions has been running all along."""
    alert = breach("REF-LEDGER-4")

    async def scenario() -> None:
        ledger = await started(broker.bootstrap, topics)
        try:
            await send(broker.bootstrap, topics[0], alert)
            assert await ledger.catch_up(timeout=30)
            assert ledger.raised(alert["id"])
        finally:
            await ledger.stop()

    asyncio.run(scenario())


def test_a_settled_referrals_ids_are_no_longer_held_nor_loaded_by_the_next_start(broker, topics):
    settled, still_open = breach("REF-LEDGER-5"), breach("REF-LEDGER-6")

    async def scenario() -> None:
        first = await started(broker.bootstrap, topics)
        for referral, alert in (("REF-LEDGER-5", settled), ("REF-LEDGER-6", still_open)):
            first.record(alert["id"], referral, await send(broker.bootstrap, topics[0], alert))
        first.forget("REF-LEDGER-5")
        # Dropped once its tombstone is read back, which waits for a checkpoint past the alert.
        await eventually(lambda: not first.raised(settled["id"]))
        assert first.raised(still_open["id"]) and first.held() == 1
        assert not first.holds("REF-LEDGER-5") and first.holds("REF-LEDGER-6")
        await first.stop()

        # The settled alert is still on the alerts topic, below the checkpoint: not read again.
        second = await started(broker.bootstrap, topics)
        try:
            assert (second.raised(settled["id"]), second.raised(still_open["id"])) == (False, True)
            assert second.held() == 1
        finally:
            await second.stop()

    asyncio.run(scenario())


def test_forgetting_a_referral_the_ledger_holds_nothing_of_drops_nothing(broker, topics):
    async def scenario() -> None:
        ledger = await started(broker.bootstrap, topics)
        try:
            alert = breach("REF-LEDGER-7")
            ledger.record(alert["id"], "REF-LEDGER-7", await send(broker.bootstrap, topics[0], alert))
            ledger.forget("REF-LEDGER-UNKNOWN")
            await asyncio.sleep(3 * GRACE + 2)  # two upkeeps at least
            assert ledger.raised(alert["id"]) and ledger.held() == 1
        finally:
            await ledger.stop()

    asyncio.run(scenario())


def test_a_start_reads_the_alerts_topic_only_from_its_checkpoints(broker, topics):
    """Many settled referrals: the next start holds none of them and does not read their alerts."""
    alerts = [breach(f"REF-LEDGER-8-{n}") for n in range(40)]

    async def scenario() -> None:
        first = await started(broker.bootstrap, topics)
        for n, alert in enumerate(alerts):
            first.record(alert["id"], f"REF-LEDGER-8-{n}", await send(broker.bootstrap, topics[0], alert))
            first.forget(f"REF-LEDGER-8-{n}")
        await eventually(lambda: first.held() == 0)
        await first.stop()
        second = await started(broker.bootstrap, topics)
        try:
            assert second.held() == 0
            # Every alert lies below its partition's checkpoint.
            assert sum(second._alerts_read.values()) == len(alerts)
            assert second._alerts_read == second._checkpoints
        finally:
            await second.stop()

    asyncio.run(scenario())


def test_records_it_cannot_read_are_skipped_and_the_rest_still_known(broker, topics):
    alert = breach("REF-LEDGER-9")
    junk = [(b"not-an-alert", b"{not json"), (None, b"[]"), (b"checkpoint:x", b'{"offset": 3}')]
    produce(broker.bootstrap, topics[0], junk[:2])
    produce(broker.bootstrap, topics[1], junk)

    async def scenario() -> None:
        first = await started(broker.bootstrap, topics)
        first.record(alert["id"], "REF-LEDGER-9", await send(broker.bootstrap, topics[0], alert))
        await eventually(lambda: not first._unrecorded)
        await first.stop()
        second = await started(broker.bootstrap, topics)
        try:
            assert second.raised(alert["id"]) and second.held() == 1
        finally:
            await second.stop()

    asyncio.run(scenario())


def test_a_forgotten_id_is_kept_until_a_checkpoint_passes_it(broker):
    """Else the next start, reading the alerts topic from the checkpoint, would find the alert
    again: here an alert no ledger has recorded holds the checkpoint below the forgotten one."""
    suffix = uuid.uuid4().hex[:8]
    topics = (f"alerts-{suffix}", f"alert-ledger-{suffix}")
    create_topics(broker.bootstrap, list(topics), partitions=1)
    unrecorded, settled = breach("REF-LEDGER-10"), breach("REF-LEDGER-11")

    async def scenario() -> None:
        # A long grace period: this ledger does not record the other worker's alert itself.
        ledger = AlertLedger(broker.bootstrap, *topics, grace_seconds=3600)
        await ledger.start()
        try:
            assert await ledger.catch_up(timeout=30)
            await send(broker.bootstrap, topics[0], unrecorded)  # its sender killed before recording it
            ledger.record(settled["id"], "REF-LEDGER-11", await send(broker.bootstrap, topics[0], settled))
            ledger.forget("REF-LEDGER-11")
            await asyncio.sleep(4)  # upkeeps every second
            assert ledger.raised(settled["id"])  # no checkpoint past it: not tombstoned
        finally:
            await ledger.stop()
        after = await started(broker.bootstrap, topics)
        try:
            assert after.raised(unrecorded["id"]) and after.raised(settled["id"])
        finally:
            await after.stop()

    asyncio.run(scenario())
