"""A `podlink worker` in its own process, as trust IT would run it, for end-to-end tests.

The launcher is the benchmarks' too (devtools/podlink_devtools/worker_process.py).
"""
from __future__ import annotations

from pathlib import Path

from podlink_devtools.worker_process import WorkerProcess

REPO = Path(__file__).resolve().parents[2]

__all__ = ["REPO", "WorkerProcess"]
