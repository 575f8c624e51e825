"""Intake terminating TLS itself: a client certificate from PODLINK_INTAKE_TLS_CLIENT_CA_FILE
signs the EPR in (its common name names it); without one or a token, 401."""
from __future__ import annotations

import json
import ssl
import urllib.error
import urllib.request

from podlink.services.embedded_broker import free_port
from tests.support.service_process import ServiceProcess
from tests.support.tls import write_tls_files


def _post(url: str, context: ssl.SSLContext) -> tuple[int, dict]:
    request = urllib.request.Request(url, data=b"{}", method="POST", headers={
        "Content-Type": "application/fhir+json", "X-Request-Id": "tls-1"})
    try:
        with urllib.request.urlopen(request, timeout=20, context=context) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def test_a_client_certificate_signs_the_epr_in(tmp_path):
    tls = write_tls_files(tmp_path / "tls")
    port = free_port()
    # No broker at all: a signed-in request gets as far as 503; one not signed in stops at 401.
    intake = ServiceProcess(["intake"], {
        "PODLINK_KAFKA_BOOTSTRAP": f"127.0.0.1:{free_port()}",
        "PODLINK_INTAKE_PORT": str(port), "PODLINK_INTAKE_BIND": "127.0.0.1",
        "PODLINK_INTAKE_TLS_CERT_FILE": str(tls.broker_cert), "PODLINK_INTAKE_TLS_KEY_FILE": str(tls.broker_key),
        "PODLINK_INTAKE_TLS_CLIENT_CA_FILE": str(tls.ca),
    }, tmp_path).start()
    try:
        intake.wait_for_log(lambda line: line.get("event") == "intake started", timeout=30)
        url = f"https://127.0.0.1:{port}/fhir/$process-message"
        with_cert = ssl.create_default_context(cafile=str(tls.ca))
        with_cert.load_cert_chain(tls.client_cert, tls.client_key)
        status, outcome = _post(url, with_cert)
        assert status == 503, outcome
        without = ssl.create_default_context(cafile=str(tls.ca))
        status, outcome = _post(url, without)
        assert status == 401, outcome
        refused = [line for line in intake.log_lines() if line.get("event") == "intake refused"]
        assert [(line["epr"], line["status"]) for line in refused] == [("podlink-worker", 503), (None, 401)]
    finally:
        intake.stop()
