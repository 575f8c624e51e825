"""Loaded by a worker started with this folder on PYTHONPATH: Faust's consumer drops input
records it has fetched, as it does around a rebalance (podlink/streams/worker/progress_watch.py).

PODLINK_TEST_DROP=always drops every input record fetched (a consumer that gives nothing);
PODLINK_TEST_DROP=FILE drops the first fetch of each input record fetched while FILE exists
(fetched again, it is handed on).
"""
import os
from pathlib import Path

_DROP = os.environ.get("PODLINK_TEST_DROP")
if _DROP:
    from faust.transport.consumer import Consumer

    from podlink.streams.worker.settings import INPUT_TOPICS

    _fetch = Consumer.getmany
    _fetched: set[tuple[object, int]] = set()

    def _dropped(tp, offset: int) -> bool:  # type: ignore[no-untyped-def]
        first = (tp, offset) not in _fetched
        _fetched.add((tp, offset))
        return _DROP == "always" or (first and Path(_DROP).exists())

    async def _getmany(self, timeout):  # type: ignore[no-untyped-def]
        async for tp, message in _fetch(self, timeout):
            if not (tp.topic in INPUT_TOPICS and _dropped(tp, message.offset)):
                yield tp, message

    Consumer.getmany = _getmany  # type: ignore[method-assign]
