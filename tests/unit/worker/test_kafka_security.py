"""The PODLINK_KAFKA_* security settings: what is refused, and what each Kafka client is given."""
from __future__ import annotations

import os
import ssl
import subprocess
import sys
from pathlib import Path
from typing import Any

import faust
import pytest
from faust.transport.drivers.aiokafka import credentials_to_aiokafka_auth
from pydantic import ValidationError

from podlink.streams.worker.kafka_security import (
    KafkaSecurityError,
    client_options,
    faust_credentials,
    tls_context,
)
from podlink.streams.worker.settings import Settings, describe_invalid
from tests.support.tls import TlsFiles, write_tls_files

PASSWORD = "pw-7f3c9a-never-shown"
KEY_PASSWORD = "key-pw-41d2e8-never-shown"
REPO = Path(__file__).resolve().parents[3]


@pytest.fixture(scope="module")
def tls(tmp_path_factory: pytest.TempPathFactory) -> TlsFiles:
    return write_tls_files(tmp_path_factory.mktemp("tls"), client_key_password=KEY_PASSWORD)


@pytest.fixture(autouse=True)
def no_podlink_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("PODLINK_"):
            monkeypatch.delenv(name)


def settings(**security: Any) -> Settings:
    return Settings(kafka_bootstrap="127.0.0.1:9093", **security)


def refusal(**security: Any) -> str:
    with pytest.raises(ValidationError) as caught:
        settings(**security)
    return describe_invalid(caught.value)


SCRAM = {"kafka_security_protocol": "SASL_SSL", "kafka_sasl_mechanism": "SCRAM-SHA-512",
         "kafka_sasl_username": "podlink", "kafka_sasl_password": PASSWORD}


def test_plaintext_is_the_default_and_gives_no_credentials():
    s = settings()
    assert s.kafka_security_protocol == "PLAINTEXT"
    assert client_options(s) == {"security_protocol": "PLAINTEXT"}
    assert faust_credentials(s) is None


@pytest.mark.parametrize("missing", ["kafka_sasl_mechanism", "kafka_sasl_username", "kafka_sasl_password"])
def test_a_sasl_protocol_needs_mechanism_username_and_password(missing):
    message = refusal(**{**SCRAM, missing: None})
    assert f"PODLINK_{missing.upper()} is required with PODLINK_KAFKA_SECURITY_PROTOCOL=SASL_SSL" in message
    assert PASSWORD not in message


def test_an_empty_password_counts_as_missing():
    assert "PODLINK_KAFKA_SASL_PASSWORD is required" in refusal(**{**SCRAM, "kafka_sasl_password": ""})


def test_an_unknown_protocol_or_mechanism_is_refused_by_name():
    assert "PODLINK_KAFKA_SECURITY_PROTOCOL" in refusal(kafka_security_protocol="TLS")
    assert "PODLINK_KAFKA_SASL_MECHANISM" in refusal(**{**SCRAM, "kafka_sasl_mechanism": "GSSAPI"})


def test_sasl_settings_without_a_sasl_protocol_are_refused_not_ignored():
    message = refusal(kafka_sasl_username="podlink", kafka_sasl_password=PASSWORD)
    assert ("PODLINK_KAFKA_SASL_USERNAME is set but PODLINK_KAFKA_SECURITY_PROTOCOL=PLAINTEXT "
            "does not use SASL") in message
    assert "PODLINK_KAFKA_SASL_PASSWORD is set" in message and PASSWORD not in message


def test_tls_files_without_a_tls_protocol_are_refused(tls):
    message = refusal(**{**SCRAM, "kafka_security_protocol": "SASL_PLAINTEXT", "kafka_ssl_ca_file": tls.ca})
    assert ("PODLINK_KAFKA_SSL_CA_FILE is set but PODLINK_KAFKA_SECURITY_PROTOCOL=SASL_PLAINTEXT "
            "does not use TLS") in message


def test_certificate_and_key_go_together(tls):
    message = refusal(kafka_security_protocol="SSL", kafka_ssl_cert_file=tls.client_cert)
    assert "PODLINK_KAFKA_SSL_CERT_FILE and PODLINK_KAFKA_SSL_KEY_FILE go together" in message
    message = refusal(kafka_security_protocol="SSL", kafka_ssl_key_file=tls.client_key)
    assert "go together" in message


def test_a_key_password_needs_a_key(tls):
    message = refusal(kafka_security_protocol="SSL", kafka_ssl_key_password=KEY_PASSWORD)
    assert "PODLINK_KAFKA_SSL_KEY_PASSWORD is set without PODLINK_KAFKA_SSL_KEY_FILE" in message
    assert KEY_PASSWORD not in message


def test_tls_files_must_exist(tmp_path):
    missing = tmp_path / "nowhere.pem"
    message = refusal(**{**SCRAM, "kafka_ssl_ca_file": missing})
    assert f"PODLINK_KAFKA_SSL_CA_FILE={missing} is not a readable file" in message


def test_pydantic_would_print_the_password_but_podlink_does_not(monkeypatch):
    monkeypatch.setenv("PODLINK_KAFKA_SECURITY_PROTOCOL", "SASL_SSL")
    monkeypatch.setenv("PODLINK_KAFKA_SASL_PASSWORD", PASSWORD)
    with pytest.raises(ValidationError) as caught:
        Settings()
    assert PASSWORD in str(caught.value)  # the input of a check across settings is all of them
    message = describe_invalid(caught.value)
    assert "PODLINK_KAFKA_SASL_MECHANISM is required" in message and PASSWORD not in message


def test_an_invalid_plain_setting_still_shows_what_was_given():
    assert describe_invalid(_error(deadline_scan_seconds="soon")).startswith(
        "PODLINK_DEADLINE_SCAN_SECONDS: Input should be a valid number")
    assert "(got 'soon')" in describe_invalid(_error(deadline_scan_seconds="soon"))


def _error(**values: Any) -> ValidationError:
    with pytest.raises(ValidationError) as caught:
        Settings(**values)
    return caught.value


def test_secrets_stay_hidden_in_the_settings_repr():
    s = settings(**SCRAM)
    assert PASSWORD not in repr(s) and PASSWORD not in str(s.model_dump())


def test_sasl_plaintext_gives_the_login_and_no_tls():
    s = settings(**{**SCRAM, "kafka_security_protocol": "SASL_PLAINTEXT", "kafka_sasl_mechanism": "PLAIN"})
    assert client_options(s) == {
        "security_protocol": "SASL_PLAINTEXT", "sasl_mechanism": "PLAIN",
        "sasl_plain_username": "podlink", "sasl_plain_password": PASSWORD,
    }
    assert tls_context(s) is None


def test_sasl_ssl_checks_the_broker_against_the_ca_file(tls):
    s = settings(**SCRAM, kafka_ssl_ca_file=tls.ca)
    options = client_options(s)
    context = options.pop("ssl_context")
    assert options == {"security_protocol": "SASL_SSL", "sasl_mechanism": "SCRAM-SHA-512",
                       "sasl_plain_username": "podlink", "sasl_plain_password": PASSWORD}
    assert context.verify_mode == ssl.CERT_REQUIRED and context.check_hostname
    assert [c["subject"] for c in context.get_ca_certs()] == [((("commonName", "podlink test CA"),),)]


def test_without_a_ca_file_the_system_cas_are_trusted():
    context = tls_context(settings(kafka_security_protocol="SSL"))
    assert context is not None and context.verify_mode == ssl.CERT_REQUIRED


@pytest.mark.parametrize("mechanism", ["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"])
def test_faust_passes_the_same_login_to_aiokafka(tls, mechanism):
    # What Faust's aiokafka driver makes of our credentials is what its consumer, producer and
    # topic-creating client get; SCRAM must survive it, not fall back to PLAIN.
    s = settings(**{**SCRAM, "kafka_sasl_mechanism": mechanism}, kafka_ssl_ca_file=tls.ca)
    credentials = faust_credentials(s)
    assert isinstance(credentials, faust.SASLCredentials)
    assert PASSWORD not in repr(credentials)
    auth = credentials_to_aiokafka_auth(credentials)
    assert isinstance(auth.pop("ssl_context"), ssl.SSLContext)
    expected = client_options(s)
    expected.pop("ssl_context")
    assert auth == expected


def test_mutual_tls_presents_the_client_certificate(tls):
    s = settings(kafka_security_protocol="SSL", kafka_ssl_ca_file=tls.ca, kafka_ssl_cert_file=tls.client_cert,
                 kafka_ssl_key_file=tls.client_key, kafka_ssl_key_password=KEY_PASSWORD)
    credentials = faust_credentials(s)
    assert isinstance(credentials, faust.SSLCredentials)
    assert credentials_to_aiokafka_auth(credentials)["security_protocol"] == "SSL"
    assert set(client_options(s)) == {"security_protocol", "ssl_context"}


@pytest.mark.parametrize("key_password", [None, "not-the-key-password"])
def test_a_key_that_cannot_be_opened_is_a_clear_error_without_the_password(tls, key_password):
    s = settings(kafka_security_protocol="SSL", kafka_ssl_cert_file=tls.client_cert,
                 kafka_ssl_key_file=tls.client_key, kafka_ssl_key_password=key_password)
    with pytest.raises(KafkaSecurityError, match="cannot load the TLS files") as caught:
        tls_context(s)
    assert "not-the-key-password" not in str(caught.value)


def test_a_certificate_that_does_not_match_the_key_is_refused(tls):
    s = settings(kafka_security_protocol="SSL", kafka_ssl_cert_file=tls.broker_cert,
                 kafka_ssl_key_file=tls.client_key, kafka_ssl_key_password=KEY_PASSWORD)
    with pytest.raises(KafkaSecurityError, match="KEY_VALUES_MISMATCH"):
        tls_context(s)


def test_help_lists_the_security_settings_and_never_a_secret():
    env = {**os.environ, "PODLINK_KAFKA_SASL_PASSWORD": PASSWORD,
           "PODLINK_KAFKA_SSL_KEY_PASSWORD": KEY_PASSWORD}
    out = subprocess.run([sys.executable, "-m", "podlink.services.cli", "--help"], cwd=REPO, env=env,
                         capture_output=True, text=True, check=True).stdout
    for name in ("SECURITY_PROTOCOL", "SASL_MECHANISM", "SASL_USERNAME", "SASL_PASSWORD", "SSL_CA_FILE",
                 "SSL_CERT_FILE", "SSL_KEY_FILE", "SSL_KEY_PASSWORD"):
        assert f"PODLINK_KAFKA_{name}" in out
    assert PASSWORD not in out and KEY_PASSWORD not in out


def test_an_invalid_security_setting_stops_the_cli_without_showing_the_password():
    env = {**os.environ, "PODLINK_KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
           "PODLINK_KAFKA_SASL_PASSWORD": PASSWORD}
    result = subprocess.run([sys.executable, "-m", "podlink.services.cli", "worker"], cwd=REPO, env=env,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert "PODLINK_KAFKA_SASL_USERNAME is required" in result.stderr
    assert PASSWORD not in result.stderr + result.stdout
