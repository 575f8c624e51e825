"""Does any input record go unhandled when records arrive while two workers split the partitions?

`python -m podlink_devtools.rebalance_soak ROUNDS`: each round starts a new Apache Kafka jar
broker and two workers in one group (six partitions), waits until their latest assignments
split the partitions between them, sends 36 pathways' first four events at once (so the first
records of every partition arrive while both workers recover their tables), waits 60 s (long
enough for the progress check to send a consumer back to records it dropped with none after
them), and compares the input topics' end offsets with the offsets the workers logged
handling. Reports each round's missing offsets, how often the workers read skipped records
straight from the broker or sent their consumer back, and how many rounds lost a record. Run it on a busy machine (two
`python3 -c "while True: pass"` beside it): that is where Faust dropped records it had
fetched (docs/performance.md, third round).
"""
from __future__ import annotations

import argparse
import json
import shutil
import tempfile
import time
import uuid
from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta, timezone
from pathlib import Path

from kafka import KafkaConsumer, TopicPartition

from podlink.services.samples import pathway, send_records
from podlink.streams.worker.settings import INPUT_TOPICS
from podlink_devtools.apache_kafka import ApacheKafkaBroker
from podlink_devtools.worker_process import WorkerProcess

PARTITIONS = 6
PATHWAYS = 36
# What the workers' logs say when they make up for records Faust dropped.
REMEDIES = {"direct reads": "input records the consumer skipped, read from the broker",
            "consumer sent back": "input records waiting that the consumer did not give"}
SETTLE_SECONDS = 60.0  # the progress check's default: 30 s quiet, looked at every 7.5 s


def missing_offsets(ends: Mapping[tuple[str, int], int],
                    handled: Iterable[tuple[str, int, int]]) -> dict[tuple[str, int], list[int]]:
    """Per partition, the offsets below its end that no worker handled."""
    seen = set(handled)
    gaps = {tp: [o for o in range(end) if (*tp, o) not in seen] for tp, end in ends.items()}
    return {tp: offsets for tp, offsets in gaps.items() if offsets}


def _lines(worker: WorkerProcess) -> list[dict]:
    found = []
    for text in worker.log_text().splitlines():
        if text.startswith("{"):
            try:
                found.append(json.loads(text))
            except ValueError:  # a line another thread wrote into: not a record line
                continue
    return found


def _latest_assignment(worker: WorkerProcess) -> set[int]:
    assigned = [set(line["partitions"]) for line in _lines(worker) if line.get("event") == "partitions assigned"]
    return assigned[-1] if assigned else set()


def _round(work_dir: Path) -> tuple[dict[tuple[str, int], list[int]], dict[str, int]]:
    with ApacheKafkaBroker() as broker:
        group = f"podlink-soak-{uuid.uuid4().hex[:8]}"
        workers = []
        try:
            for i in range(2):
                worker = WorkerProcess(broker.bootstrap, work_dir / f"worker-{i}", group,
                                       {"PODLINK_PARTITIONS": str(PARTITIONS)}).start()
                worker.wait_for_log(lambda line: line.get("event") == "worker starting", 60)
                workers.append(worker)
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline:
                a, b = (_latest_assignment(w) for w in workers)
                if a and b and not a & b and len(a | b) == PARTITIONS:
                    break
                time.sleep(0.25)
            at = datetime.now(timezone.utc) - timedelta(hours=16)
            send_records(broker.bootstrap, [r for i in range(PATHWAYS)
                                            for r in pathway(f"SOAK-{i:03d}", at, "on-time", n=i)[:4]])
            time.sleep(SETTLE_SECONDS)
            consumer = KafkaConsumer(bootstrap_servers=broker.bootstrap)
            try:
                ends = consumer.end_offsets([TopicPartition(t, p) for t in INPUT_TOPICS for p in range(PARTITIONS)])
            finally:
                consumer.close()
            handled = ((line["topic"], line["partition"], line["offset"])
                       for w in workers for line in _lines(w) if line.get("event") == "record")
            remedies = {name: sum(1 for w in workers for line in _lines(w) if line.get("event", "").startswith(event))
                        for name, event in REMEDIES.items()}
            return missing_offsets({(tp.topic, tp.partition): end for tp, end in ends.items()}, handled), remedies
        finally:
            for worker in workers:
                worker.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("rounds", type=int)
    rounds = parser.parse_args().rounds
    lost = 0
    for n in range(rounds):
        work_dir = Path(tempfile.mkdtemp(prefix="podlink-soak-"))
        missing, remedies = _round(work_dir)
        lost += bool(missing)
        said = ", ".join(f"{name} {count}" for name, count in remedies.items())
        if missing:  # the workers' logs say why
            print(f"rebalance-soak: round {n + 1} of {rounds}: missing {missing} ({said}); logs in {work_dir}",
                  flush=True)
        else:
            shutil.rmtree(work_dir)
            print(f"rebalance-soak: round {n + 1} of {rounds}: every record handled ({said})", flush=True)
    print(f"rebalance-soak: {lost} of {rounds} rounds lost a record")


if __name__ == "__main__":
    main()
