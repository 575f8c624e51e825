"""Broker fixtures shared by all tests; see tests/brokers.py for the kinds and helpers."""
from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.brokers import KINDS_ENV, BrokerEndpoint, BrokerPool, requested_kinds

BROKER_KINDS = requested_kinds()
BROKER_FIXTURES = {"broker", "tansu_broker", "kafka_broker"}


def pytest_report_header(config: pytest.Config) -> str:
    return f"brokers ({KINDS_ENV}): {', '.join(BROKER_KINDS)}"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    # Marks every test that needs a broker, so `-m "not broker"` runs the rest without one.
    for item in items:
        if "integration" in item.path.parts or BROKER_FIXTURES.intersection(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.broker)


@pytest.fixture(scope="session")
def broker_pool() -> Iterator[BrokerPool]:
    with BrokerPool() as pool:
        yield pool


@pytest.fixture(scope="session", params=BROKER_KINDS)
def broker(request: pytest.FixtureRequest, broker_pool: BrokerPool) -> BrokerEndpoint:
    """Each broker kind listed in PODLINK_TEST_BROKERS in turn; tests show it as `[kind]`."""
    return broker_pool.get(request.param)


@pytest.fixture(scope="session")
def tansu_broker(broker_pool: BrokerPool) -> BrokerEndpoint:
    return broker_pool.get("tansu")


@pytest.fixture(scope="session")
def kafka_broker(broker_pool: BrokerPool) -> BrokerEndpoint:
    return broker_pool.get("kafka")
