"""The acknowledgement API: `GET /alerts`, `POST /alerts/{id}/ack`, `POST /alerts/{id}/resolve`.

A bearer token names the person: its SHA-256 is compared, in constant time, with every
contact's `token_sha256` in the rota. Checks run in a fixed order, and each refusal changes
nothing: 401 (no token, or one nobody holds), 404 (no such alert), 400 (a body that is not the
JSON asked for), 409 (the alert is resolved, or already acknowledged).
"""
from __future__ import annotations

import hashlib
import hmac
import json
from typing import Any

from aiohttp import web

from podlink.services.notify.escalation import Conflict, Escalation
from podlink.services.notify.messages import LONDON
from podlink.services.notify.notifier import RESOLVE_REASONS, Notifier
from podlink.services.notify.rota import Rota
from podlink.services.notify.state import StateUnavailable
from podlink.streams.core.encoding import utc_text

NOTIFIER = web.AppKey("notifier", Notifier)


def person(rota: Rota, authorization: str | None) -> str | None:
    """The contact whose token this `Authorization: Bearer …` header carries, or None."""
    if not authorization or not authorization.startswith("Bearer "):
        return None
    digest = hashlib.sha256(authorization.removeprefix("Bearer ").strip().encode()).hexdigest()
    found = None
    # Every contact is compared, whoever matches, so the time taken says nothing about who did.
    for contact in rota.contacts.values():
        if contact.token_sha256 is not None and hmac.compare_digest(digest, contact.token_sha256):
            found = contact.id
    return found


def alert_json(esc: Escalation) -> dict[str, Any]:
    a = esc.alert
    return {
        "id": a.id,
        "referralId": a.referral_id,
        ("rule" if a.kind == "flagged" else "policy"): a.topic,
        "kind": a.kind,
        "severity": a.severity,
        "audience": a.audience,
        "dueAt": utc_text(a.due_at) if a.due_at else None,
        "dueAtLocal": a.due_at.astimezone(LONDON).isoformat() if a.due_at else None,
        "state": esc.status,
        "paged": list(esc.paged),
        "acknowledgedBy": esc.acknowledged_by,
        "acknowledgedAt": utc_text(esc.acknowledged_at) if esc.acknowledged_at else None,
    }


def _problem(status: int, detail: str) -> web.Response:
    return web.json_response({"status": status, "detail": detail}, status=status)


async def _body(request: web.Request) -> dict[str, Any] | None:
    """The JSON object sent, {} for an empty body; None when it is not a JSON object."""
    raw = await request.read()
    if not raw.strip():
        return {}
    try:
        body = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        return None
    return body if isinstance(body, dict) else None


async def list_alerts(request: web.Request) -> web.Response:
    notifier = request.app[NOTIFIER]
    return web.json_response({"alerts": [alert_json(e) for e in notifier.open_alerts()]})


async def _checked(request: web.Request) -> tuple[str, str, dict[str, Any]] | web.Response:
    notifier = request.app[NOTIFIER]
    who = person(notifier.rota, request.headers.get("Authorization"))
    if who is None:
        return _problem(401, "a valid bearer token is required")
    alert_id = request.match_info["alert_id"]
    if alert_id not in notifier.store.escalations:
        return _problem(404, "no such alert")
    body = await _body(request)
    if body is None:
        return _problem(400, "the body must be a JSON object")
    return who, alert_id, body


async def acknowledge(request: web.Request) -> web.Response:
    checked = await _checked(request)
    if isinstance(checked, web.Response):
        return checked
    who, alert_id, _ = checked
    try:
        esc = await request.app[NOTIFIER].acknowledge(alert_id, who)
    except Conflict as exc:
        return _problem(409, str(exc))
    except StateUnavailable:
        return _problem(503, "the acknowledgement could not be recorded (Kafka unavailable): try again")
    return web.json_response(alert_json(esc))


async def resolve(request: web.Request) -> web.Response:
    checked = await _checked(request)
    if isinstance(checked, web.Response):
        return checked
    who, alert_id, body = checked
    reason = body.get("reason")
    if reason not in RESOLVE_REASONS:
        return _problem(400, f"reason must be one of: {', '.join(RESOLVE_REASONS)}")
    try:
        esc = await request.app[NOTIFIER].resolve(alert_id, reason, who)
    except Conflict as exc:
        return _problem(409, str(exc))
    except StateUnavailable:
        return _problem(503, "the resolution could not be recorded (Kafka unavailable): try again")
    return web.json_response(alert_json(esc))


def add_routes(app: web.Application) -> None:
    app.router.add_get("/alerts", list_alerts)
    app.router.add_post("/alerts/{alert_id}/ack", acknowledge)
    app.router.add_post("/alerts/{alert_id}/resolve", resolve)
