from podlink.services.deliver.offsets import OffsetTracker


def test_commits_only_below_the_first_unfinished_message():
    tracker = OffsetTracker()
    for offset in (10, 11, 12, 13):
        tracker.fetched("p0", offset)
    assert tracker.committable() == {"p0": 10}
    tracker.finished("p0", 11)
    tracker.finished("p0", 13)  # a later referral's message finished first
    assert tracker.committable() == {"p0": 10}
    tracker.finished("p0", 10)
    assert tracker.committable() == {"p0": 12}
    tracker.finished("p0", 12)
    assert tracker.committable() == {"p0": 14}
    assert tracker.waiting() == 0


def test_partitions_are_independent_and_forgotten_on_revoke():
    tracker = OffsetTracker()
    tracker.fetched("p0", 0)
    tracker.fetched("p1", 5)
    tracker.finished("p1", 5)
    assert tracker.committable() == {"p0": 0, "p1": 6}
    assert tracker.waiting() == 1
    tracker.forget("p0")
    assert tracker.committable() == {"p1": 6}
    assert tracker.waiting() == 0
