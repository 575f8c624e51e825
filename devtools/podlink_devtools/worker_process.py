"""One way to run `podlink worker` in a process of its own, as trust IT runs it: for the
end-to-end tests and the benchmarks (services never start worker processes)."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from podlink.services.embedded_broker import free_port

STOP_GRACE = 20.0


def worker_environment(bootstrap: str, data_dir: Path, group_id: str, web_port: int,
                       extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """This process's environment without its PODLINK_ settings, plus a worker's own: JSON
    logs, a short session timeout (Tansu holds a join for half of it), endpoints on localhost."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PODLINK_")}
    env.update({
        "PODLINK_KAFKA_BOOTSTRAP": bootstrap,
        "PODLINK_DATA_DIR": str(data_dir),
        "PODLINK_GROUP_ID": group_id,
        "PODLINK_SESSION_TIMEOUT_SECONDS": "6",
        "PODLINK_LOG_FORMAT": "json",
        "PODLINK_WEB_PORT": str(web_port),
        "PODLINK_WEB_BIND": "127.0.0.1",
        **(extra or {}),
    })
    return env


def launch(env: Mapping[str, str], log_path: Path, new_session: bool = False) -> subprocess.Popen[bytes]:
    """`podlink worker` with `env`, its output (stdout and stderr) in `log_path`.

    `new_session` keeps a Ctrl-C meant for the caller from reaching the worker first.
    """
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("wb") as log:
        return subprocess.Popen([sys.executable, "-m", "podlink.services.cli", "worker"], env=dict(env),
                                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=new_session)


def stop(proc: subprocess.Popen[bytes], grace: float = STOP_GRACE) -> None:
    """SIGTERM, as an orchestrator stops a worker; SIGKILL if it is not gone within `grace` s."""
    if proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(grace)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


@dataclass
class WorkerProcess:
    """A worker that can be started again (a new log per run) and read back through its logs."""

    bootstrap: str
    data_dir: Path
    group_id: str
    env: dict[str, str] = field(default_factory=dict)
    proc: subprocess.Popen[bytes] | None = None
    runs: int = 0
    web_port: int = field(default_factory=free_port)

    @property
    def web_url(self) -> str:
        return f"http://127.0.0.1:{self.web_port}"

    @property
    def log_path(self) -> Path:
        return self.data_dir / f"worker-{self.runs}.log"

    def start(self) -> "WorkerProcess":
        self.runs += 1
        # Tests scan deadlines every second, on three partitions unless they say otherwise, and
        # read what each record did from its log line (at debug by default).
        extra = {"PODLINK_DEADLINE_SCAN_SECONDS": "1", "PODLINK_PARTITIONS": "3",
                 "PODLINK_RECORD_LOG_LEVEL": "info", **self.env}
        env = worker_environment(self.bootstrap, self.data_dir, self.group_id, self.web_port, extra)
        self.proc = launch(env, self.log_path)
        return self

    def log_lines(self) -> list[dict[str, Any]]:
        lines = []
        for run in range(1, self.runs + 1):
            for line in (self.data_dir / f"worker-{run}.log").read_text(errors="replace").splitlines():
                if line.startswith("{"):
                    lines.append(json.loads(line))
        return lines

    def log_text(self) -> str:
        return "\n".join((self.data_dir / f"worker-{r}.log").read_text(errors="replace")
                         for r in range(1, self.runs + 1))

    def wait_for_log(self, predicate: Any, timeout: float) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.proc is not None and self.proc.poll() is None, self.log_text()[-3000:]
            for line in self.log_lines():
                if predicate(line):
                    return line
            time.sleep(0.2)
        raise TimeoutError(f"no matching log line in {timeout} s:\n{self.log_text()[-3000:]}")

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def stop(self) -> None:
        if self.proc is not None:
            stop(self.proc)
