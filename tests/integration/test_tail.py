"""`podlink tail` on a real broker: what a person or a script sees of podlink's topics."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import uuid

import pytest

from podlink.services.topics import ensure_topics
from podlink.streams.worker.settings import OUTCOMES_TOPIC
from tests.integration.test_cli import podlink
from tests.support.broker_io import send_raw, wait_until
from tests.support.worker_process import REPO


def _ours(stdout: str, key_prefix: str) -> list[dict]:
    # The broker is shared with other tests: only this test's keys count.
    return [record for record in map(json.loads, stdout.splitlines()) if record["key"].startswith(key_prefix)]


def test_tail_prints_records_as_json_lines_and_for_people(tansu_broker):
    bootstrap = tansu_broker.bootstrap
    ensure_topics(bootstrap, 3)
    key = f"REF-TAIL-{uuid.uuid4().hex[:8]}"
    bundle = {"resourceType": "Bundle", "id": key.lower(), "entry": [{"fullUrl": "urn:uuid:1"}]}
    send_raw(bootstrap, [(OUTCOMES_TOPIC, key.encode(), json.dumps(bundle).encode()),
                         (OUTCOMES_TOPIC, f"{key}-B".encode(), b"not JSON at all")])
    env = {"PODLINK_KAFKA_BOOTSTRAP": bootstrap}

    as_json = podlink("tail", OUTCOMES_TOPIC, "--json", env=env)
    assert as_json.returncode == 0, as_json.stderr
    records = sorted(_ours(as_json.stdout, key), key=lambda r: r["key"])
    assert [(r["topic"], r["key"], r["value"], r["headers"]) for r in records] == [
        (OUTCOMES_TOPIC, key, bundle, {}), (OUTCOMES_TOPIC, f"{key}-B", "not JSON at all", {})]
    for record in records:
        assert isinstance(record["partition"], int) and isinstance(record["offset"], int)
        assert record["timestamp"].endswith("Z")

    limited = podlink("tail", OUTCOMES_TOPIC, "--json", "--limit", "1", env=env)
    assert limited.returncode == 0 and len(limited.stdout.splitlines()) == 1

    pretty = podlink("tail", OUTCOMES_TOPIC, env=env)
    assert pretty.returncode == 0, pretty.stderr
    assert f"key={key}" in pretty.stdout and f"key={key}-B" in pretty.stdout
    assert '  "resourceType": "Bundle",' in pretty.stdout  # indented JSON
    assert "not JSON at all" in pretty.stdout


def _ignore_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)


# Started as from a terminal, and as a background job of a script, which starts with SIGINT
# ignored (POSIX): Ctrl-C must stop it either way.
@pytest.mark.parametrize("started_with", [None, _ignore_sigint], ids=["sigint-default", "sigint-ignored"])
def test_tail_follow_prints_new_records_until_ctrl_c(tansu_broker, started_with):
    bootstrap = tansu_broker.bootstrap
    ensure_topics(bootstrap, 3)
    key = f"REF-FOLLOW-{uuid.uuid4().hex[:8]}"
    proc = subprocess.Popen([sys.executable, "-m", "podlink.services.cli", "tail", OUTCOMES_TOPIC, "--follow",
                             "--json"], cwd=REPO, env={**os.environ, "PODLINK_KAFKA_BOOTSTRAP": bootstrap},
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, preexec_fn=started_with)
    lines: list[str] = []
    # Read on a thread, so that a tail printing nothing fails the wait rather than blocking it.
    threading.Thread(target=lambda: lines.extend(iter(proc.stdout.readline, "")), daemon=True).start()
    try:
        send_raw(bootstrap, [(OUTCOMES_TOPIC, key.encode(), b'{"n": 1}')])
        wait_until(lambda: key in "".join(lines), 60, "the new record")
        send_raw(bootstrap, [(OUTCOMES_TOPIC, key.encode(), b'{"n": 2}')])
        wait_until(lambda: len(_ours("".join(lines), key)) == 2, 60, "one more")
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(30)
    assert proc.returncode == 0
    assert [r["value"] for r in _ours("".join(lines), key)] == [{"n": 1}, {"n": 2}]


def test_an_unknown_topic_is_refused_in_one_line(tansu_broker):
    result = podlink("tail", "epr.fhir-messages", env={"PODLINK_KAFKA_BOOTSTRAP": tansu_broker.bootstrap})
    assert result.returncode == 2
    assert result.stdout == ""
    assert len(result.stderr.splitlines()) == 1
    assert result.stderr.startswith("podlink tail: unknown topic 'epr.fhir-messages': podlink's topics are ")
