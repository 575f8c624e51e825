"""The index bench at a tiny size, so it cannot rot: its figures are of the entries it built."""
import re

from podlink_devtools.index_bench import measure


def test_the_index_bench_reports_every_deadline_it_built_and_those_due():
    line = measure(2000)
    # Three open deadlines a referral, and one past due for one referral in 1,000 (0 and 1000).
    assert line.startswith("index-bench: 2000 referrals, 6002 open deadlines: rebuild "), line
    assert re.search(r"first scan \d+\.\d\d ms \(2 referrals due\)", line), line
    assert line.endswith("(2 breached)"), line
