"""An EPR's `$process-message` for delivery tests: a real HTTP server on 127.0.0.1 that records
every request and answers each Bundle id from a script (200, 429 with Retry-After, 500, 400 with
an OperationOutcome, a BaRS transient-error or fatal-error response, or a hang)."""
from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

OPERATION_OUTCOME = {"resourceType": "OperationOutcome", "issue": [{
    "severity": "error", "code": "invalid",
    "details": {"coding": [{"system": "https://fhir.nhs.uk/CodeSystem/http-error-codes", "code": "REC_BAD_REQUEST"}]},
    "diagnostics": "Encounter.identifier is required"}]}


@dataclass(frozen=True)
class Reply:
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    body: Any = None  # JSON-able, or None for a BaRS ok response
    hang: float = 0.0  # seconds to wait before answering


OK = Reply()
TOO_MANY = Reply(429, {"Retry-After": "1"}, {"resourceType": "OperationOutcome", "issue": []})
SERVER_ERROR = Reply(500, body={"resourceType": "OperationOutcome", "issue": []})
BAD_REQUEST = Reply(400, body=OPERATION_OUTCOME)
UNAVAILABLE = Reply(503, body={"resourceType": "OperationOutcome", "issue": []})


def bars_response(request_id: str, code: str) -> dict[str, Any]:
    return {"resourceType": "Bundle", "type": "message", "entry": [{"resource": {
        "resourceType": "MessageHeader", "response": {"identifier": request_id, "code": code}}}]}


TRANSIENT = Reply(200, body="transient-error")
FATAL = Reply(200, body="fatal-error")


@dataclass(frozen=True)
class Received:
    at: float  # time.monotonic()
    headers: dict[str, str]
    bundle: dict[str, Any]

    @property
    def request_id(self) -> str:
        return self.headers.get("X-Request-Id", "")


class FakeEpr:
    """`script[bundle_id]` is the list of replies to give, in turn; the last one repeats.
    Bundles with no script get 200 and a BaRS ok."""

    def __init__(self) -> None:
        self.script: dict[str, list[Reply]] = {}
        self.received: list[Received] = []
        self._lock = threading.Lock()
        self._served: dict[str, int] = {}
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}/fhir"

    def __enter__(self) -> FakeEpr:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()

    def of(self, bundle_id: str) -> list[Received]:
        with self._lock:
            return [r for r in self.received if r.bundle.get("id") == bundle_id]

    def ids(self, prefix: str) -> list[str]:
        """Bundle ids received for referral keys starting with `prefix`, in arrival order."""
        with self._lock:
            return [r.bundle["id"] for r in self.received if str(r.bundle.get("id", "")).startswith(prefix)]

    def _reply(self, bundle_id: str) -> Reply:
        with self._lock:
            replies = self.script.get(bundle_id, [OK])
            n = self._served.get(bundle_id, 0)
            self._served[bundle_id] = n + 1
            return replies[min(n, len(replies) - 1)]

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        epr = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                """Silent: tests read what was received, not http.server's access log on stderr."""

            def do_POST(self) -> None:  # noqa: N802 - the standard library's name
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                bundle = json.loads(body)
                received = Received(time.monotonic(), dict(self.headers.items()), bundle)
                with epr._lock:
                    epr.received.append(received)
                reply = epr._reply(bundle.get("id", ""))
                if reply.hang:
                    time.sleep(reply.hang)
                if reply.body in ("transient-error", "fatal-error") or reply.body is None:
                    payload: Any = bars_response(received.request_id, reply.body or "ok")
                else:
                    payload = reply.body
                data = json.dumps(payload).encode()
                try:
                    self.send_response(reply.status)
                    self.send_header("Content-Type", "application/fhir+json")
                    self.send_header("Content-Length", str(len(data)))
                    for name, value in reply.headers.items():
                        self.send_header(name, value)
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up waiting (a hang)

        return Handler
