from podlink.streams.worker.catchup import CatchUp


def test_a_worker_behind_the_end_offset_is_not_caught_up():
    c = CatchUp(quiet_seconds=3)
    c.processed("tp", 4, at=100.0)
    assert not c.caught_up("tp", end_offset=10, committed=None, now=100.0)
    c.processed("tp", 9, at=101.0)
    assert c.caught_up("tp", end_offset=10, committed=None, now=101.0)


def test_without_progress_here_the_committed_offset_counts():
    c = CatchUp(quiet_seconds=3)
    assert c.caught_up("tp", end_offset=7, committed=7, now=0.0)
    assert not c.caught_up("tp", end_offset=8, committed=7, now=0.0)
    assert c.caught_up("empty", end_offset=0, committed=None, now=0.0)
    assert not c.caught_up("unknown", end_offset=3, committed=None, now=0.0)


def test_a_broker_that_under_reports_end_offsets_needs_a_quiet_partition():
    c = CatchUp(quiet_seconds=3)
    c.processed("tp", 150, at=10.0)
    # Tansu answers the first offset of the last batch plus one: 101, though 151 were read.
    assert not c.caught_up("tp", end_offset=101, committed=None, now=11.0)
    assert c.caught_up("tp", end_offset=101, committed=None, now=13.5)
    # It stays distrusted: a later exact-looking answer still waits for quiet.
    c.processed("tp", 160, at=20.0)
    assert not c.caught_up("tp", end_offset=161, committed=None, now=20.5)


def test_a_revoked_partition_is_forgotten():
    c = CatchUp(quiet_seconds=3)
    c.processed("tp", 9, at=0.0)
    c.forget("tp")
    assert not c.caught_up("tp", end_offset=10, committed=5, now=100.0)
