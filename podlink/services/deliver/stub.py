"""A small EPR for `podlink run`: it takes every message, logs what it received (event, Bundle
id, request headers: no patient data) and answers a BaRS response message `ok`."""
from __future__ import annotations

import json
import uuid
from datetime import datetime, timezone

import structlog
from aiohttp import web

from podlink.streams.core.encoding import utc_text

log = structlog.get_logger("podlink.epr-stub")


def response_bundle(request_bundle_id: str, event: dict[str, object] | None, code: str = "ok") -> dict[str, object]:
    header: dict[str, object] = {
        "resourceType": "MessageHeader", "id": str(uuid.uuid4()),
        "source": {"name": "podlink EPR stub", "endpoint": "urn:podlink:epr-stub"},
        "response": {"identifier": request_bundle_id, "code": code},
    }
    if event is not None:
        header["eventCoding"] = event
    return {"resourceType": "Bundle", "id": str(uuid.uuid4()), "type": "message",
            "timestamp": utc_text(datetime.now(timezone.utc)),
            "entry": [{"fullUrl": f"urn:uuid:{header['id']}", "resource": header}]}


async def process_message(request: web.Request) -> web.Response:
    body = await request.read()
    try:
        bundle = json.loads(body)
        header = bundle["entry"][0]["resource"]
        event = header.get("eventCoding")
        bundle_id = str(bundle["id"])
    except (ValueError, KeyError, IndexError, TypeError):
        return web.json_response({"resourceType": "OperationOutcome", "issue": [
            {"severity": "error", "code": "invalid", "diagnostics": "not a FHIR message Bundle"}]},
            status=400, content_type="application/fhir+json")
    code = (event or {}).get("code")
    # The event names what arrived: `podlink run` shows a log event's text, not its fields.
    log.info(f"EPR stub received {code} (X-Request-Id {request.headers.get('X-Request-Id')})",
             event_code=code, bundle_id=bundle_id,
             request_id=request.headers.get("X-Request-Id"),
             correlation_id=request.headers.get("X-Correlation-Id"), entries=len(bundle.get("entry", [])))
    return web.json_response(response_bundle(bundle_id, event), content_type="application/fhir+json",
                             headers={"X-Request-Id": request.headers.get("X-Request-Id", ""),
                                      "X-Correlation-Id": request.headers.get("X-Correlation-Id", "")})


async def start_stub(bind: str, port: int) -> web.AppRunner:
    app = web.Application()
    app.router.add_post("/fhir/$process-message", process_message)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, bind, port).start()
    return runner
