"""An upper bound of a worker's event-loop lag, measured from outside: /healthz response times.

The worker's /healthz handler does no work, so the time it takes to answer is the time its
event loop was busy with something else, plus the HTTP round trip. Polled every 10 ms, the
slowest answer bounds the longest the loop was blocked while polling (from above: the HTTP
overhead and this machine's scheduling are included). The poller runs in a process of its
own, so the bench's own Python work (producing records) cannot hold it up through the GIL.
"""
from __future__ import annotations

import http.client
import multiprocessing
import time
from dataclasses import dataclass
from multiprocessing.connection import Connection
from multiprocessing.synchronize import Event
from types import TracebackType
from typing import Self

from podlink_devtools.bench import BenchError, percentile

POLL_INTERVAL = 0.010
# A loop blocked longer than this is a stuck worker, counted among the failures.
REQUEST_TIMEOUT = 30.0


@dataclass(frozen=True)
class LoopLag:
    samples: int
    failures: int  # requests that got no answer (refused, reset or timed out)
    max_ms: float
    p99_ms: float
    median_ms: float


class HealthzProbe:
    """`with HealthzProbe(port) as probe: ...` then `probe.result`: /healthz polled meanwhile."""

    def __init__(self, port: int) -> None:
        context = multiprocessing.get_context("spawn")
        self._stop = context.Event()
        self._results, self._sender = context.Pipe(duplex=False)
        self._process = context.Process(target=_poll, args=(port, self._stop, self._sender), daemon=True)
        self.result: LoopLag | None = None

    def __enter__(self) -> Self:
        self._process.start()
        # Only the poller writes: with this end closed here, its death ends recv() with EOFError.
        self._sender.close()
        return self

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None,
                 traceback: TracebackType | None) -> None:
        self._stop.set()
        try:
            if kind is None:
                times, failures = self._results.recv()
                self.result = _summary(times, failures)
        except EOFError:
            raise BenchError("the /healthz poller died before reporting") from None
        finally:
            self._process.join(REQUEST_TIMEOUT + 5)
            if self._process.is_alive():
                self._process.kill()


def _poll(port: int, stop: Event, results: Connection) -> None:
    times: list[float] = []
    failures = 0
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=REQUEST_TIMEOUT)
    while not stop.is_set():
        started = time.perf_counter()
        try:
            connection.request("GET", "/healthz")
            connection.getresponse().read()
            times.append(time.perf_counter() - started)
        except (OSError, http.client.HTTPException):
            failures += 1
            connection.close()  # reconnects on the next request
        stop.wait(max(0.0, POLL_INTERVAL - (time.perf_counter() - started)))
    connection.close()
    results.send((times, failures))


def _summary(times: list[float], failures: int) -> LoopLag:
    if not times:
        return LoopLag(0, failures, 0.0, 0.0, 0.0)
    ordered = sorted(t * 1000 for t in times)
    return LoopLag(len(ordered), failures, ordered[-1], percentile(ordered, 0.99),
                   percentile(ordered, 0.50))
