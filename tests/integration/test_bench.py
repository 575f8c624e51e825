"""`podlink bench` end to end on each broker it starts: ceiling, a real worker, and its summary line."""
from __future__ import annotations

import re

import pytest

from tests.integration.bench_cli import run_bench

SUMMARY = re.compile(
    r"^bench: (?P<e>\d+) events/s end to end, ceiling (?P<c>\d+) events/s, "
    r"ratio (?P<ratio>\d+\.\d{3}), p50 (?P<p50>\d+(?:\.\d)?) ms, p99 (?P<p99>\d+(?:\.\d)?) ms$"
)


@pytest.mark.parametrize(("broker", "label"), [("tansu", "embedded Tansu"), ("kafka", "Apache Kafka")])
def test_bench_reports_throughput_against_the_ceiling_and_latency(broker: str, label: str) -> None:
    result = run_bench("--broker", broker, "--pathways", "30", timeout=150)
    # The Kafka clients' warnings (a fresh topic's leader not yet elected) are JSON log lines on
    # the same output: the bench's own lines are the others.
    lines = [line for line in result.stdout.strip().splitlines() if not line.startswith("{")]
    assert f"broker {label}" in lines[0]
    last = lines[-1]
    match = SUMMARY.match(last)
    assert match, last
    e, c, ratio = int(match["e"]), int(match["c"]), float(match["ratio"])
    p50, p99 = float(match["p50"]), float(match["p99"])
    assert e > 0 and c > 0 and 0 < ratio
    assert abs(ratio - e / c) < 0.002  # the ratio is of the figures shown
    assert 0 <= p50 <= p99
    cpu = next(re.search(r"worker CPU an event \(user \+ system\) +(\d+) us \((\d+) \+ (\d+)\)$", line)
               for line in lines if "worker CPU" in line)
    assert cpu and int(cpu[1]) > 0 and abs(int(cpu[1]) - int(cpu[2]) - int(cpu[3])) <= 1, cpu
    assert "FHIR messages" in result.stderr  # progress goes to stderr, not among the figures
