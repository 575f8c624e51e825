"""What each channel says about an alert: the referral id, the policy or rule, the due time in
Europe/London, how long is left or how late, and the links. Never a name, NHS number or free text:
an alert carries none, and nothing here adds any."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from podlink.services.notify.alerts import Alert
from podlink.streams.core.encoding import utc_text
from podlink.streams.core.ids import stable_id

LONDON = ZoneInfo("Europe/London")
PURPOSE_WORDS = {"alert": "", "resolved": "RESOLVED: ", "acknowledged": "ACKNOWLEDGED: "}


@dataclass(frozen=True)
class Message:
    """One message to one contact about one alert, for every channel to render."""

    alert: Alert
    contact: str
    purpose: str  # alert, repeat-N, resolved, acknowledged
    base_url: str
    now: datetime

    @property
    def delivery_id(self) -> str:
        """The same for the same alert, recipient and purpose: a receiver can drop repeats by it."""
        return stable_id("notify-delivery", self.alert.id, self.contact, self.purpose)

    @property
    def ack_url(self) -> str:
        return f"{self.base_url}/alerts/{self.alert.id}/ack"

    @property
    def board_url(self) -> str:
        return f"{self.base_url}/board"

    def summary(self) -> str:
        prefix = PURPOSE_WORDS.get(self.purpose, "REMINDER: ")
        a = self.alert
        what = {"at-risk": "at risk", "breached": "breached", "resolved": "resolved",
                "flagged": "governance flag"}[a.kind]
        text = f"{prefix}{a.referral_id} {a.topic} {what}"
        if a.due_at is not None:
            text += f", due {local_time(a.due_at)} ({lateness(a.due_at, self.now)})"
        return text

    def webhook_body(self) -> dict[str, Any]:
        a = self.alert
        return {
            "deliveryId": self.delivery_id,
            "alertId": a.id,
            "purpose": self.purpose,
            "kind": a.kind,
            "referralId": a.referral_id,
            ("rule" if a.kind == "flagged" else "policy"): a.topic,
            "audience": a.audience,
            "severity": a.severity,
            "teamCode": a.team_code,
            "dueAt": utc_text(a.due_at) if a.due_at else None,
            "dueAtLocal": a.due_at.astimezone(LONDON).isoformat() if a.due_at else None,
            "minutesLate": minutes_late(a.due_at, self.now) if a.due_at else None,
            "summary": self.summary(),
            "acknowledgeUrl": self.ack_url,
            "boardUrl": self.board_url,
            # Inside the signed body, so a receiver can refuse an old message replayed to it.
            "sentAt": utc_text(self.now),
        }

    def pagerduty_event(self, routing_key: str) -> dict[str, Any]:
        a = self.alert
        if self.purpose in ("resolved", "acknowledged"):
            return {"routing_key": routing_key, "event_action": "resolve", "dedup_key": a.key}
        return {
            "routing_key": routing_key,
            "event_action": "trigger",
            "dedup_key": a.key,
            "payload": {
                "summary": self.summary(),
                "source": "podlink",
                "severity": a.severity,
                "timestamp": utc_text(a.raised_at),
                "component": a.topic,
                "group": a.team_code,
                "class": a.kind,
                "custom_details": {
                    "referralId": a.referral_id, "alertId": a.id,
                    "dueAtLocal": a.due_at.astimezone(LONDON).isoformat() if a.due_at else None,
                    "acknowledgeUrl": self.ack_url,
                },
            },
            "links": [{"href": self.board_url, "text": "podlink SLA board"}],
        }

    def email(self) -> tuple[str, str]:
        """Subject and plain-text body."""
        body = "\n".join([
            self.summary(), "",
            f"Referral: {self.alert.referral_id}",
            f"Board: {self.board_url}",
            f"Acknowledge: {self.ack_url} (POST with your podlink token)",
        ])
        return f"podlink: {self.summary()}", body + "\n"

    def personalisation(self) -> dict[str, str]:
        """The fields a GOV.UK Notify template fills in: ((summary)), ((board_url)), ((ack_url))."""
        return {"summary": self.summary(), "board_url": self.board_url, "ack_url": self.ack_url,
                "referral_id": self.alert.referral_id}


def local_time(moment: datetime) -> str:
    """E.g. `Mon 30 Nov 2026 14:05 GMT`: the zone's abbreviation tells BST from GMT."""
    return moment.astimezone(LONDON).strftime("%a %d %b %Y %H:%M %Z")


def minutes_late(due: datetime, now: datetime) -> int:
    """Whole minutes past `due` (negative: minutes still left)."""
    return int((now - due).total_seconds() / 60)


def lateness(due: datetime, now: datetime) -> str:
    late = minutes_late(due, now)
    amount = abs(late)
    hours, minutes = divmod(amount, 60)
    span = f"{hours} h {minutes} min" if hours else f"{minutes} min"
    return f"{span} late" if late >= 0 else f"{span} left"
