"""A `podlink worker` in its own process, as trust IT would run it, for end-to-end tests."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from podlink.services.embedded_broker import free_port

REPO = Path(__file__).resolve().parents[2]


@dataclass
class WorkerProcess:
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
        env = {k: v for k, v in os.environ.items() if not k.startswith("PODLINK_")}
        env.update({
            "PODLINK_KAFKA_BOOTSTRAP": self.bootstrap,
            "PODLINK_DATA_DIR": str(self.data_dir),
            "PODLINK_GROUP_ID": self.group_id,
            "PODLINK_SESSION_TIMEOUT_SECONDS": "6",
            "PODLINK_DEADLINE_SCAN_SECONDS": "1",
            "PODLINK_PARTITIONS": "3",
            "PODLINK_LOG_FORMAT": "json",
            "PODLINK_WEB_PORT": str(self.web_port),
            "PODLINK_WEB_BIND": "127.0.0.1",
            
            **self.env,
        })
        self.data_dir.mkdir(parents=True, exist_ok=True)
        log = self.log_path.open("wb")
        self.proc = subprocess.Popen([sys.executable, "-m", "podlink.services.cli", "worker"], cwd=REPO,
                                     env=env, stdout=log, stderr=subprocess.STDOUT)
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
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.kill()
