"""`podlink bench --recovery` at a tiny scale, on the jar Apache Kafka it starts: so it cannot rot."""
from __future__ import annotations

import re

from tests.integration.bench_cli import run_bench

SUMMARY = re.compile(
    r"^recovery: (?P<n>\d+) episodes, warm (?P<warm>\d+\.\d\d) s \((?P<warm_read>\d+) changelog records\), "
    r"cold (?P<cold>\d+\.\d\d) s \((?P<cold_read>\d+) changelog records\), "
    r"cold/warm (?P<ratio>\d+\.\d\d), deadline scan (?P<scan>\d+\.\d) ms$"
)
RESTART = re.compile(
    r"^  (?P<label>warm|cold) restart .*: serving again after \d+\.\d\d s; recovery read "
    r"(?P<read>\d+) of (?P<total>\d+) changelog records in \d+\.\d\d s$"
)
SCAN = re.compile(r"^  deadline index over (?P<deadlines>\d+) open deadlines of (?P<referrals>\d+) referrals: "
                  r"rebuilt after a start in \d+\.\d ms, holding the event loop at most \d+\.\d ms at a time")


def test_recovery_bench_reads_less_changelog_with_its_data_kept_than_without() -> None:
    lines = run_bench("--recovery", "50", timeout=280).stdout.strip().splitlines()
    summary = SUMMARY.match(lines[-1])
    assert summary, lines[-1]
    assert int(summary["n"]) == 50
    restarts = {m["label"]: m for line in lines if (m := RESTART.match(line))}
    assert restarts.keys() == {"warm", "cold"}, lines
    warm, cold = restarts["warm"], restarts["cold"]
    # The figures in the summary are those of the detail lines.
    assert (int(warm["read"]), int(cold["read"])) == (int(summary["warm_read"]), int(summary["cold_read"]))
    # Kept RocksDB data spares reading the changelog; lost data means reading all of it.
    assert int(warm["read"]) < int(cold["read"]) == int(cold["total"])
    # Every open episode (and the two sentinels) has its deadlines in the table that was scanned:
    # an accepted CPA referral has three open (first meeting, risk assessment, CPA coordinator),
    # a sentinel, received only, one.
    scan = next(m for line in lines if (m := SCAN.match(line)))
    assert (int(scan["deadlines"]), int(scan["referrals"])) == (50 * 3 + 2, 50 + 2)
    assert abs(float(summary["ratio"]) - float(summary["cold"]) / float(summary["warm"])) < 0.02
