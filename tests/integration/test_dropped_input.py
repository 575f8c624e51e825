"""Input records that Faust's consumer fetched and never handed on (as around a rebalance, with
no later record on the partition to reveal the gap) are read again; a consumer that gives no
records at all stops the worker before anything is committed."""
from __future__ import annotations

import os
from pathlib import Path

from podlink.services.samples import pathway
from podlink.streams.worker.settings import FHIR_TOPIC
from tests.support.broker_io import ago, every_event_has_its_message, send, wait_until
from tests.support.brokers import consume_until_done

DROPS = Path(__file__).parent.parent / "support" / "faust_drops"
STALL_SECONDS = "5"


def dropping(mode: str) -> dict[str, str]:
    """A worker's environment for Faust to drop input records (tests/support/faust_drops)."""
    return {"PYTHONPATH": os.pathsep.join(p for p in (str(DROPS), os.environ.get("PYTHONPATH")) if p),
            "PODLINK_TEST_DROP": mode, "PODLINK_STALL_SECONDS": STALL_SECONDS}


def _lines(worker, event: str) -> list[dict]:
    return [line for line in worker.log_lines() if line.get("event", "").startswith(event)]


def test_records_fetched_and_dropped_are_read_again_and_handled(fresh_broker, start_worker, prefix, tmp_path):
    dropping_now = tmp_path / "drop"
    worker = start_worker(fresh_broker.bootstrap, **dropping(str(dropping_now)))
    at = ago(3)
    first = {f"{prefix}-{i}": pathway(f"{prefix}-{i}", at, "on-time", n=i)[:3] for i in range(4)}
    send(fresh_broker.bootstrap, [record for records in first.values() for record in records])
    consume_until_done(fresh_broker.bootstrap, FHIR_TOPIC, every_event_has_its_message(first), timeout=120)
    handled = {(line["topic"], line["partition"]): line["offset"] for line in _lines(worker, "record")}

    # Now the consumer drops what it fetches first, and nothing is sent after these records.
    dropping_now.touch()
    # Each referral's fourth event, a care event: on partitions where care events were handled.
    later = {ref: pathway(ref, at, "on-time", n=i)[:4] for i, ref in enumerate(first)}
    send(fresh_broker.bootstrap, [records[3] for records in later.values()])
    consume_until_done(fresh_broker.bootstrap, FHIR_TOPIC, every_event_has_its_message(later), timeout=120)
    assert worker.proc is not None and worker.proc.poll() is None  # read again, not restarted
    again = _lines(worker, "input records waiting that the consumer did not give")
    # Sent back to the first record after those handled (not to the partition's start).
    assert again and all(line["offset"] == handled[(line["topic"], line["partition"])] + 1 > 0 for line in again), \
        worker.log_text()[-3000:]


def test_a_consumer_that_gives_nothing_stops_the_worker_and_nothing_is_lost(kafka_fresh, start_worker, prefix):
    bootstrap = kafka_fresh.bootstrap
    worker = start_worker(bootstrap, **dropping("always"))
    pathways = {prefix: pathway(prefix, ago(3), "on-time")[:3]}
    send(bootstrap, pathways[prefix])
    assert worker.proc is not None
    wait_until(lambda: worker.proc.poll() is not None, 120, "the worker to stop")
    assert worker.proc.returncode == 69, worker.log_text()[-3000:]
    stopped = _lines(worker, "input records waited")
    assert stopped and stopped[0]["level"] == "critical", worker.log_text()[-3000:]
    # Sent back once before stopping: the remedy that works for records dropped once.
    assert _lines(worker, "input records waiting that the consumer did not give")

    worker.env.pop("PODLINK_TEST_DROP")
    worker.start()  # nothing was committed: the restarted worker reads the records from the start
    consume_until_done(bootstrap, FHIR_TOPIC, every_event_has_its_message(pathways), timeout=120)
