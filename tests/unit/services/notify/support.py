"""Alert records in the shape `pod.sla-alerts.v1` carries them, rotas, and a state store kept in
memory for the unit tests (the integration tests keep it in Kafka)."""
from __future__ import annotations

import hashlib
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from podlink.services.notify.state import StateStore, StateUnavailable
from podlink.streams.core.encoding import json_bytes, utc_text
from podlink.streams.core.ids import stable_id

LONDON_OFFSET = {True: "+01:00", False: "+00:00"}
TOKENS = {"duty-worker": "duty-token-1", "team-manager": "manager-token-2", "consultant": "consultant-token-3"}


def sha(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=timezone.utc)


def sla_event(kind: str, ref: str, due: datetime, raised: datetime, policy: str = "first-meeting",
              audience: str = "on-call", severity: str | None = None, cycle: int = 0, **extra: Any
              ) -> dict[str, Any]:
    """An SLA alert as the worker writes it (podlink/streams/core/alerts.py): a repeating
    deadline's later rounds carry their `cycle`, in the data and in the id."""
    data = {
        "referralId": ref, "policy": policy, "audience": audience,
        "severity": severity or {"breached": "critical", "at-risk": "warning", "resolved": "info"}[kind],
        "teamCode": "POD-CANTERBURY", "dueAt": utc_text(due), "dueAtLocal": due.isoformat(),
        "cycle": cycle, "raisedAt": utc_text(raised),
        "minutesPastDeadline": int((raised - due).total_seconds() // 60), **extra,
    }
    id_parts = (policy,) if cycle == 0 else (policy, str(cycle))
    return {"specversion": "1.0", "id": stable_id("sla." + kind, ref, *id_parts),
            "source": "urn:podlink:episode-processor", "type": "uk.nhs.podlink.sla." + kind,
            "subject": ref, "time": utc_text(raised), "datacontenttype": "application/json", "data": data}


def flag_event(ref: str, rule: str, raised: datetime, audience: str = "on-call") -> dict[str, Any]:
    """A governance flag as the pathway-rules change writes it: a rule, no due time."""
    return {"specversion": "1.0", "id": stable_id("governance.flagged", ref, rule),
            "source": "urn:podlink:episode-processor", "type": "uk.nhs.podlink.governance.flagged",
            "subject": ref, "time": utc_text(raised), "datacontenttype": "application/json",
            "data": {"referralId": ref, "rule": rule, "audience": audience, "severity": "error",
                     "teamCode": "POD-CANTERBURY", "raisedAt": utc_text(raised)}}


def record(event: dict[str, Any]) -> bytes:
    return json_bytes(event)


ROTA = """\
timezone: Europe/London
contacts:
  duty-worker:
    webhook: {{url: "{hook}/duty", secret_env: TEST_SECRET_DUTY}}
    token_sha256: "{duty}"
  team-manager:
    webhook: {{url: "{hook}/manager", secret_env: TEST_SECRET_MANAGER}}
    token_sha256: "{manager}"
  consultant:
    webhook: {{url: "{hook}/consultant", secret_env: TEST_SECRET_CONSULTANT}}
    token_sha256: "{consultant}"
tiers:
  on-call:
    - {{contacts: [duty-worker], escalate_after: 15m, when: always}}
    - {{contacts: [team-manager], escalate_after: 30m, when: "weekdays 09:00-17:00"}}
    - {{contacts: [consultant], when: "nights, weekends, bank holidays"}}
  team:
    - {{contacts: [team-manager]}}
repeat_every: 60m
bank_holidays: [2026-12-25, 2026-12-28]
"""
SECRETS = {"TEST_SECRET_DUTY": "s3cret-duty", "TEST_SECRET_MANAGER": "s3cret-manager",
           "TEST_SECRET_CONSULTANT": "s3cret-consultant"}


def write_rota(folder: Path, hook: str = "http://127.0.0.1:9", text: str = ROTA) -> Path:
    path = folder / "rota.yaml"
    path.write_text(text.format(hook=hook, duty=sha(TOKENS["duty-worker"]),
                                manager=sha(TOKENS["team-manager"]), consultant=sha(TOKENS["consultant"])))
    return path


class MemoryStore(StateStore):
    """The state store without its topic: what it would write is kept in `written`; while
    `unavailable`, every write fails as one to a broker that is away does."""

    def __init__(self) -> None:
        super().__init__("unused:9092", {})
        self.written: list[tuple[str, dict[str, Any]]] = []
        self.unavailable = False

    async def _write(self, key: str, value: dict[str, Any]) -> None:
        if self.unavailable:
            raise StateUnavailable("the state topic did not take a write (test)")
        self.written.append((key, value))


def minutes(n: float) -> timedelta:
    return timedelta(minutes=n)
