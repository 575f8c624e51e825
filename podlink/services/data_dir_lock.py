"""One worker per data directory, known before it joins the consumer group.

Two workers on one `PODLINK_DATA_DIR` both join the group (two rebalances for every other
worker), and the second dies on RocksDB's lock half a minute later, with a traceback. An
exclusive lock on a file in the directory, taken before anything touches Kafka, refuses it at
once. The kernel releases the lock when the process ends, however it ends.
"""
from __future__ import annotations

import fcntl
import os
from pathlib import Path
from typing import IO

LOCK_NAME = "podlink.lock"


class DataDirInUse(RuntimeError):
    """Another process holds the data directory."""


def lock_data_dir(data_dir: Path) -> IO[str]:
    """Lock `data_dir` for this process; keep the returned file open for as long as it runs.

    Raises DataDirInUse, naming the setting, if another process holds the lock.
    """
    data_dir.mkdir(parents=True, exist_ok=True)
    handle = (data_dir / LOCK_NAME).open("a+")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.seek(0)
        holder = handle.read().strip()
        handle.close()
        raise DataDirInUse(
            f"PODLINK_DATA_DIR={data_dir} is in use by another worker"
            f"{f' (pid {holder})' if holder.isdigit() else ''}: give each worker a data "
            "directory of its own") from None
    # The holder's pid, for the message above; the lock, not the file, is what counts.
    handle.seek(0)
    handle.truncate()
    handle.write(str(os.getpid()))
    handle.flush()
    return handle
