"""The broker a bench runs on: embedded Tansu, the Apache Kafka jar broker, or `--bootstrap`."""
from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Literal

from podlink.services.embedded_broker import EmbeddedBroker
from podlink_devtools.apache_kafka import KAFKA_VERSION, ApacheKafkaBroker
from podlink_devtools.console import progress

BrokerKind = Literal["tansu", "kafka"]


@dataclass(frozen=True)
class BenchBroker:
    bootstrap: str
    label: str  # as the report names it
    # Tansu under-reports end offsets, which the worker and a fresh group must allow for.
    tansu: bool


@contextmanager
def bench_broker(kind: BrokerKind, bootstrap: str | None) -> Iterator[BenchBroker]:
    """`bootstrap` if given (an external broker, left running), else a new broker of `kind`."""
    if bootstrap is not None:
        yield BenchBroker(bootstrap, bootstrap, tansu=False)
    elif kind == "tansu":
        progress("starting an embedded Tansu broker (memory only)")
        with EmbeddedBroker() as tansu:
            yield BenchBroker(tansu.bootstrap, "embedded Tansu (memory)", tansu=True)
    else:
        progress(f"starting Apache Kafka {KAFKA_VERSION} (jar, single node)")
        with ApacheKafkaBroker() as kafka:
            yield BenchBroker(kafka.bootstrap, f"Apache Kafka {KAFKA_VERSION} (jar)", tansu=False)

