"""The `PODLINK_KAFKA_*` security settings in the form each Kafka client library takes them.

A worker opens Kafka connections from three libraries: Faust (over aiokafka) for its streams
and tables, aiokafka for the alert ledger, and kafka-python for creating topics. All three get
the same protocol, SASL login and TLS context from here, so no connection is left plain.
"""
from __future__ import annotations

import ssl
from typing import Any

import faust
from aiokafka.helpers import create_ssl_context
from faust.types.auth import CredentialsT

from podlink.streams.worker.settings import SASL_PROTOCOLS, TLS_PROTOCOLS, Settings


class KafkaSecurityError(RuntimeError):
    """The TLS files could not be loaded (the message names the settings, never secrets)."""


def tls_context(s: Settings) -> ssl.SSLContext | None:
    """TLS for the SSL protocols, else None.

    The broker's certificate and host name are checked against PODLINK_KAFKA_SSL_CA_FILE, or
    the system's CAs when unset; the client certificate is presented when one is set.
    """
    if s.kafka_security_protocol not in TLS_PROTOCOLS:
        return None
    # Never None: with no password OpenSSL would prompt on the terminal for an encrypted key,
    # which hangs a worker with no terminal instead of failing.
    password = s.kafka_ssl_key_password.get_secret_value() if s.kafka_ssl_key_password else ""
    try:
        return create_ssl_context(cafile=s.kafka_ssl_ca_file, certfile=s.kafka_ssl_cert_file,
                                  keyfile=s.kafka_ssl_key_file, password=password)
    except (ssl.SSLError, OSError) as exc:
        raise KafkaSecurityError(
            "cannot load the TLS files (PODLINK_KAFKA_SSL_CA_FILE, PODLINK_KAFKA_SSL_CERT_FILE, "
            f"PODLINK_KAFKA_SSL_KEY_FILE, PODLINK_KAFKA_SSL_KEY_PASSWORD): {_reason(exc)}"
        ) from None


def client_options(s: Settings) -> dict[str, Any]:
    """Keyword arguments for any aiokafka or kafka-python client (both take the same names)."""
    options: dict[str, Any] = {"security_protocol": s.kafka_security_protocol}
    context = tls_context(s)
    if context is not None:
        options["ssl_context"] = context
    if s.kafka_security_protocol in SASL_PROTOCOLS:
        options.update(sasl_mechanism=s.kafka_sasl_mechanism, sasl_plain_username=s.kafka_sasl_username,
                       sasl_plain_password=_password(s))
    return options


def faust_credentials(s: Settings) -> CredentialsT | None:
    """Faust's `broker_credentials`: None for PLAINTEXT.

    Faust hands SASLCredentials' mechanism to aiokafka as it is, so SCRAM-SHA-256 and
    SCRAM-SHA-512 work as well as PLAIN; a TLS context makes it SASL_SSL.
    """
    context = tls_context(s)
    if s.kafka_security_protocol in SASL_PROTOCOLS:
        return faust.SASLCredentials(username=s.kafka_sasl_username, password=_password(s),
                                     mechanism=s.kafka_sasl_mechanism, ssl_context=context)
    if context is not None:
        return faust.SSLCredentials(context)
    return None


def _password(s: Settings) -> str:
    assert s.kafka_sasl_password is not None  # Settings requires it for the SASL protocols
    return s.kafka_sasl_password.get_secret_value()


def _reason(exc: BaseException) -> str:
    if isinstance(exc, ssl.SSLError) and exc.reason:
        return f"{exc.reason} ({exc.library or 'ssl'})"
    return f"{type(exc).__name__}: {exc}"
