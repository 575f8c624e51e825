"""Reading a worker's /metrics in end-to-end tests."""
from __future__ import annotations

from urllib.error import HTTPError, URLError
from urllib.request import urlopen

from prometheus_client.parser import text_string_to_metric_families

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
