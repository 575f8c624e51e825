"""Reading a worker's /metrics in end-to-end tests."""
from __future__ import annotations

from collections.abc import Callable
from urllib.error import HTTPError, URLError
from urllib.request import urlopen

from prometheus_client.parser import text_string_to_metric_families

from tests.support.broker_io import wait_until

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def get(url: str) -> tuple[int, str]:
    try:
        with urlopen(url, timeout=5) as response:
            return response.status, response.read().decode()
    except HTTPError as error:
        return error.code, error.read().decode()


def samples(metrics_text: str) -> Samples:
    return {(s.name, frozenset(s.labels.items())): s.value
            for family in text_string_to_metric_families(metrics_text) for s in family.samples}


def total(metrics: Samples, name: str, **labels: str) -> float:
    return sum(v for (n, ls), v in metrics.items() if n == name and set(labels.items()) <= ls)


def scrape(web_url: str) -> Samples:
    """The worker's metrics now; empty while its web server is not up."""
    try:
        status, text = get(f"{web_url}/metrics")
    except (URLError, ConnectionError):
        return {}
    return samples(text) if status == 200 else {}


def counting(web_url: str, records: int) -> Callable[[], Samples | None]:
    """A `wait_until` condition: the worker's metrics once they count `records` input records."""
    return lambda: m if total(m := scrape(web_url), "podlink_records_total") >= records else None


def after_more_scans(web_url: str, scans: int = 2, timeout: float = 60) -> Samples:
    """The worker's metrics once it has completed `scans` more deadline scans than now.

    The last of them started after this call: whatever it had to raise is on the alerts topic.
    """
    start = total(scrape(web_url), "podlink_deadline_scans_total")
    return wait_until(
        lambda: m if total(m := scrape(web_url), "podlink_deadline_scans_total") >= start + scans else None,
        timeout, f"{scans} more deadline scans")
