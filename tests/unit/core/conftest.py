import time

import pytest


@pytest.fixture
def host_in_new_york(monkeypatch):
    """The process's local time zone set far from UTC: nothing podlink writes may follow it."""
    monkeypatch.setenv("TZ", "America/New_York")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()
