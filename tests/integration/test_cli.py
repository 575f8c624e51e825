"""The `podlink` command as an operator meets it."""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time

from podlink.services.embedded_broker import free_port
from podlink.services.samples import sample_nhs_number
from podlink.streams.worker.settings import Settings
from tests.support.worker_process import REPO


def podlink(*args: str, env: dict[str, str] | None = None, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "podlink.services.cli", *args], cwd=REPO, text=True,
                          capture_output=True, timeout=timeout, env={**os.environ, **(env or {})})


def test_help_documents_every_command_and_setting():
    out = podlink("--help").stdout
    for command in ("run", "worker", "bench", "dead-letters", "replay"):
        assert command in out
    for name in Settings.model_fields:
        assert f"PODLINK_{name.upper()}" in out


def test_a_worker_that_cannot_reach_kafka_says_so_and_exits():
    result = podlink("worker", env={"PODLINK_KAFKA_BOOTSTRAP": f"127.0.0.1:{free_port()}"}, timeout=120)
    assert result.returncode == 2
    assert "cannot reach Kafka" in result.stderr


def test_a_worker_whose_web_port_is_taken_says_so_and_exits():
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = podlink("worker", env={"PODLINK_WEB_BIND": "127.0.0.1", "PODLINK_WEB_PORT": str(port)})
    assert result.returncode == 2
    assert f"cannot serve /healthz, /readyz and /metrics on 127.0.0.1:{port}" in result.stderr


def test_a_bad_setting_is_refused_before_anything_starts():
    result = podlink("worker", env={"PODLINK_DEADLINE_SCAN_SECONDS": "soon"})
    assert result.returncode == 2 and "deadline_scan_seconds" in result.stderr


def test_podlink_run_shows_the_sample_stream_working_until_ctrl_c(tmp_path):
    log = (tmp_path / "run.log").open("w+")
    env = {**os.environ, "PODLINK_LOG_FORMAT": "json", "PODLINK_DEADLINE_SCAN_SECONDS": "1",
           "PODLINK_WEB_PORT": str(free_port()), "PODLINK_WEB_BIND": "127.0.0.1"}
    proc = subprocess.Popen([sys.executable, "-m", "podlink.services.cli", "run"], cwd=REPO, env=env,
                            stdout=log, stderr=subprocess.STDOUT, text=True)
    try:
        seen = ""
        deadline = time.monotonic() + 90
        wanted = ['"alert raised"', '"record rejected"', "uk.nhs.podlink.meeting.first",
                  "uk.nhs.podlink.referral.registered"]
        while time.monotonic() < deadline and not all(w in seen for w in wanted):
            time.sleep(0.5)
            seen = (tmp_path / "run.log").read_text()
        assert all(w in seen for w in wanted), seen[-3000:]
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(30)
    assert proc.returncode in (0, -signal.SIGINT, 130)
    # The demo's synthetic patients never reach the terminal.
    for n in range(40):
        assert sample_nhs_number(n) not in seen
    assert "Person1" not in seen
