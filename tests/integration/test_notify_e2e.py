"""`podlink notify` end to end on real brokers, beside a real worker: a backdated referral breaches,
the duty worker's webhook gets one signed alert, the API and the board show it, an acknowledgement
by API ends escalation, and nothing reaches tier 2; a restart sends nothing again."""
from __future__ import annotations

import hashlib
import hmac
import json
import os
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from podlink.services.embedded_broker import free_port
from podlink.services.samples import pathway
from podlink.streams.worker.settings import OUTCOMES_TOPIC
from tests.support.broker_io import ago, of, send, values, wait_until
from tests.support.brokers import consume_until_done

SECRET_DUTY, SECRET_MANAGER = "e2e-duty-secret", "e2e-manager-secret"
DUTY_TOKEN = "e2e-duty-token"


@dataclass
class Hooks:
    """A webhook receiver on 127.0.0.1: every POST kept with its headers and exact body."""

    url: str = ""
    received: list[tuple[str, dict[str, str], bytes]] = field(default_factory=list)

    def at(self, path: str) -> list[tuple[dict[str, str], bytes]]:
        return [(h, b) for p, h, b in list(self.received) if p == path]


@pytest.fixture
def hooks() -> Iterator[Hooks]:
    state = Hooks()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 - http.server's name
            body = self.rfile.read(int(self.headers["Content-Length"]))
            state.received.append((self.path, dict(self.headers), body))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            """Silent: tests read what was received, not http.server's access log on stderr."""

    server = ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
    state.url = f"http://127.0.0.1:{server.server_port}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield state
    server.shutdown()


@dataclass
class NotifyProcess:
    env: dict[str, str]
    folder: Path
    port: int
    proc: subprocess.Popen[bytes] | None = None
    runs: int = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> NotifyProcess:
        self.runs += 1
        log = (self.folder / f"notify-{self.runs}.log").open("wb")
        self.proc = subprocess.Popen([sys.executable, "-m", "podlink.services.cli", "notify"], env=self.env,
                                     stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT)
        wait_until(lambda: any(line.get("event") == "notify started" for line in self.log_lines(self.runs)),
                   60, "notify started:\n" + self.log_text())
        return self

    def log_lines(self, run: int | None = None) -> list[dict[str, Any]]:
        runs = [run] if run else range(1, self.runs + 1)
        assert self.proc is not None and self.proc.poll() is None, self.log_text()
        return [json.loads(line) for r in runs
                for line in (self.folder / f"notify-{r}.log").read_text().splitlines() if line.startswith("{")]

    def log_text(self) -> str:
        return "\n".join((self.folder / f"notify-{r}.log").read_text() for r in range(1, self.runs + 1))[-4000:]

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(30)

    def get(self, path: str) -> Any:
        with urllib.request.urlopen(self.url + path, timeout=10) as response:
            return json.loads(response.read())

    def post(self, path: str, token: str | None, body: bytes = b"") -> tuple[int, Any]:
        request = urllib.request.Request(self.url + path, data=body, method="POST",
                                         headers={"Authorization": f"Bearer {token}"} if token else {})
        try:
            with urllib.request.urlopen(request, timeout=40) as response:
                return response.status, json.loads(response.read())
        except urllib.error.HTTPError as exc:
            return exc.code, json.loads(exc.read())


ROTA = """\
contacts:
  duty-worker:
    webhook: {{url: "{hooks}/duty", secret_env: E2E_SECRET_DUTY}}
    token_sha256: "{duty_token}"
  team-manager:
    webhook: {{url: "{hooks}/manager", secret_env: E2E_SECRET_MANAGER}}
tiers:
  on-call:
    - {{contacts: [duty-worker], escalate_after: 4s, when: always}}
    - {{contacts: [team-manager], when: always}}
  team:
    - {{contacts: [team-manager]}}
repeat_every: 60m
"""


@pytest.fixture
def start_notify(tmp_path: Path, hooks: Hooks) -> Iterator[Any]:
    started: list[NotifyProcess] = []

    def start(bootstrap: str) -> NotifyProcess:
        rota = tmp_path / "rota.yaml"
        rota.write_text(ROTA.format(hooks=hooks.url, duty_token=hashlib.sha256(DUTY_TOKEN.encode()).hexdigest()))
        env = {k: v for k, v in os.environ.items() if not k.startswith("PODLINK_")}
        env.update({"PODLINK_KAFKA_BOOTSTRAP": bootstrap, "PODLINK_ROTA_FILE": str(rota),
                    "PODLINK_NOTIFY_PORT": str(free_port()), "PODLINK_NOTIFY_BIND": "127.0.0.1",
                    "PODLINK_NOTIFY_TICK_SECONDS": "0.5", "PODLINK_LOG_FORMAT": "json",
                    "PODLINK_SESSION_TIMEOUT_SECONDS": "6",
                    "PODLINK_NOTIFY_GROUP_ID": f"podlink-notify-{tmp_path.name}",
                    "E2E_SECRET_DUTY": SECRET_DUTY, "E2E_SECRET_MANAGER": SECRET_MANAGER})
        process = NotifyProcess(env, tmp_path, int(env["PODLINK_NOTIFY_PORT"])).start()
        started.append(process)
        return process

    yield start
    for process in started:
        process.stop()


def test_a_breach_pages_the_duty_worker_once_and_an_acknowledgement_ends_it(
        fresh_broker, start_worker, start_notify, hooks: Hooks, prefix: str) -> None:
    start_worker(fresh_broker.bootstrap)
    notify = start_notify(fresh_broker.bootstrap)
    ref = f"{prefix}-LATE"
    send(fresh_broker.bootstrap, pathway(ref, ago(30), "breached")[:1])

    [(headers, body)] = wait_until(lambda: hooks.at("/duty"), 90, "the duty worker's webhook")
    # Checked as a receiver checks it: the shared secret over the exact bytes received.
    expected = "sha256=" + hmac.new(SECRET_DUTY.encode(), body, hashlib.sha256).hexdigest()
    assert hmac.compare_digest(headers["X-Podlink-Signature"], expected)
    alert = json.loads(body)
    assert (alert["referralId"], alert["kind"], alert["policy"]) == (ref, "breached", "first-meeting")
    assert alert["minutesLate"] >= 6 * 60 - 1  # received 30 h ago, due after 24 h

    [listed] = [a for a in notify.get("/alerts")["alerts"] if a["referralId"] == ref]
    assert (listed["state"], listed["paged"]) == ("open", ["duty-worker"])
    board = urllib.request.urlopen(notify.url + "/board", timeout=10).read().decode()
    assert ref in board and "Breached" in board

    assert notify.post(f"/alerts/{listed['id']}/ack", "not-a-token")[0] == 401
    status, acked = notify.post(f"/alerts/{listed['id']}/ack", DUTY_TOKEN)
    assert status == 200 and acked["acknowledgedBy"] == "duty-worker"

    # Tier 2 would have been paged 4 s after tier 1; wait well past that, checking twice a second.
    time.sleep(8)
    assert hooks.at("/manager") == []
    assert len(hooks.at("/duty")) == 1

    outcomes = consume_until_done(
        fresh_broker.bootstrap, OUTCOMES_TOPIC,
        lambda rs: {"uk.nhs.podlink.alert.sent", "uk.nhs.podlink.alert.acknowledged"}
        <= {e["type"] for e in of(ref, values(rs))}, timeout=30)
    mine = [e for e in of(ref, values(outcomes)) if e["type"].startswith("uk.nhs.podlink.alert.")]
    assert sorted(e["type"] for e in mine) == ["uk.nhs.podlink.alert.acknowledged", "uk.nhs.podlink.alert.sent"]
    assert all(r.headers and dict(r.headers)["content-type"].startswith(b"application/cloudevents+json")
               for r in outcomes if json.loads(r.value)["type"].startswith("uk.nhs.podlink.alert."))

    # Restarted in a new consumer group, it reads every alert again from the earliest (a replay):
    # the state topic holds what was sent, so nothing goes out again and the acknowledgement holds.
    notify.stop()
    notify.env["PODLINK_NOTIFY_GROUP_ID"] += "-replay"
    notify.start()
    wait_until(lambda: 'podlink_notify_alerts_total{kind="breached",outcome="duplicate"} 1.0'
               in urllib.request.urlopen(notify.url + "/metrics", timeout=10).read().decode(),
               60, "the replayed breach read as a duplicate")
    time.sleep(6)
    assert len(hooks.at("/duty")) == 1 and hooks.at("/manager") == []
    [listed] = [a for a in notify.get("/alerts")["alerts"] if a["referralId"] == ref]
    assert listed["state"] == "acknowledged"
