from faust.types import TP

from podlink.streams.worker.offset_trail import OffsetTrail

SPA_3 = TP("spa.referral-events.v1", 3)
CARE_3 = TP("pod.care-events.v1", 3)


def test_the_first_records_of_a_partition_that_the_consumer_skipped_are_missing():
    # Reading starts at 0 (nothing committed); the agent is first given offset 2.
    trail = OffsetTrail()
    trail.start(SPA_3, 0)
    assert list(trail.missing(SPA_3, 2)) == [0, 1]


def test_consecutive_records_leave_nothing_missing():
    trail = OffsetTrail()
    trail.start(SPA_3, 40)
    for offset in (40, 41, 42):
        assert not trail.missing(SPA_3, offset)
        trail.given(SPA_3, offset)
    assert list(trail.missing(SPA_3, 45)) == [43, 44]


def test_a_record_read_again_is_behind_the_trail_and_never_moves_it_back():
    trail = OffsetTrail()
    trail.start(SPA_3, 10)
    trail.given(SPA_3, 10)
    trail.given(SPA_3, 11)
    assert not trail.missing(SPA_3, 10)  # a rewind or replay re-reads offset 10
    trail.given(SPA_3, 10)
    assert not trail.missing(SPA_3, 12)


def test_partitions_are_followed_apart_and_a_revoked_one_is_forgotten():
    trail = OffsetTrail()
    trail.start(SPA_3, 5)
    trail.start(CARE_3, 0)
    trail.given(SPA_3, 5)
    assert list(trail.missing(CARE_3, 1)) == [0]
    trail.forget([SPA_3])
    assert not trail.knows(SPA_3) and trail.knows(CARE_3)
