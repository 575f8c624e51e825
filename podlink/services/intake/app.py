"""The HTTP side of intake: authentication, size and type checks, then translate, validate
against the contract, publish, remember, answer. Routes are one table (ROUTES), so more
(`GET /fhir/CodeSystem/...`) are added by adding rows."""
from __future__ import annotations

import asyncio
import hashlib
import json
import re
from collections.abc import Awaitable, Callable, Iterable, Mapping
from datetime import datetime, timezone

import structlog
from aiohttp import web

from podlink.fhir_mappings.inbound import Refused, Systems, translate
from podlink.services.intake import answers
from podlink.services.intake.answers import Json, Refusal
from podlink.services.intake.auth import bearer_name
from podlink.services.intake.capability import capability_statement
from podlink.services.intake.kafka_io import Kafka, PublishFailed
from podlink.services.intake.settings import IntakeSettings
from podlink.streams.core.contract import Accepted, read_record
from podlink.streams.core.encoding import json_bytes
from podlink.streams.worker.settings import CARE_TOPIC

log = structlog.get_logger("podlink.intake")
FHIR_JSON = "application/fhir+json"
PUBLISHED_TYPES = ("CodeSystem", "ValueSet", "StructureDefinition")
# BaRS sends a UUID; this is wider, and narrow enough to be a log field and a Kafka key.
REQUEST_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$")
Handler = Callable[[web.Request], Awaitable[web.Response]]


def fhir_response(body: object, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(body=json_bytes(body), status=status, content_type=FHIR_JSON, headers=headers)


class Intake:
    def __init__(self, settings: IntakeSettings, kafka: Kafka, systems: Systems,
                 published: Mapping[tuple[str, str], Json] | None = None) -> None:
        self._settings = settings
        self._kafka = kafka
        self._systems = systems
        # podlink's CodeSystems, ValueSets and extensions, under the trust's base URL.
        self._published = dict(published or {})
        self._started = datetime.now(timezone.utc)
        self._locks: dict[str, asyncio.Lock] = {}

    async def metadata(self, request: web.Request) -> web.Response:
        base = f"{request.scheme}://{request.host}/fhir"
        return fhir_response(capability_statement(base, self._started, self._systems.message_events))

    async def definition(self, request: web.Request) -> web.Response:
        """One of podlink's published definitions, as its canonical URL names it: no credential
        needed, since receivers must be able to validate what podlink sends them."""
        found = self._published.get((request.match_info["type"], request.match_info["id"]))
        if found is None:
            return fhir_response(answers.operation_outcome(answers.NOT_FOUND), answers.NOT_FOUND.status)
        return fhir_response(found)

    async def process_message(self, request: web.Request) -> web.Response:
        request_id = request.headers.get("X-Request-Id", "")
        echo = {"X-Request-Id": request_id, "X-Correlation-Id": request.headers.get("X-Correlation-Id", "")}
        name = self._caller(request)
        if name is None:
            return self._refuse(answers.UNAUTHORISED, None, request_id, echo)
        if request.content_type != FHIR_JSON:
            return self._refuse(answers.UNSUPPORTED_MEDIA, name, request_id, echo)
        body = await self._body(request)
        if body is None:
            return self._refuse(answers.too_large(self._settings.intake_max_bytes), name, request_id, echo)
        if not REQUEST_ID.match(request_id):
            # Not echoed or logged: whatever it is, it is not an id.
            return self._refuse(answers.MISSING_REQUEST_ID, name, "", {})
        if not self._kafka.ready:
            return self._refuse(answers.UNAVAILABLE, name, request_id, echo)
        key = f"{name}/{request_id}"
        lock = self._locks.setdefault(key, asyncio.Lock())
        try:
            async with lock:  # one request id at a time: a repeat waits for the first's answer
                return await self._accept(name, key, request_id, body, echo)
        finally:
            if not lock.locked() and self._locks.get(key) is lock:
                del self._locks[key]

    async def _accept(self, name: str, key: str, request_id: str, body: bytes, echo: dict[str, str]) -> web.Response:
        digest = hashlib.sha256(body).hexdigest()
        seen = self._kafka.body_hash(key)
        if seen is not None and seen != digest:
            return self._refuse(answers.CONFLICT, name, request_id, echo)
        try:
            bundle = json.loads(body)
        except (ValueError, UnicodeDecodeError):
            return self._refuse(answers.bad_request("Bundle", "is not JSON"), name, request_id, echo)
        now = datetime.now(timezone.utc)
        result = translate(bundle, f"urn:podlink:intake:{name}", now, self._systems)
        if isinstance(result, Refused):
            refusal = (answers.bad_request if result.status == 400 else answers.unprocessable)(result.element, result.problem)
            return self._refuse(refusal, name, request_id, echo)
        if seen is None:
            value = json_bytes(result.event)
            checked = read_record(result.referral_id.encode(), value)
            if not isinstance(checked, Accepted):
                return self._refuse(answers.unprocessable("event", checked.reason), name, request_id, echo)
            try:
                await self._kafka.publish(CARE_TOPIC, result.referral_id.encode(), value)
                await self._kafka.remember(key, digest, bundle["id"])
            except PublishFailed:
                return self._refuse(answers.UNAVAILABLE, name, request_id, echo)
        log.info("intake accepted", epr=name, request_id=request_id, bundle_id=bundle["id"],
                 event_type=result.event["type"], referral_id=result.referral_id, repeat=seen is not None)
        return fhir_response(answers.response_message(bundle["id"], result.event_coding, now), headers=echo)

    def _caller(self, request: web.Request) -> str | None:
        name = bearer_name(request.headers.get("Authorization"), self._settings.intake_tokens)
        if name is not None:
            return name
        cert = request.transport.get_extra_info("peercert") if request.transport else None
        return _common_name(cert) if cert else None

    async def _body(self, request: web.Request) -> bytes | None:
        limit = self._settings.intake_max_bytes
        if request.content_length is not None and request.content_length > limit:
            return None
        body = await request.content.read(limit + 1)
        return None if len(body) > limit else body

    def _refuse(self, refusal: Refusal, name: str | None, request_id: str, echo: dict[str, str]) -> web.Response:
        # Elements and rules only: the diagnostics never hold a value from the request.
        log.info("intake refused", epr=name, request_id=request_id if REQUEST_ID.match(request_id) else None,
                 status=refusal.status,
                 code=refusal.code, element=refusal.element)
        return fhir_response(answers.operation_outcome(refusal), refusal.status, echo)


def _common_name(cert: dict[str, object]) -> str | None:
    for rdn in cert.get("subject", ()):  # type: ignore[union-attr]
        for attribute, value in rdn:  # type: ignore[misc]
            if attribute == "commonName":
                return str(value)
    return None


def routes(intake: Intake) -> list[tuple[str, str, Handler]]:
    return [
        ("POST", "/fhir/$process-message", intake.process_message),
        ("GET", "/fhir/metadata", intake.metadata),
        ("GET", "/fhir/{type:" + "|".join(PUBLISHED_TYPES) + "}/{id}", intake.definition),
    ]


def build_app(intake: Intake, extra: Iterable[tuple[str, str, Handler]] = ()) -> web.Application:
    # aiohttp's own size check would answer 413 without an OperationOutcome: intake checks.
    app = web.Application(client_max_size=1 << 40)
    for method, path, handler in [*routes(intake), *extra]:
        app.router.add_route(method, path, handler)
    return app
