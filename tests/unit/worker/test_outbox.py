"""The outbox hands a slice's records to the producer in order, and reports each changelog
partition's delivery once, with the offset of its last record."""
from __future__ import annotations

import asyncio
from types import SimpleNamespace

import pytest

from podlink.streams.worker.outbox import Outbox


class _Producer:
    """Queues what it is given; each record is delivered at the next offset of its partition."""

    def __init__(self, refuse: str | None = None, fail: str | None = None) -> None:
        self.sent: list[tuple] = []
        self.offsets: dict[tuple[str, int | None], int] = {}
        self._refuse, self._fail = refuse, fail

    async def send(self, topic, key, value, partition, timestamp, headers) -> asyncio.Future:
        if topic == self._refuse:
            raise RuntimeError("refused")
        self.sent.append((topic, key, value, partition, headers))
        sent = asyncio.get_running_loop().create_future()
        if topic == self._fail:
            sent.set_exception(RuntimeError("not taken"))
        else:
            offset = self.offsets.get((topic, partition), 100)
            self.offsets[(topic, partition)] = offset + 1
            sent.set_result(SimpleNamespace(offset=offset))
        return sent


def _run(producer: _Producer, fill) -> tuple[list[tuple], list[BaseException | None]]:
    reported: list[tuple] = []
    failures: list[BaseException | None] = []

    async def go() -> None:
        outbox = Outbox(producer.send, failures.append)
        fill(outbox, reported)
        await outbox.send()
        await asyncio.sleep(0)  # the futures' callbacks run
        await outbox.send()  # nothing is sent twice

    asyncio.run(go())
    return reported, failures


def _fill(outbox: Outbox, reported: list[tuple]) -> None:
    outbox.add("fhir", b"A", b"1", [("ce_type", b"x")])
    for key, partition in ((b"A", 0), (b"B", 1), (b"C", 0)):
        outbox.add_changelog("episodes-changelog", partition, key, b"e" + key,
                             lambda offset, key=key: reported.append(("episodes", key, offset)))
    outbox.add_changelog("deadlines-changelog", 0, b"A", b"d",
                         lambda offset: reported.append(("deadlines", b"A", offset)))
    outbox.add("outcomes", b"A", b"2", [])


def test_records_go_in_the_order_added_and_each_changelog_partition_reports_its_last_delivery():
    producer = _Producer()
    reported, failures = _run(producer, _fill)
    assert producer.sent == [
        ("fhir", b"A", b"1", None, [("ce_type", b"x")]),
        ("episodes-changelog", b"A", b"eA", 0, []),
        ("episodes-changelog", b"B", b"eB", 1, []),
        ("episodes-changelog", b"C", b"eC", 0, []),
        ("deadlines-changelog", b"A", b"d", 0, []),
        ("outcomes", b"A", b"2", None, []),
    ]
    # Partition 0 of the episodes' changelog took offsets 100 and 101: only C's, the last, says so.
    assert sorted(reported) == [("deadlines", b"A", 100), ("episodes", b"B", 100), ("episodes", b"C", 101)]
    assert failures == []


@pytest.mark.parametrize("producer", [_Producer(refuse="outcomes"), _Producer(fail="outcomes")],
                         ids=["refused", "not taken"])
def test_a_record_the_producer_refuses_or_the_broker_does_not_take_is_reported(producer):
    _, failures = _run(producer, _fill)
    assert [str(f) for f in failures] == ["refused" if producer._refuse else "not taken"]


def test_a_changelog_record_not_taken_reports_no_delivery():
    reported, failures = _run(_Producer(fail="deadlines-changelog"), _fill)
    assert ("deadlines", b"A", 100) not in reported and len(failures) == 1
