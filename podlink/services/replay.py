"""`podlink replay`: move the workers' committed offsets on the input topics back, so they re-read.

Replay only ever moves offsets back: moving one forward would skip records that no worker has
read, and they would never reach an episode. It refuses while any worker of the group runs,
because a running worker would overwrite the new offsets with its next commit.
"""
from __future__ import annotations

import logging
import sys
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal, Sequence, TextIO

from kafka import KafkaAdminClient, TopicPartition
from kafka.admin import OffsetSpec
from kafka.errors import NoError
from kafka.structs import OffsetAndMetadata

from podlink.services.kafka_options import client_options
from podlink.streams.worker.settings import INPUT_TOPICS, Settings

Where = tuple[str, int]  # (topic, partition)


@dataclass(frozen=True)
class Target:
    """Where to go back to: an offset, a time, or the earliest record still on each partition."""

    kind: Literal["offset", "datetime", "earliest"]
    offset: int | None = None
    at: datetime | None = None


@dataclass(frozen=True)
class PartitionOffsets:
    topic: str
    partition: int
    committed: int | None  # the group's next offset to read; None if it never committed here
    earliest: int  # first record still on the partition (older ones went with retention)
    latest: int  # the offset the next record will get


@dataclass(frozen=True)
class Move:
    topic: str
    partition: int
    committed: int | None
    new: int | None  # None: left as it is
    rereads: int
    note: str = ""


def plan_moves(partitions: Sequence[PartitionOffsets], wanted: dict[Where, int]) -> list[Move]:
    """The committed offset each partition gets, and how many records the workers will re-read.

    `wanted` is the target offset per partition (an offset for a time is already resolved).
    """
    moves = []
    for p in partitions:
        target = wanted[(p.topic, p.partition)]
        # Without a commit, or with one older than retention kept, a worker starts at the
        # earliest record anyway (podlink reads from the earliest when it has no offset).
        reading_from = p.earliest if p.committed is None else max(p.committed, p.earliest)
        new = min(max(target, p.earliest), p.latest)
        note = ""
        if target < p.earliest:
            note = f"offset {target} is gone (retention); from the earliest record, {p.earliest}"
        if new >= reading_from:
            note = ("no committed offset: workers read it from the earliest record anyway"
                    if p.committed is None else "already at or before the target: left as it is")
            moves.append(Move(p.topic, p.partition, p.committed, None, 0, note))
        else:
            moves.append(Move(p.topic, p.partition, p.committed, new, reading_from - new, note))
    return moves


def format_plan(group: str, moves: Sequence[Move]) -> str:
    changing = [m for m in moves if m.new is not None]
    lines = [
        f"consumer group {group}: {len(moves)} partition(s), {len(changing)} to move back, "
        f"{sum(m.rereads for m in moves)} records to re-read",
        f"{'topic':<24} {'partition':>9} {'committed':>10} {'new':>10} {'re-read':>8}  note",
    ]
    for m in moves:
        committed = "none" if m.committed is None else str(m.committed)
        new = "-" if m.new is None else str(m.new)
        lines.append(f"{m.topic:<24} {m.partition:>9} {committed:>10} {new:>10} {m.rereads:>8}  {m.note}".rstrip())
    return "\n".join(lines)


def refusal(group: str, description: dict[str, Any]) -> str | None:
    """Why offsets must not be moved now (a worker of the group is running), or None."""
    members = description.get("members") or []
    state = description.get("group_state")
    if not members and state in ("Empty", "Dead"):
        return None
    hosts = sorted({str(m.get("client_host") or "?").lstrip("/") for m in members})
    return (f"consumer group {group} is {state or 'active'} with {len(members)} member(s) "
            f"(hosts: {', '.join(hosts) or 'unknown'}). Stop every podlink worker of the group "
            "(scale it to zero), wait until this command no longer lists members (up to "
            "PODLINK_SESSION_TIMEOUT_SECONDS after a worker was killed), then run it again.")


class ReplayError(RuntimeError):
    """The replay cannot go ahead; the message says why and what to do."""


def _why_not_now(admin: KafkaAdminClient, group: str) -> str | None:
    # kafka-python warns, dumping bytes, that Faust's subscription is not the plain consumer one.
    logging.getLogger("kafka.admin._groups").setLevel(logging.ERROR)
    if group not in {g["group_id"] for g in admin.list_groups()}:
        raise ReplayError(f"no consumer group {group} on the cluster: PODLINK_GROUP_ID must be the "
                          "workers' group, and a worker must have run once")
    try:
        return refusal(group, dict(admin.describe_groups([group])[group]))
    except ValueError as exc:
        # kafka-python cannot decode some brokers' answer (Tansu's authorised operations).
        return (f"cannot tell whether consumer group {group} has running workers: the broker's "
                f"group description could not be read ({exc}). The embedded Tansu broker is one "
                "such broker: replay needs Apache Kafka, or a broker that answers as it does.")


def _partitions(admin: KafkaAdminClient, topics: Sequence[str], partition: int | None) -> list[TopicPartition]:
    tps = []
    for described in admin.describe_topics(list(topics)):
        numbers = sorted(p["partition_index"] for p in described["partitions"])
        if partition is not None and partition not in numbers:
            raise ReplayError(f"{described['name']} has no partition {partition} (it has 0 to {len(numbers) - 1})")
        tps += [TopicPartition(described["name"], n) for n in numbers if partition in (None, n)]
    return tps


def _offsets(admin: KafkaAdminClient, group: str, tps: list[TopicPartition]) -> list[PartitionOffsets]:
    committed = admin.list_group_offsets({group: tps}).get(group, {})
    earliest = admin.list_partition_offsets({tp: OffsetSpec.EARLIEST for tp in tps})
    latest = admin.list_partition_offsets({tp: OffsetSpec.LATEST for tp in tps})
    result = []
    for tp in tps:
        mark = committed.get(tp)
        result.append(PartitionOffsets(
            tp.topic, tp.partition,
            committed=mark.offset if mark is not None and mark.offset >= 0 else None,
            earliest=earliest[tp].offset, latest=latest[tp].offset))
    return result


def _wanted(admin: KafkaAdminClient, target: Target, offsets: list[PartitionOffsets]) -> dict[Where, int]:
    if target.kind == "offset":
        assert target.offset is not None
        return {(p.topic, p.partition): target.offset for p in offsets}
    if target.kind == "earliest":
        return {(p.topic, p.partition): p.earliest for p in offsets}
    assert target.at is not None
    ms = int(target.at.timestamp() * 1000)
    found = admin.list_partition_offsets({TopicPartition(p.topic, p.partition): ms for p in offsets})
    wanted = {}
    for p in offsets:
        offset = found[TopicPartition(p.topic, p.partition)].offset
        # No record at or after that time: the answer is -1, and nothing there needs re-reading.
        wanted[(p.topic, p.partition)] = offset if offset >= 0 else p.latest
    return wanted


def run_replay(settings: Settings, target: Target, topic: str | None, partition: int | None,
               dry_run: bool, out: TextIO = sys.stdout, err: TextIO = sys.stderr) -> int:
    group = settings.group_id
    try:
        admin = KafkaAdminClient(**client_options(settings), client_id="podlink-replay")
    except Exception as exc:  # noqa: BLE001 - say what failed, not a traceback, to operators
        print(f"podlink replay: cannot reach Kafka at {settings.kafka_bootstrap}: {type(exc).__name__}: {exc}",
              file=err)
        return 2
    try:
        refused = _why_not_now(admin, group)
        if refused and not dry_run:
            raise ReplayError(f"refused: {refused}")
        if refused:
            print(f"podlink replay: warning: {refused} The plan below is what it would do now.", file=err)
        offsets = _offsets(admin, group, _partitions(admin, [topic] if topic else INPUT_TOPICS, partition))
        moves = plan_moves(offsets, _wanted(admin, target, offsets))
        print(format_plan(group, moves), file=out)
        changing = {TopicPartition(m.topic, m.partition): OffsetAndMetadata(m.new, "", -1)
                    for m in moves if m.new is not None}
        if dry_run or not changing:
            print("dry run: no offsets changed" if dry_run else "nothing to move", file=out)
            return 0
        failed = {tp: error for tp, error in admin.alter_group_offsets(group, changing).items()
                  if error is not NoError}
        if failed:
            names = ", ".join(f"{tp.topic}/{tp.partition}: {error.__name__}" for tp, error in sorted(failed.items()))
            raise ReplayError(f"the broker refused to move {len(failed)} offset(s) ({names}); if a worker "
                              "started meanwhile, stop it and run this again")
        print(f"moved {len(changing)} partition offset(s) back; start the workers and they re-read "
              f"{sum(m.rereads for m in moves)} records", file=out)
        return 0
    except ReplayError as exc:
        print(f"podlink replay: {exc}", file=err)
        return 2
    finally:
        admin.close()
