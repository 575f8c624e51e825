"""Configuration: environment variables prefixed `PODLINK_`, and an optional YAML policy file."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from podlink.fhir_mappings import DEFAULT_BASE_URL, check_base_url

SPA_TOPIC = "spa.referral-events.v1"
CARE_TOPIC = "pod.care-events.v1"
FHIR_TOPIC = "epr.fhir-messages.v1"
OUTCOMES_TOPIC = "pod.outcomes.v1"
ALERTS_TOPIC = "pod.sla-alerts.v1"
DEAD_LETTER_TOPIC = "podlink.dead-letter.v1"
# The alert ledger's own record (compacted): which alerts went out, for referrals that can still alert.
ALERT_LEDGER_TOPIC = "podlink.alert-ledger.v1"
INPUT_TOPICS = (SPA_TOPIC, CARE_TOPIC)
OUTPUT_TOPICS = (FHIR_TOPIC, OUTCOMES_TOPIC, ALERTS_TOPIC, DEAD_LETTER_TOPIC)

SecurityProtocol = Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"]
SaslMechanism = Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"]
TLS_PROTOCOLS = frozenset({"SSL", "SASL_SSL"})
SASL_PROTOCOLS = frozenset({"SASL_PLAINTEXT", "SASL_SSL"})
KAFKA_SECURITY_FIELDS = (
    "kafka_security_protocol", "kafka_sasl_mechanism", "kafka_sasl_username", "kafka_sasl_password",
    "kafka_ssl_ca_file", "kafka_ssl_cert_file", "kafka_ssl_key_file", "kafka_ssl_key_password",
)


class Settings(BaseSettings):
    """Every setting of a worker; `podlink --help` lists them from these descriptions."""

    model_config = SettingsConfigDict(env_prefix="PODLINK_", extra="ignore")

    kafka_bootstrap: str = Field(default="127.0.0.1:9092", description="Kafka brokers, host:port[,host:port]")
    teams: Annotated[frozenset[str] | None, NoDecode] = Field(
        default=None, description="comma-separated team codes in scope; unset means every team"
    )
    partitions: int = Field(
        default=6, ge=1, description="partitions of the topics podlink creates (both input topics alike)"
    )
    replication_factor: int = Field(default=1, ge=1, description="replication factor of created topics")
    deadline_scan_seconds: float = Field(default=5.0, gt=0, description="how often deadlines are checked")
    catch_up_quiet_seconds: float = Field(
        default=3.0, gt=0,
        description="on a broker seen to under-report end offsets, how long a partition must be "
        "quiet before it counts as caught up",
    )
    policy_file: Path | None = Field(
        default=None, description="YAML file of deadline policies and hooks (docs/policies.md); "
        "unset: the shipped default_policies.yaml"
    )
    data_dir: Path = Field(default=Path("./podlink-data"), description="where workers keep RocksDB tables")
    group_id: str = Field(default="podlink", description="consumer group and table namespace")
    session_timeout_seconds: float = Field(
        default=10.0, ge=6, description="Kafka consumer session timeout (group rebalance speed)"
    )
    standby_replicas: int = Field(
        default=1, ge=0, description="standby copies of each table partition kept by other workers "
        "(faster takeover, more disk); 0 makes a takeover read the changelog topics"
    )
    store: Literal["rocksdb", "memory"] = Field(default="rocksdb", description="table store")
    recovery_consistency_check: bool = Field(
        default=True, description="check table offsets against the broker's on recovery (off for Tansu)"
    )
    broker_outage_log_seconds: float = Field(
        default=30.0, gt=0, description="while the Kafka broker is unreachable, how often the worker says so again"
    )
    stall_seconds: float = Field(
        default=30.0, ge=5, description="a partition on which no record was handled this long, where a record "
        "waits, has the consumer sent back to it; if it still waits this long after, the worker stops without "
        "committing, to be restarted (Faust's consumer can drop records it fetched around a rebalance)"
    )
    web_port: int = Field(
        default=6066, ge=1024, le=65535, description="port of /healthz, /readyz and /metrics"
    )
    web_bind: str = Field(default="0.0.0.0", description="address the web endpoints listen on")
    log_format: Literal["json", "console", "auto"] = Field(
        default="auto", description="log lines as JSON, or readable on a terminal (auto: console on a TTY)"
    )
    fhir_base_url: str = Field(
        default=DEFAULT_BASE_URL,
        description="the trust's base URL for podlink's own FHIR CodeSystems, extensions and identifier "
        "systems (an example.org placeholder until set; see docs/fhir-mapping.md)",
    )
    fhir_validation: Literal["off", "full"] = Field(
        default="off",
        description="full: check every FHIR message with fhir.resources and the R4 JSON Schema before "
        "sending it (a message that fails is dead-lettered; costs a third of the worker's throughput, "
        "docs/performance.md); off: the mappings are proven by the test suite instead",
    )
    log_level: Literal["debug", "info", "warning", "error"] = Field(
        default="info", description="the least severe log lines written (debug adds one line per record)"
    )
    record_log_level: Literal["debug", "info"] = Field(
        default="debug", description="the level of the one log line per record (at info, a summary "
        "of the records handled is logged each second instead)"
    )
    batch_max_records: int = Field(
        default=500, ge=1, description="most input records taken off the consumer as one batch (grouped by "
        "referral, handled 20 records at a time; acknowledged once all are handled)"
    )
    work_helper: bool = Field(
        default_factory=lambda: (os.cpu_count() or 1) > 1,
        description="a second process works out a share of each batch's referrals, so a busy worker uses "
        "two cores (default: on where there is more than one)"
    )
    batch_wait_seconds: float = Field(
        default=0.01, gt=0, description="longest a batch waits to fill before it is handled"
    )
    kafka_security_protocol: SecurityProtocol = Field(
        default="PLAINTEXT", description="PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL"
    )
    kafka_sasl_mechanism: SaslMechanism | None = Field(
        default=None, description="PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512 (SASL protocols)"
    )
    kafka_sasl_username: str | None = Field(default=None, description="SASL user name")
    kafka_sasl_password: SecretStr | None = Field(default=None, description="SASL password (secret)")
    kafka_ssl_ca_file: Path | None = Field(
        default=None, description="PEM CA certificates to trust (TLS protocols; unset: the system's)"
    )
    kafka_ssl_cert_file: Path | None = Field(
        default=None, description="PEM client certificate, for brokers that require one (with the key)"
    )
    kafka_ssl_key_file: Path | None = Field(
        default=None, description="PEM private key of the client certificate"
    )
    kafka_ssl_key_password: SecretStr | None = Field(
        default=None, description="password of an encrypted private key (secret)"
    )

    @field_validator("teams", mode="before")
    @classmethod
    def _split_teams(cls, value: object) -> object:
        if isinstance(value, str):
            codes = frozenset(code.strip() for code in value.split(",") if code.strip())
            return codes or None
        return value

    @field_validator("fhir_base_url")
    @classmethod
    def _check_fhir_base_url(cls, value: str) -> str:
        return check_base_url(value)

    @model_validator(mode="after")
    def _check_kafka_security(self) -> Settings:
        problems = kafka_security_problems(self)
        if problems:
            raise ValueError("; ".join(problems))
        return self


def _env(field: str) -> str:
    return f"PODLINK_{field.upper()}"


def kafka_security_problems(s: Settings) -> list[str]:
    """What is inconsistent in the Kafka security settings, naming settings and never values."""
    protocol = s.kafka_security_protocol
    problems = []
    sasl = {"kafka_sasl_mechanism": s.kafka_sasl_mechanism, "kafka_sasl_username": s.kafka_sasl_username,
            "kafka_sasl_password": s.kafka_sasl_password}
    tls = {"kafka_ssl_ca_file": s.kafka_ssl_ca_file, "kafka_ssl_cert_file": s.kafka_ssl_cert_file,
           "kafka_ssl_key_file": s.kafka_ssl_key_file, "kafka_ssl_key_password": s.kafka_ssl_key_password}
    if protocol in SASL_PROTOCOLS:
        problems += [f"{_env(name)} is required with PODLINK_KAFKA_SECURITY_PROTOCOL={protocol}"
                     for name, value in sasl.items() if not _given(value)]
    else:
        # Set but unused would look like security that is not there.
        problems += [f"{_env(name)} is set but PODLINK_KAFKA_SECURITY_PROTOCOL={protocol} does not use SASL"
                     for name, value in sasl.items() if value is not None]
    if protocol not in TLS_PROTOCOLS:
        problems += [f"{_env(name)} is set but PODLINK_KAFKA_SECURITY_PROTOCOL={protocol} does not use TLS"
                     for name, value in tls.items() if value is not None]
        return problems
    if (s.kafka_ssl_cert_file is None) != (s.kafka_ssl_key_file is None):
        problems.append(
            "PODLINK_KAFKA_SSL_CERT_FILE and PODLINK_KAFKA_SSL_KEY_FILE go together: set both or neither")
    if s.kafka_ssl_key_password is not None and s.kafka_ssl_key_file is None:
        problems.append("PODLINK_KAFKA_SSL_KEY_PASSWORD is set without PODLINK_KAFKA_SSL_KEY_FILE")
    for name in ("kafka_ssl_ca_file", "kafka_ssl_cert_file", "kafka_ssl_key_file"):
        path = getattr(s, name)
        if path is not None and not (path.is_file() and os.access(path, os.R_OK)):
            problems.append(f"{_env(name)}={path} is not a readable file")
    return problems


def _given(value: str | SecretStr | None) -> bool:
    if isinstance(value, SecretStr):
        return bool(value.get_secret_value())
    return bool(value)


SECRET_FIELDS = frozenset(
    name for name, field in Settings.model_fields.items() if field.annotation == SecretStr | None
)


def describe_invalid(error: ValidationError) -> str:
    """A ValidationError of Settings for operators, without the values of secret settings.

    Each problem names the environment variable to fix, not the field behind it. Pydantic's
    own text shows every input, and the input of a check across settings is all of them,
    passwords included.
    """
    lines = []
    for item in error.errors(include_url=False):
        field = str(item["loc"][0]) if item["loc"] else None
        message = item["msg"].removeprefix("Value error, ")
        if field is None:
            lines.append(message)
        elif field in SECRET_FIELDS:
            lines.append(f"{_env(field)}: {message}")
        else:
            lines.append(f"{_env(field)}: {message} (got {item['input']!r})")
    return "; ".join(lines)
