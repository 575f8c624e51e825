"""`python -m podlink_devtools.handler_bench [PATHWAYS] [--profile]`: what podlink's own work
costs per event, with no broker and no Faust.

The records are `podlink bench`'s (on-time pathways, eight events each), spread over eight
partitions and handed to the worker's `RecordHandler` in slices as the agent hands them,
with dict tables and a producer that only collects. Everything the worker decides is in it:
contract validation, episode state, every shipped policy, FHIR messages, outcome events and
the table encodings. What it leaves out (consumer, changelogs, producer, broker) is what the
ratio of `podlink bench` adds. `--profile` prints cProfile's top entries as well.
"""
from __future__ import annotations

import argparse
import cProfile
import pstats
import time
import zlib
from dataclasses import dataclass

from podlink.services.logs import configure, set_level
from podlink.streams.worker.catchup import CatchUp
from podlink.streams.worker.loop_lag import collect_young_objects_less_often
from podlink.streams.worker.metrics import Metrics
from podlink.streams.worker.policy_loading import load_policy
from podlink.streams.worker.records import RecordHandler
from podlink.streams.worker.settings import Settings
from podlink.streams.worker.batch_sharing import SLICE_RECORDS
from podlink_devtools.bench import _synthetic

PARTITIONS = 8


@dataclass(frozen=True)
class _Message:
    topic: str
    partition: int
    offset: int
    timestamp: float
    key: bytes
    value: bytes


def messages(pathways: int) -> list[_Message]:
    offsets: dict[tuple[str, int], int] = {}
    found = []
    for record in _synthetic("BENCH-HANDLER", pathways):
        partition = zlib.crc32(record.key) % PARTITIONS
        offset = offsets.get((record.topic, partition), 0)
        offsets[(record.topic, partition)] = offset + 1
        found.append(_Message(record.topic, partition, offset, time.time(), record.key, record.value))
    return found


def measure(pathways: int, profile: bool = False) -> str:
    settings = Settings()
    loaded = load_policy(settings.policy_file, settings.teams)
    sent: list[object] = []
    handler = RecordHandler(loaded.policy, {}, {}, {}, lambda *record: sent.append(record), Metrics(),
                            CatchUp(quiet_seconds=3), 1_000_000, rules_fingerprint=loaded.fingerprint,
                            fhir_base_url=settings.fhir_base_url,
                            validate_fhir=settings.fhir_validation == "full")
    records = messages(pathways)
    profiler = cProfile.Profile() if profile else None
    started = time.perf_counter()
    if profiler:
        profiler.enable()
    for start in range(0, len(records), SLICE_RECORDS):
        handler.handle_batch(records[start:start + SLICE_RECORDS])
    if profiler:
        profiler.disable()
    seconds = time.perf_counter() - started
    if profiler:
        pstats.Stats(profiler).sort_stats("tottime").print_stats(30)
    return (f"handler-bench: {len(records)} events in {seconds:.2f} s, {len(records) / seconds:.0f} events/s, "
            f"{seconds / len(records) * 1e6:.0f} us an event, {len(sent)} records sent"
            f"{' (profiled: slower)' if profile else ''}")


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m podlink_devtools.handler_bench", description=__doc__)
    parser.add_argument("pathways", type=int, nargs="?", default=2000)
    parser.add_argument("--profile", action="store_true")
    args = parser.parse_args()
    configure("json")
    collect_young_objects_less_often()  # as a worker does
    set_level("info")  # the per-record lines are at debug, as in a worker
    print(measure(args.pathways, args.profile))


if __name__ == "__main__":
    main()
