from podlink.services.replay import (
    Move,
    PartitionOffsets,
    format_plan,
    plan_moves,
    refusal,
)

SPA = "spa.referral-events.v1"


def offsets(committed, earliest=0, latest=100, partition=0):
    return PartitionOffsets(SPA, partition, committed, earliest, latest)


def test_moving_back_re_reads_the_records_between_the_target_and_the_commit():
    [move] = plan_moves([offsets(80)], {(SPA, 0): 50})
    assert (move.new, move.rereads) == (50, 30)


def test_offsets_are_never_moved_forward_so_no_record_is_skipped():
    [ahead] = plan_moves([offsets(40)], {(SPA, 0): 60})
    [same] = plan_moves([offsets(40)], {(SPA, 0): 40})
    assert ahead.new is None and ahead.rereads == 0 and "left as it is" in ahead.note
    assert same.new is None
    # Beyond the end is forward too.
    [beyond] = plan_moves([offsets(100)], {(SPA, 0): 500})
    assert beyond.new is None


def test_a_partition_without_a_commit_is_read_from_the_earliest_record_anyway():
    [move] = plan_moves([offsets(None, earliest=10)], {(SPA, 0): 20})
    assert move.new is None and move.committed is None and "no committed offset" in move.note


def test_a_target_older_than_retention_starts_at_the_earliest_record_and_says_so():
    [move] = plan_moves([offsets(90, earliest=30)], {(SPA, 0): 5})
    assert (move.new, move.rereads) == (30, 60)
    assert "retention" in move.note


def test_a_commit_older_than_retention_counts_from_the_earliest_record():
    [move] = plan_moves([offsets(10, earliest=30, latest=90)], {(SPA, 0): 30})
    assert move.new is None  # a worker would start at 30 anyway


def test_each_partition_gets_its_own_target():
    moves = plan_moves([offsets(50, partition=0), offsets(70, partition=1)], {(SPA, 0): 45, (SPA, 1): 0})
    assert [(m.partition, m.new, m.rereads) for m in moves] == [(0, 45, 5), (1, 0, 70)]


def test_the_plan_shows_every_partition_and_the_totals():
    moves = [Move(SPA, 0, 80, 50, 30), Move(SPA, 1, None, None, 0, "already at or before the target: left as it is")]
    text = format_plan("podlink", moves).splitlines()
    assert text[0] == "consumer group podlink: 2 partition(s), 1 to move back, 30 records to re-read"
    assert text[2].split() == [SPA, "0", "80", "50", "30"]
    assert text[3].split()[:5] == [SPA, "1", "none", "-", "0"]


def test_a_group_with_members_is_refused_and_an_empty_one_is_not():
    running = {"group_state": "Stable", "members": [{"client_host": "/10.0.0.7"}, {"client_host": "/10.0.0.8"}]}
    reason = refusal("podlink", running)
    assert reason is not None and "2 member(s)" in reason and "10.0.0.7, 10.0.0.8" in reason
    assert "Stop every podlink worker" in reason
    assert refusal("podlink", {"group_state": "Empty", "members": []}) is None
    # A group between states (a rebalance after the last member left) is not yet safe.
    assert refusal("podlink", {"group_state": "PreparingRebalance", "members": []}) is not None
