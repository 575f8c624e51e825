"""`podlink notify`'s own settings, beside the Kafka ones every podlink command shares."""
from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict



PAGERDUTY_URL = "https://events.pagerduty.com/v2/enqueue"


def settings_help() -> str:
    """`podlink notify --help`'s list of settings, from their descriptions."""
    lines = ["settings of podlink notify (environment variables; the Kafka ones are the worker's):"]
    for name, field in NotifySettings.model_fields.items():
        default = "required" if field.is_required() else field.default if field.default is not None else "unset"
        lines.append(f"  PODLINK_{name.upper():<38} {field.description} (default: {default})")
    return "\n".join(lines)


class NotifySettings(BaseSettings):
    """Every setting of `podlink notify`; `podlink notify --help` lists them."""

    model_config = SettingsConfigDict(env_prefix="PODLINK_", extra="ignore")

    rota_file: Path = Field(description="the on-call rota (YAML; see docs/on-call.md)")
    notify_port: int = Field(default=6067, ge=1, le=65535, description="port of the acknowledgement API and board")
    notify_bind: str = Field(default="0.0.0.0", description="address the API and board listen on")
    notify_group_id: str = Field(default="podlink-notify", description="consumer group on pod.sla-alerts.v1")
    notify_public_url: str | None = Field(
        default=None, description="base URL people reach the board at, for the links in messages; "
        "unset: the rota's public_url, else http://127.0.0.1:PORT")
    pagerduty_url: str = Field(default=PAGERDUTY_URL, description="PagerDuty Events API v2 endpoint")
    notify_tick_seconds: float = Field(default=15.0, gt=0, description="how often escalations are checked")
    notify_channel_timeout_seconds: float = Field(
        default=10.0, gt=0, description="how long one attempt on a channel may take")
    notify_retry_seconds: float = Field(
        default=2.0, gt=0, description="first wait before a failed channel is tried again (doubles)")
    notify_attempts: int = Field(default=4, ge=1, description="attempts per message and channel")
