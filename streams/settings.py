"""Configuration: environment variables prefixed `PODLINK_`, and an optional YAML policy file."""
from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

import yaml
from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from .episode import Policy

SPA_TOPIC = "spa.referral-events.v1"
CARE_TOPIC = "pod.care-events.v1"
FHIR_TOPIC = "epr.fhir-messages.v1"
OUTCOMES_TOPIC = "pod.outcomes.v1"
ALERTS_TOPIC = "pod.sla-alerts.v1"
DEAD_LETTER_TOPIC = "podlink.dead-letter.v1"
INPUT_TOPICS = (SPA_TOPIC, CARE_TOPIC)
OUTPUT_TOPICS = (FHIR_TOPIC, OUTCOMES_TOPIC, ALERTS_TOPIC, DEAD_LETTER_TOPIC)


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
    deadline_hours: float = Field(default=24.0, gt=0, description="first network meeting deadline")
    deadline_starts_at: Literal["referral", "first-contact"] = Field(
        default="referral",
        description="start of the deadline: referral receivedAt, or the first contact.made",
    )
    at_risk_hours: float = Field(default=6.0, ge=0, description="hours before the deadline an at-risk alert is raised")
    catch_up_quiet_seconds: float = Field(
        default=3.0, gt=0,
        description="on a broker seen to under-report end offsets, how long a partition must be "
        "quiet before it counts as caught up",
    )
    policy_file: Path | None = Field(
        default=None, description="YAML file with deadline policy (keys as the settings above, no prefix)"
    )
    data_dir: Path = Field(default=Path("./podlink-data"), description="where workers keep RocksDB tables")
    group_id: str = Field(default="podlink", description="consumer group and table namespace")
    session_timeout_seconds: float = Field(
        default=10.0, ge=6, description="Kafka consumer session timeout (group rebalance speed)"
    )
    store: Literal["rocksdb", "memory"] = Field(default="rocksdb", description="table store")
    recovery_consistency_check: bool = Field(
        default=True, description="check table offsets against the broker's on recovery (off for Tansu)"
    )
    web_port: int = Field(
        default=6066, ge=1024, le=65535, description="port of /healthz, /readyz and /metrics"
    )
    web_bind: str = Field(default="0.0.0.0", description="address the web endpoints listen on")
    log_format: Literal["json", "console", "auto"] = Field(
        default="auto", description="log lines as JSON, or readable on a terminal (auto: console on a TTY)"
    )

    @field_validator("teams", mode="before")
    @classmethod
    def _split_teams(cls, value: object) -> object:
        if isinstance(value, str):
            codes = frozenset(code.strip() for code in value.split(",") if code.strip())
            return codes or None
        return value

    def policy(self) -> Policy:
        overrides = yaml.safe_load(self.policy_file.read_text()) or {} if self.policy_file else {}
        merged = Settings.model_validate({**self.model_dump(), **overrides})
        return Policy(
            deadline_hours=merged.deadline_hours,
            deadline_starts_at=merged.deadline_starts_at,
            at_risk_hours=merged.at_risk_hours,
            teams=merged.teams,
        )
