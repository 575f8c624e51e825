"""A batch of input records handled by the worker and its helper process together.

The batch is grouped by referral (records.groups). A share of the referrals, chosen by a hash
of the key, goes to the helper (work_helper.py) with each episode as the table holds it; the
worker works the others out meanwhile, a slice at a time, and carries out every outcome as
it comes: its own, and the helper's between its slices and once its own are done.

Why this keeps every guarantee of records.py: a referral is worked out in one place only, from
the table as it is when the batch starts, and nothing else writes its episode or deadline
entry while the batch is handled; every outcome is carried out by the worker (sends, table
writes, dead-letter marks, catch-up positions) before the batch is acknowledged. If the helper
is lost, the referrals it was given and has not answered for are worked out here, from the
table, which none of their records have touched yet.

The share follows the two processes' pace: larger while the helper answers before the worker
is done with its own, smaller while the worker waits for it.
"""
from __future__ import annotations

import asyncio
import dataclasses
import time
import zlib
from collections.abc import Awaitable, Callable, Sequence

import structlog
from mode import Service

from podlink.streams.worker.group_work import GroupOutcome, GroupWork, Readable
from podlink.streams.worker.records import Message, RecordHandler, WritingAs, groups
from podlink.streams.worker.work_helper import HelperLost, WorkHelper

log = structlog.get_logger("podlink")

Pause = Callable[[], Awaitable[None]]
# Referrals are handed out in 64ths: the share moves by one at a time.
SHARE_SCALE = 64
# Handled in slices of this many records, with a pause (app.py: the loop may be yielded) after
# each; a referral with more records than this in one batch stays with the worker, and so does
# a batch of one slice (the helper's round trip would cost it more than it saves).
SLICE_RECORDS = 20
# After a helper is lost, how long the worker works alone before it starts another.
RESTART_SECONDS = 30.0


@dataclasses.dataclass
class Share:
    """Which referrals go to the helper: those whose key hashes below `level` of SHARE_SCALE."""

    level: int = SHARE_SCALE // 2

    def helper_takes(self, key: bytes) -> bool:
        return zlib.crc32(key) % SHARE_SCALE < self.level

    def after(self, helper_seconds: float, worker_seconds: float) -> None:
        """Moves the share after a batch by what the helper spent working its share out
        against what the worker spent on the rest meanwhile: up if the helper had time to
        spare, down if the worker had."""
        if helper_seconds < worker_seconds:
            self.level = min(self.level + 1, SHARE_SCALE - 1)
        else:
            self.level = max(self.level - 1, 1)


class BatchSharing(Service):
    """A dependency of the Faust app: starts the helper with it, stops it with it, and starts
    another RESTART_SECONDS after one is lost."""

    def __init__(self, handler: RecordHandler, enabled: bool, clock: Callable[[], float] = time.monotonic,
                 helper: Callable[[GroupWork], WorkHelper] = WorkHelper) -> None:
        super().__init__()
        self._handler = handler
        self._new_helper = helper
        self._enabled = enabled
        self._clock = clock
        self.share = Share()
        self._helper: WorkHelper | None = None
        self._lost_at: float | None = None

    async def on_start(self) -> None:
        if self._enabled:
            await self._start_helper()

    async def on_stop(self) -> None:
        if self._helper is not None:
            await self._helper.stop()

    async def _start_helper(self) -> None:
        self._helper = self._new_helper(self._handler.work)
        try:
            await self._helper.start()
        except Exception as exc:  # noqa: BLE001 - the worker works alone then
            log.warning("work helper could not start; the worker works alone", reason=type(exc).__name__)
            self._helper, self._lost_at = None, self._clock()

    async def handle(self, messages: Sequence[Message], writing_as: WritingAs, pause: Pause) -> None:
        """The records of one batch, in the order the consumer returned them (records.handle_batch)."""
        if self._enabled and self._helper is None and self._lost_at is not None \
                and self._clock() - self._lost_at >= RESTART_SECONDS:
            await self._start_helper()
        if self._helper is not None and self._helper.lost:
            await self._helper.stop()
            self._helper, self._lost_at = None, self._clock()
        helper = self._helper if self._helper is not None and self._helper.ready else None
        shared, lost = await handle_shared(self._handler, helper, self.share, messages, writing_as, pause)
        if lost and self._helper is not None:
            await self._helper.stop()
            self._helper, self._lost_at = None, self._clock()
        self._handler.metrics.work_helper_share.set(shared / SHARE_SCALE)


async def handle_shared(handler: RecordHandler, helper: WorkHelper | None, share: Share,
                        messages: Sequence[Message], writing_as: WritingAs, pause: Pause) -> tuple[int, bool]:
    """Handles a batch with the helper's help if there is one. Returns the share the helper
    worked out (in SHARE_SCALE-ths; 0 if none) and whether the helper was lost."""
    batch = handler.begin()
    by_key = groups(messages)
    given: dict[bytes | None, list[tuple[int, Readable]]] = {}
    lost = False
    if helper is not None and len(messages) > SLICE_RECORDS and len(by_key) > 1:
        given = {key: records for key, records in by_key.items()
                 if key is not None and len(records) <= SLICE_RECORDS and share.helper_takes(key)}
        try:
            if given:
                helper.submit([handler.job(key, records) for key, records in given.items()])
        except HelperLost:
            given, lost = {}, True
    asked, level = bool(given), share.level
    helping = helper if asked else None  # None once the helper is lost
    helper_busy = helper.busy_seconds if helper is not None else 0.0
    worker_started = time.process_time()

    def carry_out(outcomes: list[GroupOutcome]) -> None:
        for outcome in outcomes:
            if given.pop(outcome.key, None) is not None:
                handler.carry_out(messages, outcome, batch, writing_as)

    async def work_out_here(work: dict[bytes | None, list[tuple[int, Readable]]]) -> None:
        held = 0
        for key, records in work.items():
            for start in range(0, len(records), SLICE_RECORDS):
                part = records[start:start + SLICE_RECORDS]
                handler.carry_out(messages, handler.work_out(handler.job(key, part)), batch, writing_as)
                held += len(part)
                if held >= SLICE_RECORDS:
                    if helping is not None:
                        carry_out(helping.take())
                    await pause()
                    held = 0

    await work_out_here({key: records for key, records in by_key.items() if key not in given})
    if helping is not None:
        worker_seconds = time.process_time() - worker_started
        try:
            while given:
                carry_out(await helping.next())
                await pause()
            share.after(helping.busy_seconds - helper_busy, worker_seconds)
        except HelperLost:
            helping, lost = None, True
    if given:  # the helper was lost: none of these records is carried out yet
        await work_out_here(dict(given))
    handler.finish(messages, batch)
    return (level if asked and not lost else 0), lost
