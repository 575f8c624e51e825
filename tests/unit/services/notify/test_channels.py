"""Each channel against a real local server: what arrives is what a receiver relies on."""
from __future__ import annotations

import asyncio
import hashlib
import hmac
from pathlib import Path

import aiohttp
import pytest
from notifications_python_client.authentication import decode_jwt_token, get_token_issuer

from podlink.services.notify.alerts import parse_alert
from podlink.services.notify.channels import ChannelError, Channels
from podlink.services.notify.messages import Message
from podlink.services.notify.rota import Rota, load_rota
from podlink.streams.core.encoding import json_bytes
from tests.support.tls import write_tls_files
from tests.unit.services.notify.servers import Recorder, recorder, smtp_server
from tests.unit.services.notify.support import flag_event, sla_event, utc

SERVICE_ID = "26785a09-ab16-4eb0-8407-a37497a57506"
NOTIFY_SECRET = "3d844edf-8d35-48ac-975b-e847b4f122b0"
ENV = {"HOOK_SECRET": "whsec-test-1", "PD_KEY": "R0UTINGKEY0000000000000000000001", "SMTP_PASSWORD": "pw-1",
       "NOTIFY_KEY": f"podlink_test-{SERVICE_ID}-{NOTIFY_SECRET}"}
NOW = utc("2026-11-24T10:00")
BREACH = parse_alert(json_bytes(sla_event("breached", "REF-CH-1", utc("2026-11-24T09:00"), NOW)))


def rota(tmp_path: Path, base: str, smtp_port: int = 25, ca: Path | None = None) -> Rota:
    path = tmp_path / "rota.yaml"
    path.write_text(f"""
contacts:
  duty-worker:
    webhook: {{url: "{base}/hooks/duty", secret_env: HOOK_SECRET}}
    pagerduty: {{routing_key_env: PD_KEY}}
    email: duty.pod@nhs.net
    notify_email: duty.pod@nhs.net
    sms: "+447700900123"
tiers:
  on-call:
    - {{contacts: [duty-worker]}}
smtp: {{host: 127.0.0.1, port: {smtp_port}, username: podlink, password_env: SMTP_PASSWORD,
        from: podlink.alerts@nhs.net{f", ca_file: {ca}" if ca else ""}}}
notify: {{api_key_env: NOTIFY_KEY, base_url: "{base}", sms_template_id: sms-tpl-1, email_template_id: email-tpl-2}}
""")
    return load_rota(path, ENV)


async def _send(r: Rota, channel: str, message: Message, pagerduty_url: str = "http://127.0.0.1:9/x") -> None:
    async with aiohttp.ClientSession() as session:
        await Channels(r, ENV, pagerduty_url, session).send(channel, r.contacts["duty-worker"], message)


def test_a_webhook_is_signed_over_its_exact_body_and_says_what_is_late(tmp_path: Path) -> None:
    async def scenario() -> Recorder:
        async with recorder() as rec:
            r = rota(tmp_path, rec.url)
            message = Message(BREACH, "duty-worker", "alert", "https://board.example", NOW)
            await _send(r, "webhook", message)
            await _send(r, "webhook", message)
            await _send(r, "webhook", Message(BREACH, "team-manager", "alert", "https://board.example", NOW))
            return rec
    rec = asyncio.run(scenario())
    first, again, other = rec.at("/hooks/duty")
    # A receiver checks the signature with the shared secret over the bytes it received.
    expected = "sha256=" + hmac.new(b"whsec-test-1", first.body, hashlib.sha256).hexdigest()
    assert hmac.compare_digest(first.headers["X-Podlink-Signature"], expected)
    assert first.headers["X-Podlink-Timestamp"] == "2026-11-24T10:00:00Z"
    assert first.headers["Content-Type"] == "application/json"
    # The same alert to the same person has the same delivery id; another person's differs.
    assert first.headers["X-Podlink-Delivery"] == again.headers["X-Podlink-Delivery"]
    assert other.headers["X-Podlink-Delivery"] != first.headers["X-Podlink-Delivery"]
    body = first.json()
    assert body == {
        "deliveryId": first.headers["X-Podlink-Delivery"], "alertId": BREACH.id, "purpose": "alert",
        "kind": "breached", "referralId": "REF-CH-1", "policy": "first-meeting", "audience": "on-call",
        "severity": "critical", "teamCode": "POD-CANTERBURY", "dueAt": "2026-11-24T09:00:00Z",
        "dueAtLocal": "2026-11-24T09:00:00+00:00", "minutesLate": 60,
        "summary": "REF-CH-1 first-meeting breached, due Tue 24 Nov 2026 09:00 GMT (1 h 0 min late)",
        "acknowledgeUrl": f"https://board.example/alerts/{BREACH.id}/ack",
        "boardUrl": "https://board.example/board", "sentAt": "2026-11-24T10:00:00Z",
    }


def test_a_tampered_body_fails_the_signature_check() -> None:
    from podlink.services.notify.channels import signature
    body = b'{"referralId":"REF-1"}'
    assert signature("k", body) != signature("k", body.replace(b"1", b"2"))
    assert signature("k", body) == "sha256=" + hmac.new(b"k", body, hashlib.sha256).hexdigest()


def test_pagerduty_gets_a_trigger_and_a_resolve_with_one_dedup_key(tmp_path: Path) -> None:
    flag = parse_alert(json_bytes(flag_event("REF-CH-2", "medication-before-three-meetings", NOW)))

    async def scenario() -> Recorder:
        async with recorder() as rec:
            r = rota(tmp_path, rec.url)
            url = rec.url + "/v2/enqueue"
            await _send(r, "pagerduty", Message(BREACH, "duty-worker", "alert", "https://b.example", NOW), url)
            await _send(r, "pagerduty", Message(BREACH, "duty-worker", "acknowledged", "https://b.example", NOW), url)
            await _send(r, "pagerduty", Message(flag, "duty-worker", "alert", "https://b.example", NOW), url)
            return rec
    trigger, resolve, flagged = (r.json() for r in asyncio.run(scenario()).at("/v2/enqueue"))
    assert trigger["event_action"] == "trigger" and trigger["routing_key"] == ENV["PD_KEY"]
    assert trigger["dedup_key"] == "REF-CH-1:first-meeting"
    assert trigger["payload"]["severity"] == "critical" and trigger["payload"]["source"] == "podlink"
    assert trigger["payload"]["summary"].startswith("REF-CH-1 first-meeting breached")
    assert trigger["payload"]["custom_details"]["referralId"] == "REF-CH-1"
    assert resolve == {"routing_key": ENV["PD_KEY"], "event_action": "resolve", "dedup_key": "REF-CH-1:first-meeting"}
    assert flagged["dedup_key"] == "REF-CH-2:medication-before-three-meetings"
    assert flagged["payload"]["severity"] == "error"


@pytest.mark.parametrize(("status", "retryable"), [(400, False), (403, False), (429, True), (500, True), (503, True)])
def test_pagerduty_errors_say_whether_to_retry(tmp_path: Path, status: int, retryable: bool) -> None:
    async def scenario() -> ChannelError:
        async with recorder() as rec:
            rec.statuses["/v2/enqueue"] = [status]
            with pytest.raises(ChannelError) as caught:
                await _send(rota(tmp_path, rec.url), "pagerduty",
                            Message(BREACH, "duty-worker", "alert", "https://b.example", NOW), rec.url + "/v2/enqueue")
            return caught.value
    error = asyncio.run(scenario())
    assert (error.reason, error.retryable) == (f"HTTP {status}", retryable)


def test_email_goes_over_starttls_with_login(tmp_path: Path) -> None:
    tls = write_tls_files(tmp_path / "tls")
    controller, box = smtp_server(tls.broker_cert, tls.broker_key, "podlink", "pw-1")
    controller.start()
    try:
        r = rota(tmp_path, "http://127.0.0.1:9", box.port, tls.ca)
        asyncio.run(_send(r, "email", Message(BREACH, "duty-worker", "alert", "https://b.example", NOW)))
        bad = dict(ENV, SMTP_PASSWORD="wrong")
        with pytest.raises(ChannelError) as caught:
            async def wrong() -> None:
                async with aiohttp.ClientSession() as session:
                    await Channels(r, bad, "", session).send(
                        "email", r.contacts["duty-worker"], Message(BREACH, "duty-worker", "alert", "https://b", NOW))
            asyncio.run(wrong())
    finally:
        controller.stop()
    assert box.logins == ["podlink"]
    [mail] = box.messages
    assert mail["To"] == "duty.pod@nhs.net" and mail["From"] == "podlink.alerts@nhs.net"
    assert mail["Subject"] == "podlink: REF-CH-1 first-meeting breached, due Tue 24 Nov 2026 09:00 GMT (1 h 0 min late)"
    assert f"https://b.example/alerts/{BREACH.id}/ack" in mail.get_content()
    assert caught.value.retryable is False and caught.value.reason.startswith("SMTP login refused")


def test_govuk_notify_sms_and_email_through_the_official_client(tmp_path: Path) -> None:
    async def scenario() -> Recorder:
        async with recorder() as rec:
            rec.answer["/v2/notifications/sms"] = {"id": "n-1"}
            rec.answer["/v2/notifications/email"] = {"id": "n-2"}
            r = rota(tmp_path, rec.url)
            message = Message(BREACH, "duty-worker", "alert", "https://b.example", NOW)
            await _send(r, "sms", message)
            await _send(r, "notify_email", message)
            return rec
    rec = asyncio.run(scenario())
    [sms], [email] = rec.at("/v2/notifications/sms"), rec.at("/v2/notifications/email")
    for request in (sms, email):
        token = request.headers["Authorization"].removeprefix("Bearer ")
        assert get_token_issuer(token) == SERVICE_ID
        assert decode_jwt_token(token, NOTIFY_SECRET) is True  # signed with the key's secret
    assert sms.json()["phone_number"] == "+447700900123" and sms.json()["template_id"] == "sms-tpl-1"
    assert email.json()["email_address"] == "duty.pod@nhs.net" and email.json()["template_id"] == "email-tpl-2"
    personalisation = sms.json()["personalisation"]
    assert personalisation["referral_id"] == "REF-CH-1"
    assert personalisation["ack_url"] == f"https://b.example/alerts/{BREACH.id}/ack"
    assert sms.json()["reference"] == email.json()["reference"]  # one delivery id per alert and person


def test_govuk_notify_refusals_are_not_retried_but_its_outages_are(tmp_path: Path) -> None:
    async def scenario() -> list[ChannelError]:
        errors = []
        async with recorder() as rec:
            r = rota(tmp_path, rec.url)
            rec.statuses["/v2/notifications/sms"] = [400, 500]
            for _ in range(2):
                with pytest.raises(ChannelError) as caught:
                    await _send(r, "sms", Message(BREACH, "duty-worker", "alert", "https://b.example", NOW))
                errors.append(caught.value)
        return errors
    assert [(e.reason, e.retryable) for e in asyncio.run(scenario())] == [("HTTP 400", False), ("HTTP 500", True)]
