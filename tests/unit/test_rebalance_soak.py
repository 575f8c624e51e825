from podlink_devtools.rebalance_soak import missing_offsets


def test_offsets_no_worker_handled_are_reported_per_partition():
    ends = {("spa.referral-events.v1", 5): 4, ("pod.care-events.v1", 5): 2, ("pod.care-events.v1", 0): 0}
    handled = [("spa.referral-events.v1", 5, 2), ("spa.referral-events.v1", 5, 3),
               ("pod.care-events.v1", 5, 0), ("pod.care-events.v1", 5, 1), ("pod.care-events.v1", 5, 1)]
    assert missing_offsets(ends, handled) == {("spa.referral-events.v1", 5): [0, 1]}


def test_nothing_is_missing_when_every_offset_was_handled_by_one_worker_or_the_other():
    ends = {("spa.referral-events.v1", 1): 3}
    assert missing_offsets(ends, [("spa.referral-events.v1", 1, o) for o in (2, 0, 1)]) == {}
