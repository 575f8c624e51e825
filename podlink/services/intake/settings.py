"""`podlink intake`'s own settings (PODLINK_INTAKE_*), beside the worker's Kafka settings."""
from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Annotated

from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
_SHA256 = re.compile(r"^[0-9a-f]{64}$")


class IntakeSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="PODLINK_", extra="ignore")

    intake_port: int = Field(default=6068, ge=1, le=65535, description="port of /fhir/$process-message")
    intake_bind: str = Field(default="0.0.0.0", description="address intake listens on")
    intake_max_bytes: int = Field(default=1 << 20, ge=1024, description="largest request body accepted")
    intake_tokens: Annotated[dict[str, str], NoDecode] = Field(
        default_factory=dict, description="EPR systems and the SHA-256 (hex) of each one's bearer "
        "token: name=<hex>,name=<hex>")
    intake_publish_timeout_seconds: float = Field(default=10.0, gt=0, description="how long a "
                                                  "request waits for Kafka before 503")
    intake_tls_cert_file: Path | None = Field(default=None, description="PEM server certificate: intake serves HTTPS")
    intake_tls_key_file: Path | None = Field(default=None, description="PEM private key of that certificate")
    intake_tls_client_ca_file: Path | None = Field(
        default=None, description="PEM CAs of EPR client certificates: mutual TLS, the "
        "certificate's common name names the EPR")

    @field_validator("intake_tokens", mode="before")
    @classmethod
    def _parse_tokens(cls, value: object) -> object:
        if not isinstance(value, str):
            return value
        tokens: dict[str, str] = {}
        for part in (p.strip() for p in value.split(",") if p.strip()):
            name, sep, digest = part.partition("=")
            name, digest = name.strip(), digest.strip().lower()
            # The hash is never echoed: a mistyped one is a secret nearly right.
            if not sep or not _NAME.match(name) or not _SHA256.match(digest):
                raise ValueError("each entry must be name=<64 hex digits of the token's SHA-256>")
            tokens[name] = digest
        return tokens

    @model_validator(mode="after")
    def _check_tls(self) -> IntakeSettings:
        if (self.intake_tls_cert_file is None) != (self.intake_tls_key_file is None):
            raise ValueError("PODLINK_INTAKE_TLS_CERT_FILE and PODLINK_INTAKE_TLS_KEY_FILE go together")
        if self.intake_tls_client_ca_file is not None and self.intake_tls_cert_file is None:
            raise ValueError("PODLINK_INTAKE_TLS_CLIENT_CA_FILE needs PODLINK_INTAKE_TLS_CERT_FILE (mutual TLS is TLS)")
        for name in ("intake_tls_cert_file", "intake_tls_key_file", "intake_tls_client_ca_file"):
            path = getattr(self, name)
            if path is not None and not (path.is_file() and os.access(path, os.R_OK)):
                raise ValueError(f"PODLINK_{name.upper()}={path} is not a readable file")
        return self
