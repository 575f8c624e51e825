"""Running `podlink bench` as a user does, for the tests of its modes."""
from __future__ import annotations

import os
import subprocess
import sys

from tests.support.worker_process import REPO


def run_bench(*args: str, timeout: float) -> subprocess.CompletedProcess[str]:
    """`podlink bench ARGS` without this environment's PODLINK_ settings; it must succeed."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PODLINK_")}
    result = subprocess.run([sys.executable, "-m", "podlink.services.cli", "bench", *args],
                            cwd=REPO, env=env, text=True, capture_output=True, timeout=timeout)
    assert result.returncode == 0, result.stderr[-3000:]
    return result
