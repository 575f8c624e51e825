"""What `podlink bench --open-episodes` reads of the worker's loop: its metrics and its log."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
from podlink_devtools.bench import BenchError
from podlink_devtools.open_episodes_bench import Samples, Stall, logged_stalls, worker_loop
from prometheus_client.parser import text_string_to_metric_families

from podlink.streams.worker.metrics import Metrics


def _samples(metrics: Metrics) -> Samples:
    return [(s.name, s.labels, s.value)
            for f in text_string_to_metric_families(metrics.exposition().decode()) for s in f.samples
            if not s.name.endswith("_created")]


def test_the_bench_counts_the_wakes_past_100_ms_and_takes_the_worker_s_longest() -> None:
    m = Metrics()
    # 100 ms exactly is within the bound (issue 12: "never blocked more than 100 ms").
    for seconds in (0.002, 0.1, 0.101, 0.35, 0.04):
        m.loop_held(seconds)
    m.gc_paused(0.08)
    m.gc_paused(0.02)
    loop = worker_loop(_samples(m))
    assert (loop.wakes, loop.over_bound) == (5, 2)
    assert loop.within == {0.01: 1, 0.025: 1, 0.05: 2, 0.1: 3}
    assert loop.longest == 0.35
    assert (loop.full_collections, loop.longest_full_collection) == (2, 0.08)
    assert loop.full_collections_seconds == pytest.approx(0.10)


def test_a_worker_without_the_loop_metrics_is_a_clear_error() -> None:
    with pytest.raises(BenchError, match="loop-lag monitor"):
        worker_loop([("podlink_records_total", {}, 3.0)])


def test_the_worker_s_logged_stalls_come_longest_first(tmp_path: Path) -> None:
    log = tmp_path / "worker.log"
    lines = [{"event": "tables recovered", "seconds": 4.0},
             {"event": "event loop blocked", "seconds": 0.12, "gc_seconds": 0.0, "on_cpu_seconds": 0.05,
              "blocked_in": ["a.py:f:1"]},
             {"event": "event loop blocked", "seconds": 0.31, "gc_seconds": 0.29, "on_cpu_seconds": 0.3,
              "blocked_in": []}]
    log.write_text("\n".join(json.dumps(line) for line in lines) + "\nnot json\n")
    assert logged_stalls(log) == [Stall(0.31, 0.29, 0.3, []), Stall(0.12, 0.0, 0.05, ["a.py:f:1"])]
