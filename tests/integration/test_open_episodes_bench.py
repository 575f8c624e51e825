"""`podlink bench --open-episodes` at a tiny scale, on the jar Apache Kafka it starts: so it cannot rot."""
from __future__ import annotations

import re

from tests.integration.bench_cli import run_bench

NUMBER = r"\d+\.\d"
SUMMARY = re.compile(
    rf"^open-episodes: (?P<n>\d+) episodes, rss (?P<rss>{NUMBER}) MiB, "
    rf"changelog (?P<records>\d+) records \((?P<mib>{NUMBER}) MiB\), first scan (?P<first>{NUMBER}) ms, "
    rf"later scans (?P<later>{NUMBER}) ms \(median of (?P<k>\d+)\), "
    rf"max loop lag (?P<lag>{NUMBER}) ms \(worker's own; /healthz (?P<healthz>{NUMBER}) ms\), "
    rf"max full gc pause (?P<gc>{NUMBER}) ms$"
)
OWN_LAG = re.compile(r"^  event-loop lag, the worker's own .*: longest (?P<lag>\d+\.\d) ms; "
                     r"(?P<over>\d+) of (?P<wakes>\d+) wakes ")
CHANGELOG = re.compile(r"^  changelog \S+-(?P<table>[a-z-]+)-changelog: (?P<records>\d+) records, ")
SCAN = re.compile(r"^  deadline index over (?P<deadlines>\d+) open deadlines of (?P<referrals>\d+) referrals")
LOADED = re.compile(r"^  loaded in .*the worker counted (?P<records>\d+) records processed, "
                    r"and its last deadline scan (?P<open>\d+) open episodes$")


def test_open_episodes_bench_reports_what_the_loaded_worker_holds() -> None:
    lines = run_bench("--open-episodes", "50", timeout=240).stdout.strip().splitlines()
    summary = SUMMARY.match(lines[-1])
    assert summary, lines[-1]
    assert int(summary["n"]) == 50
    assert float(summary["rss"]) > 0
    # Every open episode stored its episode and its deadline, each through its changelog.
    assert int(summary["records"]) >= 50
    changelogs = {m["table"]: int(m["records"]) for line in lines if (m := CHANGELOG.match(line))}
    assert changelogs["episodes"] >= 50 and changelogs["deadlines"] >= 50, lines
    assert sum(changelogs.values()) == int(summary["records"])
    assert float(summary["mib"]) >= 0 and int(summary["k"]) >= 1
    assert 0 <= float(summary["later"]) and 0 <= float(summary["first"])
    assert float(summary["healthz"]) > 0  # /healthz answered during the load
    # The worker's own monitor woke (every 10 ms, for tens of seconds) and saw some lag; the
    # longest wake it reports is the one on the last line.
    own = next(m for line in lines if (m := OWN_LAG.match(line)))
    assert int(own["wakes"]) > 100 and 0 <= int(own["over"]) <= int(own["wakes"])
    assert float(summary["lag"]) > 0 and own["lag"] == summary["lag"]
    assert float(summary["gc"]) >= 0
    # The worker processed all three events of each referral, and its own scan saw every one open.
    loaded = next(m for line in lines if (m := LOADED.match(line)))
    assert int(loaded["records"]) == 150 and int(loaded["open"]) == 50
    # Each accepted CPA referral holds three open deadlines: first meeting, risk assessment, CPA
    # coordinator (the shipped policies).
    scan = next(m for line in lines if (m := SCAN.match(line)))
    assert (int(scan["deadlines"]), int(scan["referrals"])) == (150, 50)
