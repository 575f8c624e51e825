"""`podlink deliver` or `podlink intake` in a process of their own, as trust IT runs them."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Callable

from podlink_devtools.worker_process import stop


class ServiceProcess:
    def __init__(self, command: list[str], env: dict[str, str], log_dir: Path) -> None:
        self.command = command
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("PODLINK_")}
        self.env.update({"PODLINK_LOG_FORMAT": "json", **env})
        self.log_dir = log_dir
        self.runs = 0
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> ServiceProcess:
        self.runs += 1
        self.log_dir.mkdir(parents=True, exist_ok=True)
        with self._log(self.runs).open("wb") as log:
            self.proc = subprocess.Popen([sys.executable, "-m", "podlink.services.cli", *self.command],
                                         env=self.env, stdin=subprocess.DEVNULL, stdout=log,
                                         stderr=subprocess.STDOUT)
        return self

    def _log(self, run: int) -> Path:
        return self.log_dir / f"{'-'.join(self.command)}-{run}.log"

    def log_text(self) -> str:
        return "\n".join(self._log(r).read_text(errors="replace") for r in range(1, self.runs + 1))

    def log_lines(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.log_text().splitlines() if line.startswith("{")]

    def wait_for_log(self, predicate: Callable[[dict[str, Any]], bool], timeout: float) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.proc is not None and self.proc.poll() is None, self.log_text()[-3000:]
            for line in self.log_lines():
                if predicate(line):
                    return line
            time.sleep(0.2)
        raise TimeoutError(f"no matching log line in {timeout} s:\n{self.log_text()[-3000:]}")

    def stop(self) -> None:
        if self.proc is not None:
            stop(self.proc)
