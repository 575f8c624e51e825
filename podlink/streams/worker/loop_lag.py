"""How long the worker's event loop is held, measured from inside the worker.

A task sleeps INTERVAL_SECONDS at a time; how much later than asked it wakes is how long
something else held the loop (a slice of records, a scan, a table write, a garbage collection).
Measured from inside, this leaves out what a probe from outside (an HTTP request) adds: the
round trip and the prober's own scheduling. A stall of D seconds shows as D less at most one
interval, since the sleep that ends inside it began at most one interval before it.

A wake later than `warn_after` is logged, with what was running if that can be told cheaply:
the time garbage collections took meanwhile (from gc.callbacks), how much of the stall the
loop's thread spent on a CPU (little means it was held up from outside: other processes on a
busy machine, or another thread holding the GIL) and where that thread was in the middle of
the stall (its stack, sampled by a watchdog thread: code locations only, no values). Full collections' pauses are metrics of their own, since their cost grows with every
object the worker holds, whatever the loop was doing.
"""
from __future__ import annotations

import asyncio
import gc
import re
import sys
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from types import FrameType
from typing import Any

import structlog
from mode import Service

from podlink.streams.worker.metrics import Metrics

log = structlog.get_logger("podlink")

# Short enough that a 100 ms stall shows as at least 90 ms; about 100 wakes a second cost the
# loop well under 1% of a core.
INTERVAL_SECONDS = 0.010
WARN_SECONDS = 0.100
# Frames of the loop thread's stack named in a warning, innermost first.
STACK_FRAMES = 8
FULL_COLLECTION = 2
YOUNG_COLLECTION_AFTER = 50_000
_LIBRARY = re.compile(r"^.*/(site-packages|lib/python\d+\.\d+)/")


@dataclass(frozen=True)
class GcPause:
    generation: int
    seconds: float


class GcPauses:
    """Every garbage collection's pause, timed through gc.callbacks.

    A collection runs in whichever thread allocated when it was due (Faust's consumer thread
    too), and may start while that thread holds a lock of prometheus_client: so the callback
    only appends to a deque (thread-safe), which the loop drains into the metrics.
    """

    def __init__(self, clock: Callable[[], float] = time.perf_counter) -> None:
        self._clock = clock
        self._started: float | None = None
        self.total_seconds = 0.0  # every generation, since installed
        self.pauses: deque[GcPause] = deque()  # full collections not yet drained

    def __call__(self, phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            self._started = self._clock()
            return
        if self._started is None:  # installed during a collection
            return
        seconds = self._clock() - self._started
        self._started = None
        self.total_seconds += seconds
        if info["generation"] == FULL_COLLECTION:
            self.pauses.append(GcPause(FULL_COLLECTION, seconds))

    def drain(self) -> list[GcPause]:
        drained = []
        while self.pauses:
            drained.append(self.pauses.popleft())
        return drained

    def install(self) -> None:
        gc.callbacks.append(self)

    def uninstall(self) -> None:
        if self in gc.callbacks:
            gc.callbacks.remove(self)


def code_location(frame: FrameType) -> str:
    """`file:function:line`, the file from its package down (no home directories in logs)."""
    path = frame.f_code.co_filename
    short = _LIBRARY.sub("", path)
    if short == path:
        at = path.rfind("/podlink/")
        short = path[at + 1:] if at >= 0 else "/".join(path.rsplit("/", 2)[-2:])
    return f"{short}:{frame.f_code.co_name}:{frame.f_lineno}"


def stack_of(frame: FrameType | None, limit: int = STACK_FRAMES) -> list[str]:
    found: list[str] = []
    while frame is not None and len(found) < limit:
        found.append(code_location(frame))
        frame = frame.f_back
    return found


class StallSampler(threading.Thread):
    """A watchdog thread: once the loop has not woken the monitor for `after` seconds, it takes
    one sample of the loop thread's stack for the monitor to name in its warning.

    It needs the GIL to look, so it sees Python code that holds the loop (the interpreter
    hands the GIL over every few milliseconds), not the inside of a C call that keeps it
    (a garbage collection); gc.callbacks tell those.
    """

    def __init__(self, loop_thread: int, after: float, clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__(name="podlink-loop-lag-sampler", daemon=True)
        self._loop_thread = loop_thread
        self._after = after
        self._clock = clock
        self._stop = threading.Event()
        self._beat = clock()
        self._sample: tuple[float, list[str]] | None = None  # (the beat it was taken after, stack)

    def beat(self) -> float:
        """The loop is running now; returns the beat to ask `sample_since` about."""
        self._beat = self._clock()
        return self._beat

    def sample_since(self, beat: float) -> list[str] | None:
        sample = self._sample
        return sample[1] if sample is not None and sample[0] == beat else None

    def look(self) -> None:
        beat = self._beat
        if self._clock() - beat < self._after:
            return
        if self._sample is not None and self._sample[0] == beat:
            return  # one sample per stall
        frame = sys._current_frames().get(self._loop_thread)
        self._sample = (beat, stack_of(frame))

    def run(self) -> None:
        while not self._stop.wait(self._after / 4):
            self.look()

    def stop(self) -> None:
        self._stop.set()


def collect_young_objects_less_often() -> None:
    """Run a young collection once YOUNG_COLLECTION_AFTER more objects exist, not CPython's
    700 (2,000 from 3.13).

    A message is thousands of small dicts and lists, so at the default a young collection ran
    a few times an event, walking whatever was half built then and moving it up to older
    generations, which later collections walk again. With the higher threshold the handler
    spent 5 to 8% less time an event, and the longest full collection at 10,000 open episodes
    was 1.5 ms (docs/performance.md, sixth round).
    """
    gc.set_threshold(YOUNG_COLLECTION_AFTER, *gc.get_threshold()[1:])


def freeze_start_up_objects() -> None:
    """Leave what the worker has built so far out of every later garbage collection.

    Its modules, classes and Faust's app are about 130,000 objects a full collection walks,
    150 to 250 ms on this machine whatever the worker holds, and Faust forces full collections
    at every rebalance (its RocksDB store and its consumer call gc.collect()). Called once the
    worker is built (before the loop runs) and once its first recovery is done (Faust's
    services, clients and tables exist then; a collection of them alone is short). Frozen
    objects are still freed by reference counting; only a reference cycle among them would
    never be, so garbage is collected first, and this is not repeated at later rebalances.
    """
    gc.collect()
    gc.freeze()


class LoopLagMonitor(Service):
    """A dependency of the Faust app: it runs from the app's start, through table recovery."""

    def __init__(self, metrics: Metrics, interval: float = INTERVAL_SECONDS,
                 warn_after: float = WARN_SECONDS) -> None:
        super().__init__()
        self._metrics = metrics
        self._interval = interval
        self._warn_after = warn_after
        self._gc = GcPauses()
        self._sampler: StallSampler | None = None

    async def on_start(self) -> None:
        self._gc.install()
        # Sampling half way into a stall that will be warned about.
        self._sampler = StallSampler(threading.get_ident(), self._warn_after / 2)
        self._sampler.start()

    async def on_stop(self) -> None:
        self._gc.uninstall()
        if self._sampler is not None:
            self._sampler.stop()

    @Service.task
    async def _measure(self) -> None:
        assert self._sampler is not None  # started in on_start, before tasks
        while not self.should_stop:
            gc_before = self._gc.total_seconds
            cpu_before = time.thread_time()
            beat = self._sampler.beat()
            asked = time.perf_counter()
            await asyncio.sleep(self._interval)
            held = max(0.0, time.perf_counter() - asked - self._interval)
            self._metrics.loop_held(held)
            for pause in self._gc.drain():
                self._metrics.gc_paused(pause.seconds)
            if held > self._warn_after:
                log.warning("event loop blocked", seconds=round(held, 3),
                            gc_seconds=round(self._gc.total_seconds - gc_before, 3),
                            on_cpu_seconds=round(time.thread_time() - cpu_before, 3),
                            blocked_in=self._sampler.sample_since(beat) or [])
