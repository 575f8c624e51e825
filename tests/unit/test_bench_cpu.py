"""The bench's CPU figure reads a process's own counters: they grow as it works, user time most."""
import os
import time

from podlink_devtools.bench import process_cpu_seconds


def test_process_cpu_seconds_counts_the_work_the_process_did():
    user_before, system_before = process_cpu_seconds(os.getpid())
    until = time.process_time() + 0.3
    while time.process_time() < until:  # asked rarely: asking is a system call
        sum(range(100_000))
    user_after, system_after = process_cpu_seconds(os.getpid())
    # 0.3 s of CPU spent in this loop, counted in clock ticks (1/100 s here).
    assert 0.25 <= (user_after - user_before) + (system_after - system_before) < 1.0
    assert user_after - user_before >= 0.2
