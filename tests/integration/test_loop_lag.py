"""A running worker measures its own event-loop lag and garbage-collection pauses on /metrics."""
from __future__ import annotations

import time

from tests.support.broker_io import wait_until
from tests.support.worker_metrics import scrape, total


def test_a_worker_exposes_its_loop_lag_and_keeps_measuring_it(broker, start_worker) -> None:
    worker = start_worker(broker.bootstrap)
    first = wait_until(lambda: m if total(m := scrape(worker.web_url), "podlink_event_loop_lag_seconds_count")
                       else None, 60, "the loop-lag histogram on /metrics")
    time.sleep(2.0)
    second = scrape(worker.web_url)
    wakes = total(second, "podlink_event_loop_lag_seconds_count") - \
        total(first, "podlink_event_loop_lag_seconds_count")
    # One wake every 10 ms asked for: about 200 in 2 s; a shared, loaded machine gets fewer,
    # a stopped monitor none.
    assert 50 <= wakes <= 210, wakes
    longest = total(second, "podlink_event_loop_lag_max_seconds")
    assert 0 < longest < 60
    # The gauge is the largest observation: no more wakes were later than it than were observed.
    assert total(second, "podlink_event_loop_lag_seconds_sum") <= \
        longest * total(second, "podlink_event_loop_lag_seconds_count")
    # Full collections are rare on a worker this idle; their metrics exist from the start.
    assert ("podlink_gc_full_pause_seconds_count", frozenset()) in second
    assert ("podlink_gc_full_pause_max_seconds", frozenset()) in second
