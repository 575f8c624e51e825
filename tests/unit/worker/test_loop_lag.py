"""The worker's own measure of how long its event loop is held, and of garbage collections."""
from __future__ import annotations

import asyncio
import gc
import threading
import time
import weakref
from types import SimpleNamespace
from typing import Any

from prometheus_client.parser import text_string_to_metric_families
from structlog.testing import capture_logs

from podlink.streams.worker.loop_lag import (
    GcPauses,
    LoopLagMonitor,
    StallSampler,
    code_location,
    freeze_start_up_objects,
)
from podlink.streams.worker.app import Worker
from podlink.streams.worker.metrics import Metrics
from podlink.streams.worker.settings import Settings


def _samples(metrics: Metrics) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    families = text_string_to_metric_families(metrics.exposition().decode())
    return {(s.name, tuple(sorted(s.labels.items()))): s.value for f in families for s in f.samples}


class Clock:
    def __init__(self, now: float = 0.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def test_a_full_collection_is_one_pause_and_every_generation_counts_toward_the_total() -> None:
    clock = Clock(10.0)
    pauses = GcPauses(clock)
    pauses("start", {"generation": 0})
    clock.now = 10.002
    pauses("stop", {"generation": 0})
    pauses("start", {"generation": 2})
    clock.now = 10.252
    pauses("stop", {"generation": 2})
    drained = pauses.drain()
    assert [(p.generation, round(p.seconds, 6)) for p in drained] == [(2, 0.25)]
    assert round(pauses.total_seconds, 6) == 0.252
    assert pauses.drain() == []


def test_a_stop_without_its_start_is_no_pause() -> None:
    # Installed while a collection ran: its "stop" comes with no "start" timed.
    pauses = GcPauses(Clock(5.0))
    pauses("stop", {"generation": 2})
    assert pauses.drain() == [] and pauses.total_seconds == 0.0


def test_installed_it_times_a_real_full_collection_and_uninstalled_it_stops() -> None:
    pauses = GcPauses()
    pauses.install()
    try:
        gc.collect()
    finally:
        pauses.uninstall()
    drained = pauses.drain()
    assert len(drained) == 1 and drained[0].generation == 2 and drained[0].seconds > 0
    gc.collect()
    assert pauses.drain() == []
    assert pauses not in gc.callbacks


def test_the_loop_lag_histogram_counts_stalls_past_100_ms_and_the_gauge_keeps_the_longest() -> None:
    m = Metrics()
    for seconds in (0.004, 0.150, 0.020, 0.099):
        m.loop_held(seconds)
    m.gc_paused(0.030)
    m.gc_paused(0.012)
    s = _samples(m)
    assert s[("podlink_event_loop_lag_seconds_count", ())] == 4
    assert s[("podlink_event_loop_lag_seconds_bucket", (("le", "0.1"),))] == 3
    assert s[("podlink_event_loop_lag_max_seconds", ())] == 0.150
    assert s[("podlink_gc_full_pause_seconds_count", ())] == 2
    assert s[("podlink_gc_full_pause_max_seconds", ())] == 0.030


def test_code_locations_start_at_the_package_so_no_home_directory_is_logged() -> None:
    def frame(path: str, name: str, line: int) -> Any:
        return SimpleNamespace(f_code=SimpleNamespace(co_filename=path, co_name=name), f_lineno=line)

    assert code_location(frame("/home/a/.venv/lib/python3.11/site-packages/faust/tables/base.py",
                               "on_changelog_event", 12)) == "faust/tables/base.py:on_changelog_event:12"
    assert code_location(frame("/usr/lib/python3.11/asyncio/events.py", "_run", 80)) == \
        "asyncio/events.py:_run:80"
    assert code_location(frame("/home/a/src/podlink/streams/worker/app.py", "episode_processor", 170)) == \
        "podlink/streams/worker/app.py:episode_processor:170"
    assert code_location(frame("/home/a/work/tool.py", "main", 3)) == "work/tool.py:main:3"


def _held_here() -> None:
    time.sleep(0.2)


def test_the_sampler_takes_the_loop_threads_stack_once_the_loop_is_held_past_its_bound() -> None:
    clock = Clock(100.0)
    seen: list[list[str] | None] = []

    def busy_thread() -> None:
        sampler = StallSampler(threading.get_ident(), after=0.05, clock=clock)
        beat = sampler.beat()
        clock.now = 100.04  # held 40 ms: not yet
        sampler.look()
        seen.append(sampler.sample_since(beat))
        clock.now = 100.06
        watcher = threading.Timer(0.1, sampler.look)
        watcher.start()  # looks from another thread while this one is in _held_here
        _held_here()
        watcher.join()
        seen.append(sampler.sample_since(beat))
        seen.append(sampler.sample_since(sampler.beat()))  # a new beat: that sample is not its

    thread = threading.Thread(target=busy_thread)
    thread.start()
    thread.join()
    assert seen[0] is None
    assert seen[1] is not None and seen[1][0].split(":")[1] == "_held_here"
    assert seen[2] is None


async def _run_monitor(metrics: Metrics, hold: Any) -> None:
    monitor = LoopLagMonitor(metrics, interval=0.01, warn_after=0.1)
    await monitor.start()
    try:
        await asyncio.sleep(0.1)
        hold()
        await asyncio.sleep(0.1)
    finally:
        await monitor.stop()


HELD: dict[str, float] = {}


def _hold_the_loop() -> None:
    started = time.perf_counter()
    gc.collect()
    HELD["gc"] = time.perf_counter() - started
    time.sleep(0.25)
    HELD["all"] = time.perf_counter() - started


def test_the_monitor_measures_a_blocked_loop_and_warns_naming_the_blocking_code() -> None:
    metrics = Metrics()
    with capture_logs() as logged:
        asyncio.run(_run_monitor(metrics, _hold_the_loop))
    s = _samples(metrics)
    held = HELD["all"]  # 250 ms and a full collection (longer, the more the process holds)
    # The sleep that ended inside the stall began at most 10 ms before it (and the machine
    # may add some scheduling on either side).
    assert held - 0.015 <= s[("podlink_event_loop_lag_max_seconds", ())] < held + 0.1
    assert s[("podlink_event_loop_lag_seconds_count", ())] >= 10
    # The other wakes were on time: only one past 100 ms.
    assert s[("podlink_event_loop_lag_seconds_count", ())] - \
        s[("podlink_event_loop_lag_seconds_bucket", (("le", "0.1"),))] == 1
    assert s[("podlink_gc_full_pause_seconds_count", ())] >= 1
    warnings = [line for line in logged if line["event"] == "event loop blocked"]
    assert len(warnings) == 1, logged
    warning = warnings[0]
    assert warning["log_level"] == "warning"
    assert held - 0.015 <= warning["seconds"] < held + 0.1
    # The collection's share, as gc.callbacks timed it (rounded to the millisecond).
    assert HELD["gc"] - 0.002 <= warning["gc_seconds"] <= HELD["gc"] + 0.05
    # Sleeping 250 ms, the thread used no CPU: only the collection (and the loop's own steps)
    # did, as much as the machine gave it.
    assert 0 < warning["on_cpu_seconds"] <= HELD["gc"] + 0.05
    assert warning["on_cpu_seconds"] <= warning["seconds"] - 0.2
    assert any(":_hold_the_loop:" in location for location in warning["blocked_in"]), warning


def test_a_loop_never_held_past_the_bound_logs_nothing() -> None:
    metrics = Metrics()
    with capture_logs() as logged:
        asyncio.run(_run_monitor(metrics, lambda: time.sleep(0.03)))
    assert [line for line in logged if line["event"] == "event loop blocked"] == []
    s = _samples(metrics)
    assert 0.02 <= s[("podlink_event_loop_lag_max_seconds", ())] < 0.1
    # A wake on time is a lag of about nothing, not of the 10 ms it slept.
    assert s[("podlink_event_loop_lag_seconds_bucket", (("le", "0.005"),))] >= \
        s[("podlink_event_loop_lag_seconds_count", ())] / 2


class _Node:
    def __init__(self) -> None:
        self.other: _Node | None = None


def test_freezing_leaves_live_objects_out_of_collections_but_collects_the_garbage_first() -> None:
    garbage, kept = _Node(), _Node()
    garbage.other, kept.other = _Node(), _Node()
    garbage.other.other, kept.other.other = garbage, kept  # two reference cycles
    gone = weakref.ref(garbage)
    del garbage
    try:
        freeze_start_up_objects()
        # The unreachable cycle was collected, not frozen (frozen, it would never be freed).
        assert gone() is None
        assert gc.get_freeze_count() > 0
        # What is frozen is no longer in any generation a collection walks.
        assert not any(o is kept for o in gc.get_objects())
    finally:
        gc.unfreeze()
    assert any(o is kept for o in gc.get_objects())


def _young_collections_while_allocating(count: int) -> int:
    started: list[int] = []

    def note(phase: str, info: dict[str, Any]) -> None:
        if phase == "start" and info["generation"] == 0:
            started.append(0)

    gc.collect()  # counts from no young objects
    gc.callbacks.append(note)
    try:
        kept = [[] for _ in range(count)]
    finally:
        gc.callbacks.remove(note)
    assert len(kept) == count
    return len(started)


def test_a_worker_runs_a_young_collection_only_after_tens_of_thousands_of_new_objects(tmp_path: Any) -> None:
    default = gc.get_threshold()
    try:
        # CPython's own threshold (700 objects; 2,000 from 3.13): one every few thousand.
        assert _young_collections_while_allocating(20_000) >= 5
        Worker(Settings(store="memory", data_dir=tmp_path))
        assert _young_collections_while_allocating(20_000) == 0
    finally:
        gc.set_threshold(*default)
        gc.unfreeze()
