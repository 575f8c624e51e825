"""`podlink intake` over real HTTP on real brokers: every answer it gives, a meeting held sent by
the "EPR" flowing through a real worker to an outcome event and a FHIR message, a repeated
request publishing nothing new, and a request refused (not lost) while the broker is down."""
from __future__ import annotations

import copy
import hashlib
import json
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path

import pytest
from podlink_devtools.apache_kafka import ApacheKafkaBroker

from podlink.services.embedded_broker import free_port
from podlink.services.samples import pathway
from tests.support.broker_io import ago, send
from tests.support.brokers import consume_all, consume_until, consume_until_done
from tests.support.service_process import ServiceProcess

GOLDEN = Path(__file__).resolve().parents[1] / "golden" / "bundles-examples-journey.json"
TOKEN = "main-epr-token"
CARE_TOPIC = "pod.care-events.v1"
NHS_NUMBER = "9990000018"


def meeting_held(referral_id: str, bundle_id: str) -> dict:
    """podlink's own meeting-held message, sent back by the EPR for `referral_id`."""
    bundle = copy.deepcopy(next(b for b in json.loads(GOLDEN.read_text())
                                if b["entry"][0]["resource"]["eventCoding"]["code"] == "meeting-held"))
    bundle["id"] = bundle_id
    focus = bundle["entry"][0]["resource"]["focus"][0]["reference"]
    for entry in bundle["entry"]:
        resource = entry["resource"]
        if entry["fullUrl"] == focus:
            resource["identifier"] = [{"system": "https://trust.example.nhs.uk/Id/meeting-id", "value": f"MTG-{bundle_id}"}]
        if resource["resourceType"] == "ServiceRequest":
            resource["identifier"][0]["value"] = referral_id
    return bundle


def post(url: str, body: bytes, *, token: str | None = TOKEN, request_id: str | None = None,
         content_type: str = "application/fhir+json") -> tuple[int, dict, dict]:
    headers = {"Content-Type": content_type, "X-Request-Id": request_id or str(uuid.uuid4())}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    request = urllib.request.Request(f"{url}/fhir/$process-message", data=body, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read()), dict(response.headers)
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read()), dict(error.headers)


def _intake(bootstrap: str, log_dir: Path, **env: str) -> tuple[ServiceProcess, str]:
    port = free_port()
    intake = ServiceProcess(["intake"], {
        "PODLINK_KAFKA_BOOTSTRAP": bootstrap,
        "PODLINK_INTAKE_PORT": str(port),
        "PODLINK_INTAKE_BIND": "127.0.0.1",
        "PODLINK_INTAKE_TOKENS": f"epr-main={hashlib.sha256(TOKEN.encode()).hexdigest()},"
                                 f"epr-lab={hashlib.sha256(b'lab-token').hexdigest()}",
        "PODLINK_INTAKE_MAX_BYTES": "65536",
        **env,
    }, log_dir).start()
    try:
        intake.wait_for_log(lambda line: line.get("event") == "intake request ids read", timeout=60)
    except BaseException:
        intake.stop()
        raise
    return intake, f"http://127.0.0.1:{port}"


def _issue(outcome: dict) -> dict:
    assert outcome["resourceType"] == "OperationOutcome"
    return outcome["issue"][0]


def _care_events(bootstrap: str, referral_id: str, wait: float) -> list[dict]:
    records = consume_all(bootstrap, CARE_TOPIC, min_records=10**9, timeout=wait)
    return [json.loads(r.value) for r in records if r.key == referral_id.encode()]


@pytest.fixture
def intake(broker, tmp_path):
    service, url = _intake(broker.bootstrap, tmp_path)
    yield url
    service.stop()
    log = service.log_text()
    assert NHS_NUMBER not in log and "Robin Partner" not in log, "patient data in intake's log"


def test_each_answer(broker, intake):
    ref = f"REF-{uuid.uuid4().hex[:8]}"
    body = json.dumps(meeting_held(ref, str(uuid.uuid4()))).encode()

    status, outcome, _ = post(intake, body, token=None)
    assert status == 401 and _issue(outcome)["details"]["coding"][0]["code"] == "ACCESS_DENIED"
    assert post(intake, body, token="wrong")[0] == 401
    status, outcome, _ = post(intake, body, content_type="application/xml")
    assert status == 415 and _issue(outcome)["code"] == "not-supported"
    status, outcome, _ = post(intake, b'{"pad": "' + b"x" * 70_000 + b'"}')
    assert status == 413 and _issue(outcome)["details"]["coding"][0]["code"] == "PAYLOAD_TOO_LARGE"

    status, outcome, _ = post(intake, body, request_id="not an id")
    assert status == 400 and _issue(outcome)["expression"] == ["X-Request-Id"]
    status, outcome, _ = post(intake, b"{ not json")
    assert status == 400 and _issue(outcome)["details"]["coding"][0]["code"] == "REC_BAD_REQUEST"
    broken = meeting_held(ref, str(uuid.uuid4()))
    broken["entry"][-2]["resource"]["identifier"][0]["value"] = NHS_NUMBER  # Patient stays readable
    broken["entry"][1]["resource"]["period"] = NHS_NUMBER  # a string where FHIR wants a Period
    status, outcome, _ = post(intake, json.dumps(broken).encode())
    assert status == 400
    assert _issue(outcome)["expression"] == ["Bundle.entry[1].resource.period"]
    assert NHS_NUMBER not in json.dumps(outcome), "a refusal echoed patient data"
    no_id = meeting_held(ref, str(uuid.uuid4()))
    del no_id["entry"][1]["resource"]["identifier"]
    status, outcome, _ = post(intake, json.dumps(no_id).encode())
    assert status == 400 and _issue(outcome)["expression"] == ["Encounter.identifier"]

    unhandled = meeting_held(ref, str(uuid.uuid4()))
    unhandled["entry"][0]["resource"]["eventCoding"]["code"] = "contact-made"
    status, outcome, _ = post(intake, json.dumps(unhandled).encode())
    assert status == 422 and _issue(outcome)["details"]["coding"][0]["code"] == "REC_UNPROCESSABLE_ENTITY"
    late = meeting_held(ref, str(uuid.uuid4()))
    late["entry"][1]["resource"]["period"]["start"] = "2026-03-29"  # a date, the contract wants a time
    status, outcome, _ = post(intake, json.dumps(late).encode())
    assert status == 422 and "data.start" in _issue(outcome)["diagnostics"]

    assert _care_events(broker.bootstrap, ref, wait=2) == [], "a refused request was published"

    # Accepted: a BaRS response once Kafka has the event, and the event on the care topic.
    bundle_id = str(uuid.uuid4())
    body = json.dumps(meeting_held(ref, bundle_id)).encode()
    status, response, headers = post(intake, body, request_id="req-1-" + bundle_id)
    assert status == 200, response
    header = response["entry"][0]["resource"]
    assert header["response"] == {"identifier": bundle_id, "code": "ok"}
    assert headers["X-Request-Id"] == "req-1-" + bundle_id
    record = consume_until(broker.bootstrap, CARE_TOPIC, lambda r: r.key == ref.encode(), timeout=30)
    event = json.loads(record.value)
    assert event["id"] == bundle_id and event["source"] == "urn:podlink:intake:epr-main"
    assert event["type"] == "uk.nhs.pod.meeting.held" and event["subject"] == ref
    assert event["data"]["meetingId"] == f"MTG-{bundle_id}"

    # The same request again: the same answer, nothing new published.
    again = post(intake, body, request_id="req-1-" + bundle_id)
    assert again[0] == 200 and again[1]["entry"][0]["resource"]["response"] == header["response"]
    # The same request id with another body: a conflict.
    other = json.dumps(meeting_held(ref, str(uuid.uuid4()))).encode()
    status, outcome, _ = post(intake, other, request_id="req-1-" + bundle_id)
    assert status == 409 and _issue(outcome)["details"]["coding"][0]["code"] == "REC_CONFLICT"
    # Another EPR's request ids are its own.
    assert post(intake, other, token="lab-token", request_id="req-1-" + bundle_id)[0] == 200
    events = _care_events(broker.bootstrap, ref, wait=3)
    assert [(e["id"], e["source"]) for e in events] == [
        (bundle_id, "urn:podlink:intake:epr-main"),
        (json.loads(other)["id"], "urn:podlink:intake:epr-lab")]

    with urllib.request.urlopen(f"{intake}/fhir/metadata", timeout=10) as response:
        capability = json.loads(response.read())
    assert capability["resourceType"] == "CapabilityStatement" and capability["fhirVersion"] == "4.0.1"
    assert [m["definition"].rsplit("#", 1)[1] for m in capability["messaging"][0]["supportedMessage"]] == [
        "meeting-scheduled", "meeting-held", "meeting-cancelled", "risk-assessed", "measure-recorded",
        "episode-discharged"]

    # podlink's own terms, served where their canonical URLs say (no credential: receivers
    # validate with them), under the base URL the service was given.
    with urllib.request.urlopen(f"{intake}/fhir/CodeSystem/pod-deadline-policy", timeout=10) as response:
        system = json.loads(response.read())
        assert response.headers["Content-Type"].startswith("application/fhir+json")
    assert system["resourceType"] == "CodeSystem" and system["id"] == "pod-deadline-policy"
    assert system["url"].endswith("/CodeSystem/pod-deadline-policy")
    assert "first-meeting" in [c["code"] for c in system["concept"]]
    with urllib.request.urlopen(f"{intake}/fhir/StructureDefinition/Extension-POD-ServiceUserAttended",
                                timeout=10) as response:
        assert json.loads(response.read())["type"] == "Extension"
    with pytest.raises(urllib.error.HTTPError) as missing:
        urllib.request.urlopen(f"{intake}/fhir/CodeSystem/no-such-system", timeout=10)
    assert missing.value.code == 404
    assert json.loads(missing.value.read())["issue"][0]["code"] == "not-found"


def test_request_ids_survive_a_restart(broker, tmp_path):
    service, url = _intake(broker.bootstrap, tmp_path)
    ref = f"REF-{uuid.uuid4().hex[:8]}"
    body = json.dumps(meeting_held(ref, str(uuid.uuid4()))).encode()
    try:
        assert post(url, body, request_id="r-" + ref)[0] == 200
    finally:
        service.stop()
    service, url = _intake(broker.bootstrap, tmp_path / "again")
    try:
        assert post(url, body, request_id="r-" + ref)[0] == 200
        other = json.dumps(meeting_held(ref, str(uuid.uuid4()))).encode()
        assert post(url, other, request_id="r-" + ref)[0] == 409
        assert len(_care_events(broker.bootstrap, ref, wait=3)) == 1
    finally:
        service.stop()


def test_a_meeting_held_in_the_epr_reaches_the_worker(broker, start_worker, intake):
    ref = f"REF-{uuid.uuid4().hex[:8]}"
    start_worker(broker.bootstrap)
    send(broker.bootstrap, pathway(ref, ago(2), "on-time")[:1])  # the referral, from SPA
    bundle_id = str(uuid.uuid4())
    assert post(intake, json.dumps(meeting_held(ref, bundle_id)).encode())[0] == 200

    outcomes = consume_until_done(broker.bootstrap, "pod.outcomes.v1", lambda rs: any(
        r.key == ref.encode() and json.loads(r.value)["type"] == "uk.nhs.podlink.meeting.held" for r in rs), 90)
    held = [json.loads(r.value) for r in outcomes if r.key == ref.encode()
            and json.loads(r.value)["type"] == "uk.nhs.podlink.meeting.held"]
    assert held[0]["data"]["meetingId"] == f"MTG-{bundle_id}"
    assert held[0]["data"]["attendance"] == {"service_user": 1, "network_member": 1, "staff": 2}
    messages = consume_until_done(broker.bootstrap, "epr.fhir-messages.v1", lambda rs: sum(
        r.key == ref.encode() for r in rs) >= 2, 60)
    codes = [json.loads(r.value)["entry"][0]["resource"]["eventCoding"]["code"]
             for r in messages if r.key == ref.encode()]
    assert codes == ["servicerequest-request", "meeting-held"]


def test_refused_while_the_broker_is_down_then_taken_once_it_is_back(tmp_path):
    with ApacheKafkaBroker() as broker:
        service, url = _intake(broker.bootstrap, tmp_path, PODLINK_INTAKE_PUBLISH_TIMEOUT_SECONDS="2")
        try:
            ref, bundle_id = f"REF-{uuid.uuid4().hex[:8]}", str(uuid.uuid4())
            body = json.dumps(meeting_held(ref, bundle_id)).encode()
            broker.kill()
            started = time.monotonic()
            status, outcome, _ = post(url, body, request_id="outage-1")
            assert status == 503 and _issue(outcome)["code"] == "transient"
            assert time.monotonic() - started < 15
            broker.restart()
            # The EPR sends the refused request again, as a 503 asks; once Kafka is back it is taken.
            deadline = time.monotonic() + 90
            while (status := post(url, body, request_id="outage-1")[0]) == 503 and time.monotonic() < deadline:
                time.sleep(1)
            assert status == 200
            events = _care_events(broker.bootstrap, ref, wait=5)
            # Taken, not lost. (Had the refused attempt reached Kafka after all, it would be the
            # same event, same id, which the stream processor applies once.)
            assert events and {(e["id"], e["type"]) for e in events} == {(bundle_id, "uk.nhs.pod.meeting.held")}
        finally:
            service.stop()
