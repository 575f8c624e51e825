"""What a worker does about records that wait unhandled on its partitions (progress_watch.py)."""
from faust.types import TP

from podlink.streams.worker.progress_watch import ProgressWatch, Remedy

SPA_0 = TP("spa.referral-events.v1", 0)
SPA_1 = TP("spa.referral-events.v1", 1)
CARE_0 = TP("pod.care-events.v1", 0)


def test_a_partition_is_quiet_once_nothing_was_handled_on_it_for_the_whole_time():
    watch = ProgressWatch(30.0)
    # Ready at 1000; SPA_0 last handled at 1010, SPA_1 at 1001, CARE_0 never.
    handled = {SPA_0: 1010.0, SPA_1: 1001.0, CARE_0: None}
    assert watch.quiet([SPA_0, SPA_1, CARE_0], handled, 1000.0, 1029.0) == []
    assert watch.quiet([SPA_0, SPA_1, CARE_0], handled, 1000.0, 1030.0) == [CARE_0]
    assert watch.quiet([SPA_0, SPA_1, CARE_0], handled, 1000.0, 1031.0) == [SPA_1, CARE_0]
    assert watch.quiet([SPA_0, SPA_1, CARE_0], handled, 1000.0, 1040.0) == [SPA_0, SPA_1, CARE_0]


def test_records_handled_before_the_worker_became_ready_do_not_count_against_it():
    # Handled at 500 under an earlier assignment; ready again at 1000 after a rebalance.
    watch = ProgressWatch(30.0)
    assert watch.quiet([SPA_0], {SPA_0: 500.0}, 1000.0, 1029.0) == []
    assert watch.quiet([SPA_0], {SPA_0: 500.0}, 1000.0, 1030.0) == [SPA_0]


def test_a_waiting_record_is_read_again_at_once_and_the_worker_stops_if_it_still_waits():
    watch = ProgressWatch(30.0)
    assert watch.remedy(SPA_0, 41, 2000.0) is Remedy.READ_AGAIN
    assert watch.remedy(SPA_0, 41, 2010.0) is None  # sent back: give it time
    assert watch.remedy(SPA_0, 41, 2029.0) is None
    assert watch.remedy(SPA_0, 41, 2030.0) is Remedy.STOP


def test_nothing_waiting_means_nothing_to_do():
    watch = ProgressWatch(30.0)
    assert watch.remedy(SPA_0, None, 2000.0) is None
    assert watch.remedy(SPA_0, None, 2100.0) is None


def test_a_partition_that_moved_on_or_emptied_is_read_again_rather_than_stopped():
    watch = ProgressWatch(30.0)
    watch.remedy(SPA_0, 41, 2000.0)
    assert watch.remedy(SPA_0, 45, 2040.0) is Remedy.READ_AGAIN  # handled up to 45 meanwhile
    assert watch.remedy(SPA_0, 45, 2069.0) is None
    assert watch.remedy(SPA_0, 45, 2070.0) is Remedy.STOP
    watch.remedy(SPA_1, 7, 2000.0)
    assert watch.remedy(SPA_1, None, 2010.0) is None  # handled, or only a commit marker left
    assert watch.remedy(SPA_1, 7, 2040.0) is Remedy.READ_AGAIN


def test_handling_on_a_partition_or_a_rebalance_forgets_what_was_seen_waiting():
    watch = ProgressWatch(30.0)
    watch.remedy(SPA_0, 41, 2000.0)
    watch.remedy(SPA_1, 7, 2000.0)
    # SPA_0 handled a record at 2020: no longer quiet, so its waiting record is forgotten.
    watch.quiet([SPA_0, SPA_1], {SPA_0: 2020.0, SPA_1: 1000.0}, 1000.0, 2035.0)
    assert watch.remedy(SPA_0, 41, 2035.0) is Remedy.READ_AGAIN
    assert watch.remedy(SPA_1, 7, 2035.0) is Remedy.STOP
    watch.reset()
    assert watch.remedy(SPA_1, 7, 2036.0) is Remedy.READ_AGAIN
