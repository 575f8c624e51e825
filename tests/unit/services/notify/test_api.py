"""The acknowledgement API over HTTP, as on-call staff and their tools call it."""
from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

from podlink.services.embedded_broker import free_port
from podlink.services.notify.service import web_app
from podlink.streams.core.encoding import json_bytes
from tests.unit.services.notify.harness import Harness, harness
from tests.unit.services.notify.support import TOKENS, flag_event, minutes, sla_event, utc

T0 = utc("2026-11-24T10:00")
WHERE = ("pod.sla-alerts.v1", 0, 1)


async def _serve(h: Harness) -> tuple[web.AppRunner, str]:
    runner = web.AppRunner(web_app(h.notifier))
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    return runner, f"http://127.0.0.1:{port}"


def _bearer(contact: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {TOKENS[contact]}"}


def test_acknowledging_by_api(tmp_path: Path) -> None:
    answers: list[tuple[str, int, Any]] = []

    async def scenario() -> Harness:
        async with harness(tmp_path, T0) as h:
            breach = sla_event("breached", "REF-API-1", T0 - minutes(60), T0)
            await h.notifier.handle(b"REF-API-1", json_bytes(breach), WHERE)
            await h.notifier.handle(b"REF-API-2", json_bytes(flag_event("REF-API-2", "high-risk-referral", T0)), WHERE)
            runner, base = await _serve(h)
            ack = f"{base}/alerts/{breach['id']}/ack"
            async with aiohttp.ClientSession() as http:
                async def call(name: str, method: str, url: str, **kw: Any) -> None:
                    async with http.request(method, url, **kw) as r:
                        answers.append((name, r.status, await r.json()))
                await call("list", "GET", f"{base}/alerts")
                await call("no token", "POST", ack)
                await call("wrong token", "POST", ack, headers={"Authorization": "Bearer guess"})
                await call("not bearer", "POST", ack, headers={"Authorization": TOKENS["duty-worker"]})
                await call("unknown", "POST", f"{base}/alerts/nope/ack", headers=_bearer("duty-worker"))
                await call("bad body", "POST", ack, headers=_bearer("duty-worker"), data=b"{oops")
                await call("list after refusals", "GET", f"{base}/alerts")
                await call("ack", "POST", ack, headers=_bearer("team-manager"))
                await call("ack again", "POST", ack, headers=_bearer("duty-worker"))
                await call("resolve, no reason", "POST", f"{base}/alerts/{breach['id']}/resolve",
                           headers=_bearer("duty-worker"), json={})
                await call("resolve", "POST", f"{base}/alerts/{breach['id']}/resolve",
                           headers=_bearer("duty-worker"), json={"reason": "meeting-held"})
                await call("ack resolved", "POST", ack, headers=_bearer("duty-worker"))
                await call("list at end", "GET", f"{base}/alerts")
            await h.notifier.drain()
            await runner.cleanup()
            return h
    h = asyncio.run(scenario())
    by_name = {name: (status, body) for name, status, body in answers}
    status, listing = by_name["list"]
    assert status == 200
    breach_id = next(a["id"] for a in listing["alerts"] if a["referralId"] == "REF-API-1")
    # The breach (due 09:00) sorts before the governance flag (raised 10:00).
    assert [a["referralId"] for a in listing["alerts"]] == ["REF-API-1", "REF-API-2"]
    assert listing["alerts"][0] == {
        "id": breach_id, "referralId": "REF-API-1", "policy": "first-meeting", "kind": "breached",
        "severity": "critical", "audience": "on-call", "dueAt": "2026-11-24T09:00:00Z",
        "dueAtLocal": "2026-11-24T09:00:00+00:00", "state": "open", "paged": ["duty-worker"],
        "acknowledgedBy": None, "acknowledgedAt": None}
    assert listing["alerts"][1]["rule"] == "high-risk-referral"
    for name in ("no token", "wrong token", "not bearer"):
        assert by_name[name][0] == 401
    assert by_name["unknown"][0] == 404
    assert by_name["bad body"][0] == 400
    assert by_name["list after refusals"] == by_name["list"]  # the refusals changed nothing
    assert by_name["ack"][0] == 200
    assert (by_name["ack"][1]["state"], by_name["ack"][1]["acknowledgedBy"]) == ("acknowledged", "team-manager")
    assert by_name["ack"][1]["acknowledgedAt"] == "2026-11-24T10:00:00Z"
    assert by_name["ack again"] == (409, {"status": 409, "detail": "the alert was acknowledged by team-manager"})
    assert by_name["resolve, no reason"][0] == 400
    assert by_name["resolve"][0] == 200 and by_name["resolve"][1]["state"] == "resolved"
    assert by_name["ack resolved"] == (409, {"status": 409, "detail": "the alert is resolved"})
    assert [a["referralId"] for a in by_name["list at end"][1]["alerts"]] == ["REF-API-2"]
    acks = [e for e in h.published if e["type"] == "uk.nhs.podlink.alert.acknowledged"]
    assert len(acks) == 1
    assert acks[0]["data"]["acknowledgedBy"] == "team-manager" and acks[0]["data"]["alertId"] == breach_id


def test_the_board_is_served_with_its_own_design_system_files(tmp_path: Path) -> None:
    async def scenario() -> dict[str, tuple[int, str, dict[str, str]]]:
        got = {}
        async with harness(tmp_path, T0) as h:
            at_risk = sla_event("at-risk", "REF-B-1", T0 + minutes(90), T0)
            await h.notifier.handle(b"REF-B-1", json_bytes(at_risk), WHERE)
            runner, base = await _serve(h)
            async with aiohttp.ClientSession() as http:
                for path in ("/board", "/board/rows", "/static/nhsuk/nhsuk-frontend.min.css", "/static/board.js",
                             "/assets/images/nhsuk-icon-cross.svg"):
                    async with http.get(base + path) as r:
                        got[path] = (r.status, await r.text(), dict(r.headers))
            await h.notifier.drain()
            await runner.cleanup()
        return got
    got = asyncio.run(scenario())
    assert all(status == 200 for status, _, _ in got.values())
    page, headers = got["/board"][1], got["/board"][2]
    assert "default-src 'self'" in headers["Content-Security-Policy"]
    assert "https://" not in page  # nothing from elsewhere
    row = got["/board/rows"][1]
    assert "REF-B-1" in row and "At risk" in row and "1 h 30 min left" in row
    assert "Tue 24 Nov 2026 11:30 GMT" in row
    assert ">Acknowledge<" in row


def test_an_acknowledgement_that_cannot_be_recorded_is_503_and_changes_nothing(tmp_path: Path) -> None:
    async def scenario() -> tuple[int, dict[str, Any], dict[str, Any]]:
        async with harness(tmp_path, T0) as h:
            breach = sla_event("breached", "REF-API-3", T0 - minutes(60), T0)
            await h.notifier.handle(b"REF-API-3", json_bytes(breach), WHERE)
            runner, base = await _serve(h)
            h.store.unavailable = True
            async with aiohttp.ClientSession() as http:
                async with http.post(f"{base}/alerts/{breach['id']}/ack", headers=_bearer("duty-worker")) as r:
                    status, body = r.status, await r.json()
                async with http.get(f"{base}/alerts") as r:
                    listing = await r.json()
            await h.notifier.drain()
            await runner.cleanup()
            published = [e["type"] for e in h.published]
            return status, body, {"listing": listing, "published": published}
    status, body, after = asyncio.run(scenario())
    assert status == 503
    assert body["detail"] == "the acknowledgement could not be recorded (Kafka unavailable): try again"
    assert [a["state"] for a in after["listing"]["alerts"]] == ["open"]
    assert "uk.nhs.podlink.alert.acknowledged" not in after["published"]
