"""The `podlink` command as an operator meets it."""
from __future__ import annotations

import fcntl
import os
import pty
import re
import select
import signal
import socket
import struct
import subprocess
import sys
import termios
import time

from rich.cells import cell_len

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


def test_a_worker_that_cannot_reach_kafka_says_so_once_and_exits(tmp_path):
    port = free_port()
    result = podlink("worker", env={"PODLINK_KAFKA_BOOTSTRAP": f"127.0.0.1:{port}", "PODLINK_LOG_FORMAT": "json",
                                    "PODLINK_DATA_DIR": str(tmp_path)}, timeout=120)
    assert result.returncode == 2
    assert result.stderr == (f"podlink: cannot reach Kafka (127.0.0.1:{port}: connection refused); check "
                             "PODLINK_KAFKA_BOOTSTRAP and that the brokers are running\n")
    # Nothing from the Kafka clients' retries before it: no error or warning lines at all.
    assert result.stdout == ""


def test_a_worker_whose_web_port_is_taken_says_so_and_exits(tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = podlink("worker", env={"PODLINK_WEB_BIND": "127.0.0.1", "PODLINK_WEB_PORT": str(port),
                                        "PODLINK_DATA_DIR": str(tmp_path)})
    assert result.returncode == 2
    assert f"cannot serve /healthz, /readyz and /metrics on 127.0.0.1:{port}" in result.stderr


def test_a_bad_setting_is_refused_naming_the_variable_to_fix():
    result = podlink("worker", env={"PODLINK_DEADLINE_SCAN_SECONDS": "soon"})
    assert result.returncode == 2
    assert result.stderr.startswith("podlink: invalid setting: PODLINK_DEADLINE_SCAN_SECONDS: ")


def test_a_second_worker_on_the_same_data_dir_is_refused_before_it_joins(tansu_broker, start_worker):
    first = start_worker(tansu_broker.bootstrap)
    env = {"PODLINK_KAFKA_BOOTSTRAP": tansu_broker.bootstrap, "PODLINK_DATA_DIR": str(first.data_dir),
           "PODLINK_GROUP_ID": first.group_id, "PODLINK_WEB_PORT": str(free_port()),
           "PODLINK_LOG_FORMAT": "json"}
    second = podlink("worker", env=env)
    assert second.returncode == 2
    assert second.stderr == (f"podlink: PODLINK_DATA_DIR={first.data_dir} is in use by another worker "
                             f"(pid {first.proc.pid}): give each worker a data directory of its own\n")
    assert second.stdout == ""  # it logged nothing: it never started


def test_a_worker_stopped_with_sigterm_says_it_is_stopping_and_stopped(tansu_broker, start_worker):
    worker = start_worker(tansu_broker.bootstrap)
    worker.wait_for_log(lambda line: line.get("event") == "tables recovered", timeout=90)
    worker.proc.send_signal(signal.SIGTERM)
    assert worker.proc.wait(60) == 0
    events = [line for line in worker.log_lines() if line.get("event") in ("worker stopping", "worker stopped")]
    assert [(e["event"], e.get("signal")) for e in events] == [("worker stopping", "SIGTERM"),
                                                               ("worker stopped", None)]


def test_podlink_run_shows_the_sample_stream_working_until_ctrl_c(tmp_path):
    log = (tmp_path / "run.log").open("w+")
    port = free_port()
    # PODLINK_WEB_BIND as a worker's default would have it: `podlink run` binds 127.0.0.1 anyway.
    env = {**os.environ, "PODLINK_LOG_FORMAT": "json", "PODLINK_DEADLINE_SCAN_SECONDS": "1",
           "PODLINK_WEB_PORT": str(port), "PODLINK_WEB_BIND": "0.0.0.0"}
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
    assert f'"web": "http://127.0.0.1:{port}"' in seen
    assert f"  metrics:   http://127.0.0.1:{port}/metrics" in seen
    # The demo's synthetic patients never reach the terminal.
    for n in range(40):
        assert sample_nhs_number(n) not in seen
    assert "Person1" not in seen


ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


class Screen:
    """What a terminal shows, read from a pseudo-terminal, colours and styles left out."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.raw = b""

    @property
    def text(self) -> str:
        # Decoded whole: a read can end inside a character or an escape sequence.
        return ANSI.sub("", self.raw.decode("utf-8", "replace")).replace("\r\n", "\n")

    def read_until(self, done, timeout: float) -> str:
        deadline = time.monotonic() + timeout
        while not done(self.text) and time.monotonic() < deadline:
            ready, _, _ = select.select([self.fd], [], [], 0.5)
            if ready:
                try:
                    chunk = os.read(self.fd, 65536)
                except OSError:  # the other end closed: the process is gone
                    break
                if not chunk:
                    break
                self.raw += chunk
        return self.text


def test_podlink_run_on_a_terminal_shows_a_line_per_record_within_its_width():
    width = 100
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("PODLINK_") and k not in ("COLUMNS", "LINES")}
    env.update({"PODLINK_DEADLINE_SCAN_SECONDS": "1", "PODLINK_WEB_PORT": str(free_port()), "TERM": "xterm-256color"})
    leader, follower = pty.openpty()
    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 40, width, 0, 0))
    proc = subprocess.Popen([sys.executable, "-m", "podlink.services.cli", "run"], cwd=REPO, env=env,
                            stdin=follower, stdout=follower, stderr=follower, start_new_session=True)
    os.close(follower)
    # Which of a referral's events the worker reads first varies (two topics), so a pattern.
    wanted = [re.compile(pattern) for pattern in (
        r"\d\d:\d\d:\d\d  REF-DEMO-\d{4}   referral\.received  → (\d )?FHIR messages?, deadline due \w{3} \d\d \w{3} \d\d:\d\d",
        r" DEAD LETTER  spa\.referral-events\.v1/\d+@\d+  value is not JSON",
        r" ALERT breached  REF-DEMO-\d{4} ",
        r"── records \d+ · FHIR messages \d+ · open deadlines \d+ · alerts \d+ · dead letters 1")]
    screen = Screen(leader)
    try:
        seen = screen.read_until(lambda text: all(w.search(text) for w in wanted), timeout=120)
        assert [w.pattern for w in wanted if not w.search(seen)] == [], seen[-3000:]
    finally:
        proc.send_signal(signal.SIGINT)
        seen = screen.read_until(lambda text: "worker stopped" in text, timeout=60)
        proc.wait(30)
        os.close(leader)
    lines = seen.split("\n")
    assert [line for line in lines if cell_len(line) > width] == []
    assert "  metrics:   http://127.0.0.1:" in seen and "podlink tail epr.fhir-messages.v1 --follow" in seen
    assert "worker stopping (SIGINT)" in seen
    # The demo's synthetic patients never reach the terminal.
    for n in range(40):
        assert sample_nhs_number(n) not in seen
    assert "Person1" not in seen
