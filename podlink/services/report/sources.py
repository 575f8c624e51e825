"""Where the report's records come from: `pod.outcomes.v1` from the beginning (no consumer
group: reading changes nothing), or a file of outcome events, one JSON object a line. Both show a
progress bar when standard error is a terminal."""
from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from kafka import KafkaConsumer, TopicPartition
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from podlink.services.kafka_options import client_options
from podlink.services.topic_reader import NoSuchTopic, read_topic
from podlink.streams.worker.settings import OUTCOMES_TOPIC, Settings

CLIENT_ID = "podlink-report"
BOOTSTRAP_TIMEOUT_MS = 10_000


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
    Raises NoSuchTopic when no worker has created the topic yet."""
    with _progress(f"reading {OUTCOMES_TOPIC}", _records_kept(settings), "records") as advance:
        for record in read_topic(settings, OUTCOMES_TOPIC, CLIENT_ID):
            advance(1)
            yield record.value


def _records_kept(settings: Settings) -> int:
    """About how many records the topic keeps: the bar's length only, as the reader itself does
    not trust end offsets (Tansu's can be short). Asked first, with a shorter wait than the
    client's 30 s, so an unreachable broker is reported soon."""
    consumer = KafkaConsumer(**client_options(settings), group_id=None, enable_auto_commit=False,
                             allow_auto_create_topics=False, client_id=CLIENT_ID,
                             bootstrap_timeout_ms=BOOTSTRAP_TIMEOUT_MS)
    try:
        partitions = consumer.partitions_for_topic(OUTCOMES_TOPIC)
        if not partitions:
            raise NoSuchTopic(f"{OUTCOMES_TOPIC} does not exist on {settings.kafka_bootstrap}")
        tps = [TopicPartition(OUTCOMES_TOPIC, p) for p in partitions]
        starts, ends = consumer.beginning_offsets(tps), consumer.end_offsets(tps)
        return sum(ends[tp] - starts[tp] for tp in tps)
    finally:
        consumer.close()


def _on_terminal() -> bool:
    return Console(stderr=True).is_terminal


@contextmanager
def _progress(what: str, total: int | None, unit: str) -> Iterator:
    """A function to call with each step done; a bar on a terminal, nothing elsewhere."""
    if not _on_terminal():
        yield lambda steps: None
        return
    columns = [TextColumn(f"{what} ({unit})"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn()]
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
