"""`podlink run` starts notify too: its local webhook receiver prints each delivery, and the
board and API it prints are there, on the embedded broker."""
from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from podlink.services.embedded_broker import free_port
from tests.support.worker_process import REPO


def test_podlink_run_pages_the_demo_breaches_to_its_local_receiver(tmp_path: Path) -> None:
    log_path = tmp_path / "run.log"
    env = {k: v for k, v in os.environ.items() if not k.startswith("PODLINK_")}
    env.update({"PODLINK_LOG_FORMAT": "json", "PODLINK_DEADLINE_SCAN_SECONDS": "1",
                "PODLINK_WEB_PORT": str(free_port()), "PODLINK_NOTIFY_PORT": str(free_port())})
    with log_path.open("w") as log:
        proc = subprocess.Popen([sys.executable, "-m", "podlink.services.cli", "run"], cwd=REPO, env=env,
                                stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 120
        wanted = re.compile(r"  WEBHOOK → duty-worker: REF-DEMO-\d{4} first-meeting breached, due .* late\)")
        while time.monotonic() < deadline and not wanted.search(log_path.read_text()):
            assert proc.poll() is None, log_path.read_text()[-3000:]
            time.sleep(0.5)
        seen = log_path.read_text()
        assert wanted.search(seen), seen[-3000:]
        assert "BAD SIGNATURE" not in seen
        board = re.search(r"on-call:   (http://127\.0\.0\.1:\d+)/board", seen)
        assert board and board[1] == f"http://127.0.0.1:{env['PODLINK_NOTIFY_PORT']}"
        alerts = json.loads(urllib.request.urlopen(board[1] + "/alerts", timeout=10).read())["alerts"]
        assert any(a["kind"] == "breached" and a["paged"] == ["duty-worker"] for a in alerts)
        token = re.search(r"Authorization: Bearer ([\w-]+)'", seen)
        assert token
        breach = next(a for a in alerts if a["kind"] == "breached")
        request = urllib.request.Request(f"{board[1]}/alerts/{breach['id']}/ack", method="POST", data=b"",
                                         headers={"Authorization": f"Bearer {token[1]}"})
        acked = json.loads(urllib.request.urlopen(request, timeout=10).read())
        assert (acked["state"], acked["acknowledgedBy"]) == ("acknowledged", "duty-worker")
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(60)
    assert '"event": "notify stopped"' in log_path.read_text()
