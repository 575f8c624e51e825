"""`podlink run` shows the EPR exchange: deliveries to its built-in EPR stub, and a message sent
to its intake flowing through the worker and back out to the stub."""
from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
import uuid

from podlink.fhir_mappings.resource_ids import bundle_id as fhir_bundle_id
from podlink.services.embedded_broker import free_port
from tests.integration.test_intake import meeting_held, post
from tests.support.worker_process import REPO


def test_podlink_run_delivers_to_its_epr_stub_and_takes_messages_back(tmp_path):
    log_path = tmp_path / "run.log"
    ports = {name: str(free_port()) for name in ("WEB", "DELIVER_WEB", "INTAKE")}
    env = {**os.environ, "PODLINK_LOG_FORMAT": "json", **{f"PODLINK_{k}_PORT": v for k, v in ports.items()}}
    with log_path.open("w") as log:
        proc = subprocess.Popen([sys.executable, "-m", "podlink.services.cli", "run", "--sample-interval", "60"],
                                cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT, text=True)

    def wait_for(pattern: str, timeout: float = 90) -> re.Match[str]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = re.search(pattern, log_path.read_text())
            if found:
                return found
            time.sleep(0.5)
        raise AssertionError(f"{pattern!r} not in:\n{log_path.read_text()[-3000:]}")

    try:
        token = wait_for(r"bearer token (\S+)").group(1)
        wait_for(r'"event": "EPR stub received servicerequest-request')
        wait_for(r'"event": "message delivered"')
        wait_for(r'"event": "intake request ids read"')
        bundle_id = str(uuid.uuid4())
        status, response, _ = post(f"http://127.0.0.1:{ports['INTAKE']}",
                                   json.dumps(meeting_held("REF-DEMO-0002", bundle_id)).encode(), token=token)
        assert status == 200, response
        # The worker applied it, and its FHIR message for the meeting went to the stub.
        wait_for(r'"referral": "REF-DEMO-0002", "type": "uk.nhs.pod.meeting.held"')
        message_id = fhir_bundle_id("urn:podlink:intake:podlink-run", bundle_id)
        wait_for(rf'"event": "EPR stub received meeting-held \(X-Request-Id {message_id}\)')
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(30)
    text = log_path.read_text()
    assert f"  intake:    http://127.0.0.1:{ports['INTAKE']}/fhir/$process-message" in text
    assert "Robin Partner" not in text  # the network member's name in the message
