"""One POST of a Bundle to the EPR's `$process-message`, turned into an Answer for the policy."""
from __future__ import annotations

import asyncio
import ssl
from dataclasses import dataclass

import aiohttp

from podlink.services.deliver.bars import operation_outcome, request_headers, response_code
from podlink.services.deliver.policy import Answer, parse_retry_after
from podlink.services.deliver.settings import DeliverSettings

# The EPR's body is read only to find its BaRS response code and OperationOutcome.
MAX_ANSWER_BYTES = 1 << 20


@dataclass(frozen=True)
class Reply:
    answer: Answer
    outcome: bytes | None  # the EPR's OperationOutcome, if it sent one


def tls_context(settings: DeliverSettings) -> ssl.SSLContext | None:
    """Server verification against PODLINK_EPR_CA_FILE (or the system's CAs) and the client
    certificate for mutual TLS, when set; None lets aiohttp use its defaults."""
    if settings.epr_ca_file is None and settings.epr_cert_file is None:
        return None
    context = ssl.create_default_context(cafile=settings.epr_ca_file)
    if settings.epr_cert_file is not None:
        context.load_cert_chain(settings.epr_cert_file, settings.epr_key_file)
    return context


class EprClient:
    def __init__(self, settings: DeliverSettings) -> None:
        self._endpoint = settings.endpoint()
        self._sender = settings.sender()
        self._token = settings.token()
        self._timeout = aiohttp.ClientTimeout(total=settings.epr_timeout_seconds)
        self._ssl = tls_context(settings)
        self._session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> EprClient:
        connector = aiohttp.TCPConnector(ssl=self._ssl if self._ssl is not None else True)
        self._session = aiohttp.ClientSession(connector=connector, timeout=self._timeout)
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._session is not None:
            await self._session.close()

    async def post(self, bundle_id: str, referral_id: str, body: bytes) -> Reply:
        assert self._session is not None, "use EprClient as an async context manager"
        headers = request_headers(bundle_id, referral_id, self._sender, self._token)
        try:
            async with self._session.post(self._endpoint, data=body, headers=headers) as response:
                content = await response.content.read(MAX_ANSWER_BYTES)
                answer = Answer(status=response.status, response_code=response_code(content),
                                retry_after=parse_retry_after(response.headers.get("Retry-After")))
                return Reply(answer, operation_outcome(content))
        except asyncio.TimeoutError:
            return Reply(Answer(status=None, failure="timeout"), None)
        except aiohttp.ClientConnectorError as exc:
            return Reply(Answer(status=None, failure=f"connection failed ({type(exc).__name__})"), None)
        except aiohttp.ClientError as exc:
            return Reply(Answer(status=None, failure=f"connection broken ({type(exc).__name__})"), None)
