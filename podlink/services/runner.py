"""Starting a worker: against a given broker, or with everything embedded for a first look."""
from __future__ import annotations

import sys
import tempfile
import threading
from datetime import datetime, timedelta, timezone
from pathlib import Path

import faust
import structlog
from kafka import KafkaProducer

from podlink.services.embedded_broker import EmbeddedBroker
from podlink.services.kafka_login import check_login
from podlink.services.logs import stdlib_config
from podlink.services.samples import SCENARIOS, Record, pathway
from podlink.services.topics import TopicLayoutError, ensure_topics
from podlink.services.web import WebPortError, add_endpoints, check_port
from podlink.streams.core.encoding import json_bytes
from podlink.streams.worker.app import Worker
from podlink.streams.worker.kafka_security import KafkaSecurityError, client_options
from podlink.streams.worker.settings import KAFKA_SECURITY_FIELDS, SPA_TOPIC, Settings

log = structlog.get_logger("podlink")


def run_worker(settings: Settings) -> int:
    try:
        check_port(settings.web_bind, settings.web_port)
        check_login(settings)
        partitions = ensure_topics(settings.kafka_bootstrap, settings.partitions,
                                   settings.replication_factor, client_options(settings))
    except (TopicLayoutError, KafkaSecurityError, WebPortError) as exc:
        print(f"podlink: {exc}", file=sys.stderr)
        return 2
    except Exception as exc:  # noqa: BLE001 - say what failed, not a traceback, to operators
        print(f"podlink: cannot reach Kafka at {settings.kafka_bootstrap}: {type(exc).__name__}: {exc}",
              file=sys.stderr)
        return 2
    worker = Worker(settings.model_copy(update={"partitions": partitions}))
    add_endpoints(worker)
    log.info("worker starting", bootstrap=settings.kafka_bootstrap, partitions=partitions,
             teams=sorted(settings.teams) if settings.teams else "all",
             deadline_scan_seconds=settings.deadline_scan_seconds,
             web=f"http://{settings.web_bind}:{settings.web_port}")
    faust_worker = faust.Worker(worker.app, loglevel="WARNING", quiet=True, redirect_stdouts=False,
                                logging_config=stdlib_config(settings.log_format))
    # Faust's terminal spinner sets the root logger to DEBUG to spin on every record, so every
    # aiokafka and Faust debug call builds a log record: 4.6% of a worker's time (profiled).
    faust_worker.spinner = None
    try:
        faust_worker.execute_from_commandline()
    except SystemExit as exit_:
        return int(exit_.code or 0)
    return 0


def run_embedded(settings: Settings, sample_interval: float) -> int:
    with EmbeddedBroker() as broker, tempfile.TemporaryDirectory(prefix="podlink-run-") as data:
        print(f"podlink run: embedded Tansu broker at {broker.bootstrap} (memory only); "
              "sample referrals follow. Ctrl-C stops.", flush=True)
        local = settings.model_copy(update={
            "kafka_bootstrap": broker.bootstrap,
            "data_dir": Path(data),
            # Tansu holds a group join for half the session timeout, and under-reports end
            # offsets, which Faust's recovery check would take for a corrupt store.
            "session_timeout_seconds": 6.0,
            "recovery_consistency_check": False,
            # The embedded broker is plain, whatever the production brokers need.
            **{name: Settings.model_fields[name].default for name in KAFKA_SECURITY_FIELDS},
        })
        stop = threading.Event()
        feeder = threading.Thread(target=_feed_samples, args=(broker.bootstrap, sample_interval, stop),
                                  name="sample-feeder", daemon=True)
        feeder.start()
        try:
            return run_worker(local)
        finally:
            stop.set()


def _feed_samples(bootstrap: str, interval: float, stop: threading.Event) -> None:
    """One pathway of each scenario at once (some backdated past their deadline), then more."""
    producer = KafkaProducer(bootstrap_servers=bootstrap, linger_ms=5)
    now = datetime.now(timezone.utc)
    # Backdated so that each scenario is already where it shows something: a breach, a
    # deadline at risk, a meeting held late, care events before their referral.
    received = {"on-time": 16, "breached": 30, "at-risk": 20, "met-late": 30, "rejected": 2,
                "withdrawn": 3, "care-first": 16}
    for i, scenario in enumerate(SCENARIOS):
        _send(producer, pathway(f"REF-DEMO-{i:04d}", now - timedelta(hours=received[scenario]), scenario, n=i))
    producer.send(SPA_TOPIC, key=b"REF-DEMO-BAD", value=b"{ this is not JSON")
    producer.flush()
    n = len(SCENARIOS)
    while not stop.wait(interval):
        scenario = SCENARIOS[n % len(SCENARIOS)]
        _send(producer, pathway(f"REF-DEMO-{n:04d}", datetime.now(timezone.utc) - timedelta(
            hours=received[scenario]), scenario, n=n))
        producer.flush()
        n += 1
    producer.close()


def _send(producer: KafkaProducer, records: list[Record]) -> None:
    for record in records:
        producer.send(record.topic, key=record.key.encode(), value=json_bytes(record.value))
