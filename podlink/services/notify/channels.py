"""Sending one message on one channel: webhook, PagerDuty Events API v2, SMTP email, GOV.UK Notify.

Each sender makes one attempt and raises ChannelError saying whether trying again could help
(a 5xx, a 429, a refused connection) or not (a 400, a refused login); retries, backoff and
timeouts are the dispatcher's. Error reasons name the status or the error class, never the
message text, which could echo what was sent.
"""
from __future__ import annotations

import asyncio
import hashlib
import hmac
import smtplib
import ssl
from collections.abc import Mapping
from email.message import EmailMessage

import aiohttp
from notifications_python_client.errors import APIError
from notifications_python_client.notifications import NotificationsAPIClient

from podlink.services.notify.messages import Message
from podlink.services.notify.rota import Contact, Rota
from podlink.streams.core.encoding import json_bytes, utc_text


class ChannelError(RuntimeError):
    def __init__(self, reason: str, retryable: bool) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retryable = retryable


def signature(secret: str, body: bytes) -> str:
    """`X-Podlink-Signature`: `sha256=` and the hex HMAC-SHA256 of the exact body bytes."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def _http_error(status: int) -> ChannelError:
    # 408 and 429 say "later"; 5xx may pass; other 4xx would fail the same way again.
    return ChannelError(f"HTTP {status}", retryable=status in (408, 429) or status >= 500)


class Channels:
    """The senders, with what they need from the rota and the environment."""

    def __init__(self, rota: Rota, environ: Mapping[str, str], pagerduty_url: str,
                 session: aiohttp.ClientSession) -> None:
        self._rota = rota
        self._environ = environ
        self._pagerduty_url = pagerduty_url
        self._session = session

    async def send(self, channel: str, contact: Contact, message: Message) -> None:
        try:
            if channel == "webhook":
                await self._webhook(contact, message)
            elif channel == "pagerduty":
                await self._pagerduty(contact, message)
            elif channel == "email":
                await asyncio.to_thread(self._smtp, contact, message)
            elif channel in ("notify_email", "sms"):
                await asyncio.to_thread(self._govuk_notify, channel, contact, message)
            else:
                raise ChannelError(f"unknown channel {channel}", retryable=False)
        except (aiohttp.ClientError, OSError) as exc:
            raise ChannelError(type(exc).__name__, retryable=True) from exc

    async def _webhook(self, contact: Contact, message: Message) -> None:
        assert contact.webhook is not None
        body = json_bytes(message.webhook_body())
        headers = {
            "Content-Type": "application/json",
            "X-Podlink-Signature": signature(self._environ[contact.webhook.secret_env], body),
            "X-Podlink-Delivery": message.delivery_id,
            "X-Podlink-Timestamp": utc_text(message.now),
        }
        async with self._session.post(contact.webhook.url, data=body, headers=headers) as response:
            if not 200 <= response.status < 300:
                raise _http_error(response.status)

    async def _pagerduty(self, contact: Contact, message: Message) -> None:
        assert contact.pagerduty_key_env is not None
        event = message.pagerduty_event(self._environ[contact.pagerduty_key_env])
        async with self._session.post(self._pagerduty_url, data=json_bytes(event),
                                      headers={"Content-Type": "application/json"}) as response:
            if not 200 <= response.status < 300:
                raise _http_error(response.status)

    def _smtp(self, contact: Contact, message: Message) -> None:
        smtp = self._rota.smtp
        assert smtp is not None and contact.email is not None
        subject, body = message.email()
        mail = EmailMessage()
        mail["From"], mail["To"], mail["Subject"] = smtp.sender, contact.email, subject
        mail["Message-ID"] = f"<{message.delivery_id}@podlink>"
        mail.set_content(body)
        context = ssl.create_default_context(cafile=str(smtp.ca_file) if smtp.ca_file else None)
        try:
            with smtplib.SMTP(smtp.host, smtp.port, timeout=30) as client:
                client.starttls(context=context)
                client.login(smtp.username, self._environ[smtp.password_env])
                client.send_message(mail)
        except smtplib.SMTPAuthenticationError as exc:
            raise ChannelError(f"SMTP login refused ({exc.smtp_code})", retryable=False) from exc
        except smtplib.SMTPNotSupportedError as exc:
            raise ChannelError("SMTP server offers no STARTTLS", retryable=False) from exc
        except smtplib.SMTPResponseException as exc:
            raise ChannelError(f"SMTP {exc.smtp_code}", retryable=exc.smtp_code >= 400 and exc.smtp_code < 500) from exc
        except smtplib.SMTPException as exc:
            raise ChannelError(type(exc).__name__, retryable=True) from exc

    def _govuk_notify(self, channel: str, contact: Contact, message: Message) -> None:
        notify = self._rota.notify
        assert notify is not None
        client = (NotificationsAPIClient(self._environ[notify.api_key_env], base_url=notify.base_url, timeout=30)
                  if notify.base_url else NotificationsAPIClient(self._environ[notify.api_key_env], timeout=30))
        try:
            if channel == "sms":
                client.send_sms_notification(contact.sms, notify.sms_template_id, message.personalisation(),
                                             reference=message.delivery_id)
            else:
                client.send_email_notification(contact.notify_email, notify.email_template_id,
                                               message.personalisation(), reference=message.delivery_id)
        except APIError as exc:
            raise _http_error(exc.status_code) from exc
