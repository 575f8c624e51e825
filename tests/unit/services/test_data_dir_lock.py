"""One worker per data directory: the second is refused at once, naming the setting."""
from __future__ import annotations

import os

import pytest

from podlink.services.data_dir_lock import DataDirInUse, lock_data_dir


def test_a_second_holder_is_refused_until_the_first_lets_go(tmp_path):
    data_dir = tmp_path / "data"
    first = lock_data_dir(data_dir)  # creates the directory
    # flock locks belong to an open file, so a second open in this process conflicts as
    # another process would.
    with pytest.raises(DataDirInUse) as refused:
        lock_data_dir(data_dir)
    assert str(refused.value) == (f"PODLINK_DATA_DIR={data_dir} is in use by another worker "
                                  f"(pid {os.getpid()}): give each worker a data directory of its own")
    first.close()
    lock_data_dir(data_dir).close()
