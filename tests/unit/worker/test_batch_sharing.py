"""A batch shared with the helper process (batch_sharing.py, work_helper.py): what is sent and
stored is what the worker alone sends and stores, whatever becomes of the helper."""
from __future__ import annotations

import asyncio
import os
import signal
import sys
from collections import defaultdict
from collections.abc import Callable, Sequence
from contextlib import nullcontext

import pytest

from podlink.streams.worker.batch_sharing import SHARE_SCALE, BatchSharing, Share
from podlink.streams.worker.catchup import CatchUp
from podlink.streams.worker.group_work import GroupWork
from podlink.streams.worker.metrics import Metrics
from podlink.streams.worker.policy_loading import load_policy
from podlink.streams.worker.records import RecordHandler
from podlink.streams.worker.work_helper import WorkHelper
from tests.unit.worker.test_outputs_unchanged import FINGERPRINT, SLICE, records
from tests.unit.worker.test_records import Message

BATCH = 60  # several slices, many referrals: some go to the helper, some stay


class _Run:
    """A record handler over dict tables, collecting what it sends."""

    def __init__(self) -> None:
        self.episodes: dict[bytes, bytes] = {}
        self.deadlines: dict[bytes, bytes] = {}
        self.marks: dict[bytes, bytes] = {}
        self.sent: list[tuple[object, ...]] = []

    def handler(self) -> RecordHandler:
        return RecordHandler(load_policy(None, None).policy, self.episodes, self.deadlines, self.marks,
                             lambda *record: self.sent.append(record), Metrics(), CatchUp(quiet_seconds=3),
                             1_000_000, rules_fingerprint=FINGERPRINT, validate_fhir=False)

    def result(self) -> tuple[dict[object, list[tuple[object, ...]]], dict[bytes, bytes], dict[bytes, bytes],
                              dict[bytes, bytes]]:
        """What was sent, per topic and key in the order sent (Kafka keeps no order across
        keys), and every table."""
        per_key: dict[object, list[tuple[object, ...]]] = defaultdict(list)
        for topic, key, value, headers in self.sent:
            per_key[(topic, key)].append((value, [(name, bytes(v)) for name, v in headers]))
        return dict(per_key), self.episodes, self.deadlines, self.marks


def _alone() -> tuple[object, ...]:
    """The worker alone, as test_outputs_unchanged runs it: each record twice (the second time
    a replay, by a new handler over the same tables)."""
    run = _Run()
    batch = records()
    for _ in range(2):
        handler = run.handler()
        for start in range(0, len(batch), SLICE):
            handler.handle_batch(batch[start:start + SLICE])
    return run.result()


async def _shared(helper: Callable[[GroupWork], WorkHelper] = WorkHelper,
                  on_pause: Callable[[BatchSharing], None] = lambda sharing: None,
                  clock: Callable[[], float] = lambda: 0.0) -> tuple[tuple[object, ...], list[BatchSharing]]:
    run = _Run()
    batch: Sequence[Message] = records()
    used = []
    for _ in range(2):
        sharing = BatchSharing(run.handler(), enabled=True, clock=clock, helper=helper)
        used.append(sharing)
        await sharing.start()
        await _until(lambda: sharing._helper is None or sharing._helper.ready or sharing._helper.lost)

        async def pause(sharing: BatchSharing = sharing) -> None:
            on_pause(sharing)
            await asyncio.sleep(0)

        for start in range(0, len(batch), BATCH):
            await sharing.handle(batch[start:start + BATCH], lambda i: nullcontext(), pause)
        await sharing.stop()
    return run.result(), used


def _share_shown(sharing: BatchSharing) -> float:
    return sharing._handler.metrics.work_helper_share._value.get()


async def _until(done: Callable[[], bool], seconds: float = 60.0) -> None:
    for _ in range(int(seconds / 0.05)):
        if done():
            return
        await asyncio.sleep(0.05)
    raise AssertionError("not within 60 s")


def test_a_batch_shared_with_the_helper_sends_and_stores_what_the_worker_alone_does():
    answered: list[float] = []

    class Counted(WorkHelper):
        async def stop(self) -> None:
            answered.append(self.busy_seconds)
            await super().stop()

    shown: list[float] = []
    shared, _ = asyncio.run(_shared(helper=Counted, on_pause=lambda sharing: shown.append(_share_shown(sharing))))
    assert answered and all(seconds > 0 for seconds in answered)  # the helper did work out a share
    assert shared == _alone()
    # What operators see of it: the last batch's share, half at first, moving by 1/64 a batch.
    batches = len(records()) // BATCH + 1
    assert shown[0] == 0 and abs(max(shown) - 0.5) <= batches / SHARE_SCALE


def _signal_the_first_helper(signalled: list[int], sig: signal.Signals) -> Callable[[BatchSharing], None]:
    """At a pause of the first batch the helper has a share of, `sig` to it."""
    def on_pause(sharing: BatchSharing) -> None:
        helper = sharing._helper
        if not signalled and helper is not None and helper.ready and helper.pid is not None:
            os.kill(helper.pid, sig)
            signalled.append(helper.pid)
    return on_pause


def test_a_helper_killed_mid_batch_loses_nothing_and_duplicates_nothing():
    killed: list[int] = []
    shared, used = asyncio.run(_shared(on_pause=_signal_the_first_helper(killed, signal.SIGKILL)))
    assert killed
    assert shared == _alone()
    assert used[0]._helper is None  # given up, to be started again RESTART_SECONDS later
    assert _share_shown(used[0]) == 0


def test_a_helper_that_stops_answering_is_given_up_and_its_share_worked_out_here():
    stopped: list[int] = []
    shared, _ = asyncio.run(_shared(helper=lambda work: WorkHelper(work, timeout_seconds=0.5),
                                       on_pause=_signal_the_first_helper(stopped, signal.SIGSTOP)))
    assert stopped
    assert shared == _alone()
    with pytest.raises(ProcessLookupError):  # killed when given up, and reaped
        os.kill(stopped[0], 0)


def test_a_helper_that_never_starts_leaves_the_worker_alone_until_it_is_started_again():
    failing = (sys.executable, "-c", "import sys; sys.exit(3)")
    started: list[WorkHelper] = []
    now = [0.0]

    def helper(work: GroupWork) -> WorkHelper:
        started.append(WorkHelper(work, command=failing))
        return started[-1]

    async def run() -> None:
        handler = _Run().handler()
        sharing = BatchSharing(handler, enabled=True, clock=lambda: now[0], helper=helper)
        await sharing.start()
        await _until(lambda: started[0].lost)
        batch = records()[:BATCH]

        async def pause() -> None:
            await asyncio.sleep(0)

        await sharing.handle(batch, lambda i: nullcontext(), pause)
        assert len(started) == 1 and sharing._helper is None
        now[0] += 29.0
        await sharing.handle(batch, lambda i: nullcontext(), pause)
        assert len(started) == 1  # not yet: RESTART_SECONDS after it was lost
        now[0] += 1.0
        await sharing.handle(batch, lambda i: nullcontext(), pause)
        assert len(started) == 2
        await sharing.stop()

    asyncio.run(run())


@pytest.mark.parametrize("helper, worker, level", [
    (0.10, 0.20, 33),  # the helper had time to spare: a larger share
    (0.20, 0.10, 31),  # the worker had: a smaller one
    (0.10, 0.10, 31),  # even: the worker, which also carries every outcome out, keeps less
])
def test_the_share_follows_which_process_had_time_to_spare(helper, worker, level):
    share = Share(32)
    share.after(helper, worker)
    assert share.level == level


def test_the_share_never_leaves_either_process_without_work():
    share = Share(SHARE_SCALE - 1)
    share.after(0.0, 1.0)
    assert share.level == SHARE_SCALE - 1
    share = Share(1)
    share.after(1.0, 0.0)
    assert share.level == 1
    taken = sum(share.helper_takes(f"REF-{i:06d}".encode()) for i in range(6_400))
    assert 60 <= taken <= 140  # about 1 in 64
