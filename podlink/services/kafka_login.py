"""One connection to Kafka before a worker starts, to name the reason if it fails.

kafka-python and aiokafka both turn a refused SASL login, an untrusted broker certificate or a
missing client certificate into "Unable to bootstrap" (kafka-python only after retrying for
its whole bootstrap timeout), with the reason in a log line at best; and brokers that cannot
be reached at all into half a minute of client error lines. Operators need the reason, once.
"""
from __future__ import annotations

import asyncio
import socket
import ssl
from typing import Any

from aiokafka.conn import create_conn
from aiokafka.errors import (
    KafkaConnectionError,
    KafkaError,
    SaslAuthenticationFailed,
    UnsupportedSaslMechanismError,
)
from aiokafka.protocol.metadata import MetadataRequest

from podlink.streams.worker.kafka_security import KafkaSecurityError, client_options
from podlink.streams.worker.settings import SASL_PROTOCOLS, TLS_PROTOCOLS, Settings


class KafkaLoginError(KafkaSecurityError):
    """The broker refused the connection as configured (the message never holds a secret)."""


class KafkaUnreachableError(RuntimeError):
    """No server in PODLINK_KAFKA_BOOTSTRAP answered."""


def check_login(s: Settings, timeout: float = 10.0) -> None:
    """Connect with the security settings and ask for metadata, trying each server in turn.

    Raises KafkaLoginError if a broker refuses the connection as configured, and
    KafkaUnreachableError if no server answers within `timeout` seconds each.
    """
    # A loop of its own, never made current: asyncio.run would leave no current loop behind,
    # and the Faust worker that starts next takes the current one.
    loop = asyncio.new_event_loop()
    try:
        loop.run_until_complete(_check(s, client_options(s), timeout))
    finally:
        loop.close()


async def _check(s: Settings, options: dict[str, Any], timeout: float) -> None:
    failures = []
    for address in s.kafka_bootstrap.split(","):
        host, _, port = address.strip().rpartition(":")
        try:
            conn = await asyncio.wait_for(create_conn(host, int(port), **options), timeout)
            try:
                await asyncio.wait_for(conn.send(MetadataRequest([])), timeout)
            finally:
                conn.close()
            return
        except (SaslAuthenticationFailed, UnsupportedSaslMechanismError, ssl.SSLError) as exc:
            raise KafkaLoginError(f"cannot connect to Kafka at {address}: {_why(s, exc)}") from None
        except KafkaConnectionError as exc:
            # A plain listener that hangs up is not a login question: the server is not Kafka.
            if s.kafka_security_protocol != "PLAINTEXT":
                raise KafkaLoginError(f"cannot connect to Kafka at {address}: {_why(s, exc)}") from None
            failures.append(f"{address.strip()}: {unreachable_reason(exc, timeout)}")
        except (OSError, asyncio.TimeoutError, KafkaError) as exc:
            failures.append(f"{address.strip()}: {unreachable_reason(exc, timeout)}")
    raise KafkaUnreachableError(
        f"cannot reach Kafka ({'; '.join(failures)}); check PODLINK_KAFKA_BOOTSTRAP and that the "
        "brokers are running")


def unreachable_reason(exc: BaseException, timeout: float) -> str:
    """Why one server did not answer, in a few words (and no exception name said twice)."""
    if isinstance(exc, asyncio.TimeoutError):
        return f"no answer within {timeout:g} s"
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused"
    if isinstance(exc, socket.gaierror):
        return f"unknown host ({exc.strerror})"
    if isinstance(exc, KafkaConnectionError):
        return "the connection was closed"
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return error_text(exc)


def error_text(exc: BaseException) -> str:
    """`Type: message`, without the type twice when the message already starts with it."""
    text, name = str(exc), type(exc).__name__
    if not text:
        return name
    return text if text.startswith(name) else f"{name}: {text}"


def _why(s: Settings, exc: BaseException) -> str:
    protocol, mechanism = s.kafka_security_protocol, s.kafka_sasl_mechanism
    if isinstance(exc, SaslAuthenticationFailed):
        return (f"the broker refused the SASL {mechanism} login of user {s.kafka_sasl_username!r} "
                f"({exc}); check PODLINK_KAFKA_SASL_USERNAME, PODLINK_KAFKA_SASL_PASSWORD "
                "and PODLINK_KAFKA_SASL_MECHANISM")
    if isinstance(exc, UnsupportedSaslMechanismError):
        return f"the broker does not offer SASL {mechanism} ({exc}); check PODLINK_KAFKA_SASL_MECHANISM"
    if isinstance(exc, ssl.SSLCertVerificationError):
        return (f"the broker's certificate is not trusted ({exc.verify_message}); check "
                "PODLINK_KAFKA_SSL_CA_FILE")
    if isinstance(exc, ssl.SSLError):
        return f"TLS failed ({exc.reason}); check that the listener speaks {protocol}"
    client_cert = (", and whether the listener requires a client certificate (PODLINK_KAFKA_SSL_CERT_FILE)"
                   if protocol in TLS_PROTOCOLS and s.kafka_ssl_cert_file is None else "")
    offers = f", and whether it offers SASL {mechanism}" if protocol in SASL_PROTOCOLS else ""
    return (f"the broker closed the connection ({exc}); check that the listener speaks "
            f"PODLINK_KAFKA_SECURITY_PROTOCOL={protocol}{offers}{client_cert}")
