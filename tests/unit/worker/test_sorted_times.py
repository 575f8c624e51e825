"""The deadline index's sorted timestamps: a multiset counted by binary search."""
from __future__ import annotations

import bisect

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from podlink.streams.worker.sorted_times import SortedTimes

# Few distinct values, so that duplicates and removals of duplicates are common.
TIMES = st.integers(min_value=0, max_value=40).map(float)
OPERATIONS = st.lists(st.tuples(st.sampled_from(["add", "remove", "count"]), TIMES), max_size=300)


@settings(max_examples=200, deadline=None)
@given(OPERATIONS)
def test_it_counts_as_a_sorted_list_does_through_adds_removals_and_chunk_splits(operations) -> None:
    # Chunks of 3 (split past 6): a few hundred operations split and empty many of them.
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr("podlink.streams.worker.sorted_times.CHUNK", 3)
        _check(operations)


def _check(operations: list[tuple[str, float]]) -> None:
    times, model = SortedTimes(), []
    for operation, value in operations:
        if operation == "add":
            times.add(value)
            bisect.insort(model, value)
        elif operation == "remove":
            if value in model:
                times.remove(value)
                model.remove(value)
            else:
                with pytest.raises(ValueError):
                    times.remove(value)
        assert times.count_at_most(value) == bisect.bisect_right(model, value)
        assert len(times) == len(model)
    assert [times.count_at_most(float(v)) for v in range(-1, 42)] == \
        [bisect.bisect_right(model, float(v)) for v in range(-1, 42)]


def test_counts_at_and_around_the_items() -> None:
    times = SortedTimes()
    for value in (5.0, 1.0, 3.0, 3.0, 9.0):
        times.add(value)
    assert [times.count_at_most(v) for v in (0.0, 1.0, 2.9, 3.0, 8.0, 9.0, 100.0)] == [0, 1, 1, 3, 4, 5, 5]
    times.remove(3.0)
    assert times.count_at_most(3.0) == 2 and len(times) == 4
    times.clear()
    assert len(times) == 0 and times.count_at_most(100.0) == 0
