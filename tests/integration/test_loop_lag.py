"""A running worker measures its own event-loop lag and garbage-collection pauses on /metrics."""
from __future__ import annotations

import time

from podlink.streams.worker.loop_lag import INTERVAL_SECONDS
from tests.support.broker_io import wait_until
from tests.support.worker_metrics import scrape, total


def test_a_worker_exposes_its_loop_lag_and_keeps_measuring_it(broker, start_worker) -> None:
    worker = start_worker(broker.bootstrap)
    wait_until(lambda: total(scrape(worker.web_url), "podlink_event_loop_lag_seconds_count") or None,
               60, "the loop-lag histogram on /metrics")
    started = time.monotonic()
    first = scrape(worker.web_url)
    time.sleep(2.0)
    second = scrape(worker.web_url)
    elapsed = time.monotonic() - started  # the two snapshots were taken within it
    wakes = total(second, "podlink_event_loop_lag_seconds_count") - \
        total(first, "podlink_event_loop_lag_seconds_count")
    # At most one wake every 10 ms: about 200 in 2 s; a shared, loaded machine gets fewer (its
    # scrapes take longer, so the bound follows the time they took), a stopped monitor none.
    assert 50 <= wakes <= elapsed / INTERVAL_SECONDS + 1, (wakes, elapsed)
    longest = total(second, "podlink_event_loop_lag_max_seconds")
    assert 0 < longest < 60
    # The gauge is the largest observation: no more wakes were later than it than were observed.
    assert total(second, "podlink_event_loop_lag_seconds_sum") <= \
        longest * total(second, "podlink_event_loop_lag_seconds_count")
    # Full collections are rare on a worker this idle; their metrics exist from the start.
    assert ("podlink_gc_full_pause_seconds_count", frozenset()) in second
    assert ("podlink_gc_full_pause_max_seconds", frozenset()) in second
