"""Where the report's records come from: `pod.outcomes.v1` from the beginning (no consumer
group: reading changes nothing), or a file of outcome events, one JSON object a line. Both show a
progress bar when standard error is a terminal."""
from __future__ import annotations

import asyncio
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from aiokafka import AIOKafkaConsumer, TopicPartition
from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeRemainingColumn,
)

from podlink.services.kafka_options import client_options
from podlink.services.topic_reader import NoSuchTopic
from podlink.streams.worker.settings import OUTCOMES_TOPIC, Settings

CLIENT_ID = "podlink-report"
REQUEST_TIMEOUT_MS = 10_000


def file_lines(path: Path | None) -> Iterator[bytes]:
    """The non-blank lines of `path` (standard input for None), with a progress bar by bytes."""
    if path is None:
        yield from (line for line in sys.stdin.buffer if line.strip())
        return
    with path.open("rb") as lines, _progress(f"reading {path.name}", path.stat().st_size, "bytes") as advance:
        for line in lines:
            advance(len(line))
            if line.strip():
                yield line


def topic_values(settings: Settings) -> Iterator[bytes | None]:
    """The values of every record kept on `pod.outcomes.v1`, with a progress bar by records.

    aiokafka with no consumer group (it commits nothing): its record parsing is
    compiled, about 25 times kafka-python's (which `podlink tail` uses through topic_reader),
    and the report must read a trust's whole history. Raises NoSuchTopic when no worker has
    created the topic yet.
    """
    loop = asyncio.new_event_loop()
    try:
        consumer = loop.run_until_complete(_started(settings))
    except BaseException:
        loop.close()
        raise
    try:
        tps, starts, ends = loop.run_until_complete(_from_the_beginning(consumer, settings))
        with _progress(f"reading {OUTCOMES_TOPIC}", sum(ends[tp] - starts[tp] for tp in tps), "records") as advance:
            while True:
                batches = loop.run_until_complete(consumer.getmany(timeout_ms=500, max_records=10_000))
                for records in batches.values():
                    advance(len(records))
                    for record in records:
                        yield record.value
                # Done once past every end offset and a fetch came back empty: some brokers
                # (Tansu) answer end offsets below the last record (as topic_reader does).
                if not batches and all(loop.run_until_complete(consumer.position(tp)) >= ends[tp] for tp in tps):
                    return
    finally:
        loop.run_until_complete(consumer.stop())
        loop.close()


async def _started(settings: Settings) -> AIOKafkaConsumer:
    # Made in a coroutine: an aiokafka client belongs to the running event loop.
    consumer = AIOKafkaConsumer(**client_options(settings), group_id=None, enable_auto_commit=False,
                                client_id=CLIENT_ID, request_timeout_ms=REQUEST_TIMEOUT_MS)
    try:
        await consumer.start()
    except BaseException:
        await consumer.stop()
        raise
    return consumer


async def _from_the_beginning(consumer: AIOKafkaConsumer, settings: Settings
                              ) -> tuple[list[TopicPartition], dict[TopicPartition, int], dict[TopicPartition, int]]:
    """Every partition of the topic, at its earliest record; with the offsets kept.

    Without a group, subscribe() assigns every partition itself, as the worker's alert ledger
    reads its topic: the client's own metadata has no partitions until a topic is subscribed.
    """
    if OUTCOMES_TOPIC not in await consumer.topics():
        raise NoSuchTopic(f"{OUTCOMES_TOPIC} does not exist on {settings.kafka_bootstrap}")
    consumer.subscribe([OUTCOMES_TOPIC])
    waited = 0.0
    while not consumer.assignment():
        if waited > REQUEST_TIMEOUT_MS / 1000:
            raise TimeoutError(f"no partitions of {OUTCOMES_TOPIC} assigned within {waited:.0f} s")
        await asyncio.sleep(0.05)
        waited += 0.05
    tps = sorted(consumer.assignment())
    await consumer.seek_to_beginning(*tps)
    return tps, await consumer.beginning_offsets(tps), await consumer.end_offsets(tps)


def _on_terminal() -> bool:
    return Console(stderr=True).is_terminal


@contextmanager
def _progress(what: str, total: int | None, unit: str) -> Iterator:
    """A function to call with each step done; a bar on a terminal, nothing elsewhere."""
    if not _on_terminal():
        yield lambda steps: None
        return
    count = DownloadColumn() if unit == "bytes" else MofNCompleteColumn()
    columns = [TextColumn(what), BarColumn(), count, TimeRemainingColumn()]
    with Progress(*columns, console=Console(stderr=True), transient=True) as progress:
        task = progress.add_task(what, total=total)
        pending, chunk = 0, 65_536 if unit == "bytes" else 1_000

        def advance(steps: int) -> None:
            # Updating the bar on every record would cost more than reading it.
            nonlocal pending
            pending += steps
            if pending >= chunk:
                progress.advance(task, pending)
                pending = 0

        yield advance
        progress.advance(task, pending)
