"""A second process that works referrals out (group_work.py) for the worker, so that a
saturated worker uses a second core.

At saturation the worker's one thread is the limit while a third of a two-core machine is
idle (docs/performance.md, eighth round). Working a referral's records out touches no table,
producer or log, so it can run anywhere: the worker hands the helper some referrals of a
batch with their episodes as stored, works the others out itself meanwhile, and carries
every outcome out (sends, table writes, dead letters, acknowledgement) as before.

The helper is a child process speaking over its stdin and stdout: length-prefixed pickles, the
first frame each way the GroupWork to use and its "ready". Both ends are podlink's own, on
one host. It exits when its stdin closes, so it never outlives the worker.
"""
from __future__ import annotations

import asyncio
import contextlib
import fcntl
import dataclasses
import os
import pickle
import queue
import struct
import sys
import threading
import time
from collections.abc import Sequence
from typing import BinaryIO, NamedTuple

import structlog

from podlink.streams.worker.group_work import GroupOutcome, GroupWork, Job

log = structlog.get_logger("podlink")

_LENGTH = struct.Struct("!Q")
_READY = b"ready"
F_SETPIPE_SZ = getattr(fcntl, "F_SETPIPE_SZ", 1031)
PIPE_BYTES = 1024 * 1024  # Linux's default most for an unprivileged process
# Jobs go to the helper, and outcomes come back, a few referrals at a time, so that neither
# waits for a whole batch.
FRAME_RECORDS = 20


class Record(NamedTuple):
    """An input record as the helper needs it (a Faust message does not pickle)."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None


class HelperLost(Exception):
    """The helper ended, failed or took too long: what it was given is worked out here."""


def portable(job: Job) -> Job:
    return Job(job.key, job.stored,
               [(i, Record(m.topic, m.partition, m.offset, m.key, m.value)) for i, m in job.records])


class WorkHelper:
    """The worker's side: starts the helper, hands it jobs, gives their outcomes back."""

    def __init__(self, work: GroupWork, timeout_seconds: float = 30.0,
                 command: Sequence[str] = (sys.executable, "-m", "podlink.streams.worker.work_helper")) -> None:
        self._work = work
        self._timeout = timeout_seconds
        self._command = command
        self._process: asyncio.subprocess.Process | None = None
        self._outcomes: asyncio.Queue[list[GroupOutcome] | HelperLost] = asyncio.Queue()
        self._reading: asyncio.Task[None] | None = None
        self._ready = False
        self.busy_seconds = 0.0  # the helper's CPU time working out what it has answered so far

    @property
    def ready(self) -> bool:
        """Started, and not lost since."""
        return self._ready

    @property
    def pid(self) -> int | None:
        return None if self._process is None else self._process.pid

    @property
    def lost(self) -> bool:
        """Started, and ended or failed since."""
        return self._reading is not None and self._reading.done()

    async def start(self) -> None:
        """Starts the helper; it is ready once it has said so (the worker does not wait)."""
        self._process = await asyncio.create_subprocess_exec(
            *self._command, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
        )
        self._outcomes = asyncio.Queue()
        # A fresh copy: not the episodes the worker keeps decoded.
        self._write(pickle.dumps(dataclasses.replace(self._work), pickle.HIGHEST_PROTOCOL))
        self._reading = asyncio.ensure_future(self._read())

    def submit(self, jobs: Sequence[Job]) -> None:
        """Hands jobs over; their outcomes come back from `take` and `next`."""
        # A few referrals a frame, so the helper starts on the first while the rest arrive.
        chunk: list[Job] = []
        records = 0
        for job in jobs:
            chunk.append(portable(job))
            records += len(job.records)
            if records >= FRAME_RECORDS:
                self._write(pickle.dumps(chunk, pickle.HIGHEST_PROTOCOL))
                chunk, records = [], 0
        if chunk:
            self._write(pickle.dumps(chunk, pickle.HIGHEST_PROTOCOL))

    def take(self) -> list[GroupOutcome]:
        """The outcomes come back so far, without waiting."""
        found: list[GroupOutcome] = []
        while not self._outcomes.empty():
            item = self._outcomes.get_nowait()
            if isinstance(item, HelperLost):
                self._outcomes.put_nowait(item)  # said again by `next`
                break
            found += item
        return found

    async def next(self) -> list[GroupOutcome]:
        """The next outcomes; raises HelperLost if the helper ended or failed, or none came
        within the timeout (the helper is stopped then)."""
        try:
            item = await asyncio.wait_for(self._outcomes.get(), self._timeout)
        except asyncio.TimeoutError:
            item = HelperLost(f"no outcome within {self._timeout} s")
        if isinstance(item, HelperLost):
            await self.stop()
            raise item
        return item

    async def stop(self) -> None:
        self._ready = False
        process, self._process = self._process, None
        if self._reading is not None:
            self._reading.cancel()
            self._reading = None
        if process is None:
            return
        with contextlib.suppress(ProcessLookupError):
            process.kill()
        await process.wait()

    def _write(self, data: bytes) -> None:
        if self._process is None or self._process.stdin is None:
            raise HelperLost("not running")
        try:
            self._process.stdin.write(_LENGTH.pack(len(data)) + data)
        except (OSError, RuntimeError) as exc:  # it has ended: its pipe is closed
            raise HelperLost(type(exc).__name__) from exc

    async def _read(self) -> None:
        assert self._process is not None and self._process.stdout is not None
        stdout = self._process.stdout
        try:
            if await _read_frame(stdout) != _READY:
                raise HelperLost("it did not start")
            self._ready = True
            log.info("work helper ready", pid=self._process.pid)
            while True:
                outcomes, seconds = pickle.loads(await _read_frame(stdout))
                self.busy_seconds += seconds
                self._outcomes.put_nowait(outcomes)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - whatever ended it, the worker goes on alone
            self._ready = False
            reason = str(exc) if isinstance(exc, HelperLost) else type(exc).__name__
            log.warning("work helper lost; the worker works alone", reason=reason)
            self._outcomes.put_nowait(exc if isinstance(exc, HelperLost) else HelperLost(reason))


async def _read_frame(stream: asyncio.StreamReader) -> bytes:
    (length,) = _LENGTH.unpack(await stream.readexactly(_LENGTH.size))
    return await stream.readexactly(length)


def _read_frame_blocking(stream: BinaryIO) -> bytes | None:
    head = stream.read(_LENGTH.size)
    if len(head) < _LENGTH.size:
        return None  # the worker closed our stdin: it has ended
    (length,) = _LENGTH.unpack(head)
    data = stream.read(length)
    if len(data) < length:
        return None
    return data


def _write_frame_blocking(stream: BinaryIO, data: bytes) -> None:
    stream.write(_LENGTH.pack(len(data)) + data)
    stream.flush()


def serve(inputs: BinaryIO, outputs: BinaryIO) -> None:
    """The helper's loop: jobs in, outcomes out, until its input ends."""
    from podlink.streams.worker.loop_lag import collect_young_objects_less_often, freeze_start_up_objects

    first = _read_frame_blocking(inputs)
    if first is None:
        return
    work: GroupWork = pickle.loads(first)
    collect_young_objects_less_often()
    freeze_start_up_objects()
    # Outcomes are written by a thread of their own: the worker reads them only when its event
    # loop comes round, and a helper blocked on a full pipe meanwhile would work in its lockstep.
    writing: queue.SimpleQueue[bytes | None] = queue.SimpleQueue()
    writer = threading.Thread(target=_write_frames, args=(writing, outputs), name="outcomes", daemon=True)
    writer.start()
    writing.put(_READY)
    while (frame := _read_frame_blocking(inputs)) is not None:
        started = time.process_time()
        done = [work.work_out(job) for job in pickle.loads(frame)]
        writing.put(pickle.dumps((done, time.process_time() - started), pickle.HIGHEST_PROTOCOL))
    writing.put(None)
    writer.join()


def _write_frames(writing: queue.SimpleQueue[bytes | None], outputs: BinaryIO) -> None:
    with contextlib.suppress(BrokenPipeError):  # the worker has ended
        while (data := writing.get()) is not None:
            _write_frame_blocking(outputs, data)


def main() -> None:
    # Frames go to the stdout we were given; anything else printed goes to stderr.
    outputs = os.fdopen(os.dup(sys.stdout.fileno()), "wb")
    # Larger pipes: a batch's jobs fit at once, the worker's loop writing only what fits when it
    # comes round, and outcomes are read in fewer turns of it (Linux only).
    for pipe in (sys.stdin.fileno(), outputs.fileno()):
        with contextlib.suppress(OSError):
            fcntl.fcntl(pipe, F_SETPIPE_SZ, PIPE_BYTES)
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())
    serve(sys.stdin.buffer, outputs)


if __name__ == "__main__":
    main()

