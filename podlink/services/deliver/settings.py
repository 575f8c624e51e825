"""`podlink deliver`'s own settings (PODLINK_EPR_*, PODLINK_DELIVER_*), beside the worker's
Kafka settings, which it shares (podlink.streams.worker.settings.Settings)."""
from __future__ import annotations

import os
from pathlib import Path

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from podlink.services.deliver.bars import Sender
from podlink.services.deliver.policy import Backoff


class DeliverSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="PODLINK_", extra="ignore")

    # No default: a deliver pointed nowhere in particular must not start.
    epr_url: str = Field(description="the EPR's FHIR base; messages go to <base>/$process-message")
    epr_token: SecretStr | None = Field(default=None, description="bearer token for the EPR (secret)")
    epr_ca_file: Path | None = Field(default=None, description="PEM CAs to trust for the EPR (unset: the system's)")
    epr_cert_file: Path | None = Field(default=None, description="PEM client certificate for mutual TLS to the EPR")
    epr_key_file: Path | None = Field(default=None, description="PEM private key of that certificate")
    epr_max_attempts: int | None = Field(default=None, ge=1,
                                         description="attempts before a retryable failure is dead-lettered (unset: unlimited)")
    epr_timeout_seconds: float = Field(default=30.0, gt=0, description="one attempt's time limit")
    epr_backoff_seconds: float = Field(default=1.0, gt=0, description="first retry's backoff ceiling (doubles per attempt)")
    epr_backoff_max_seconds: float = Field(default=300.0, gt=0, description="longest backoff between attempts")
    epr_target_identifier: str | None = Field(default=None, description="NHSD-Target-Identifier header value")
    epr_organisation_ods: str | None = Field(default=None, description="NHSD-End-User-Organisation-ODS header value")
    deliver_group_id: str = Field(default="podlink-deliver", description="deliver's consumer group")
    deliver_web_port: int = Field(default=6069, ge=1024, le=65535, description="deliver's /metrics port")
    deliver_web_bind: str = Field(default="0.0.0.0", description="address deliver's /metrics listens on")
    deliver_max_waiting: int = Field(default=10_000, ge=1,
                                     description="messages held in memory before deliver stops fetching more")

    @model_validator(mode="after")
    def _check_tls(self) -> DeliverSettings:
        if (self.epr_cert_file is None) != (self.epr_key_file is None):
            raise ValueError("PODLINK_EPR_CERT_FILE and PODLINK_EPR_KEY_FILE go together: set both or neither")
        for name in ("epr_ca_file", "epr_cert_file", "epr_key_file"):
            path = getattr(self, name)
            if path is not None and not (path.is_file() and os.access(path, os.R_OK)):
                raise ValueError(f"PODLINK_{name.upper()}={path} is not a readable file")
        return self

    def endpoint(self) -> str:
        return self.epr_url.rstrip("/") + "/$process-message"

    def backoff(self) -> Backoff:
        return Backoff(self.epr_backoff_seconds, self.epr_backoff_max_seconds, self.epr_max_attempts)

    def sender(self) -> Sender:
        return Sender(target_identifier=self.epr_target_identifier, organisation_ods=self.epr_organisation_ods)

    def token(self) -> str | None:
        return self.epr_token.get_secret_value() if self.epr_token else None
