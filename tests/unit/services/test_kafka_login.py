"""How a worker says it cannot reach Kafka: once, and without an exception name said twice."""
from __future__ import annotations

import asyncio
import socket

from aiokafka.errors import KafkaConnectionError
from kafka.errors import KafkaTimeoutError

from podlink.services.kafka_login import error_text, unreachable_reason


def test_each_way_of_not_answering_in_a_few_words():
    assert unreachable_reason(asyncio.TimeoutError(), 10.0) == "no answer within 10 s"
    assert unreachable_reason(ConnectionRefusedError(111, "Connect call failed"), 10) == "connection refused"
    assert (unreachable_reason(socket.gaierror(-2, "Name or service not known"), 10)
            == "unknown host (Name or service not known)")
    assert unreachable_reason(KafkaConnectionError("closed"), 10) == "the connection was closed"
    assert unreachable_reason(OSError(113, "No route to host"), 10) == "No route to host"


def test_an_error_text_says_the_exception_name_once():
    # kafka-python's message already starts with its name: "KafkaTimeoutError: Unable to ...".
    repeated = KafkaTimeoutError("Unable to bootstrap from 127.0.0.1:1")
    assert str(repeated).startswith("KafkaTimeoutError")
    assert error_text(repeated) == "KafkaTimeoutError: Unable to bootstrap from 127.0.0.1:1"
    assert error_text(ValueError("bad")) == "ValueError: bad"
    assert error_text(RuntimeError()) == "RuntimeError"
