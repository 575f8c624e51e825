"""Starting a worker: against a given broker, or with everything embedded for a first look."""
from __future__ import annotations

import logging
import sys
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta, timezone
from pathlib import Path

import faust
import structlog

from podlink.services import logs
from podlink.services.data_dir_lock import DataDirInUse, lock_data_dir
from podlink.services.embedded_broker import EmbeddedBroker
from podlink.services.kafka_login import KafkaUnreachableError, check_login, error_text
from podlink.services.notify.local import start_local_notify
from podlink.services.notify.service import NotifyStartError
from podlink.services.samples import SCENARIOS, RawRecord, Record, pathway, send_records
from podlink.services.terminal_view import SUMMARY
from podlink.services.topics import TopicLayoutError, ensure_topics
from podlink.services.web import WebPortError, add_endpoints, check_port
from podlink.streams.worker.app import Worker
from podlink.streams.worker.kafka_security import KafkaSecurityError, client_options
from podlink.streams.worker.policy_loading import PolicyError, load_policy
from podlink.streams.worker.settings import (
    ALERTS_TOPIC,
    DEAD_LETTER_TOPIC,
    FHIR_TOPIC,
    KAFKA_SECURITY_FIELDS,
    OUTCOMES_TOPIC,
    SPA_TOPIC,
    Settings,
)

log = structlog.get_logger("podlink")
# How often the terminal view sums up, when something changed.
SUMMARY_SECONDS = 5.0
KAFKA_CLIENT_LOGGERS = ("kafka", "aiokafka")


class _Worker(faust.Worker):
    """Faust's worker, saying which signal stops it: operators see a stop begin and end."""

    def _on_sigint(self) -> None:
        log.info("worker stopping", signal="SIGINT")
        super()._on_sigint()

    def _on_sigterm(self) -> None:
        log.info("worker stopping", signal="SIGTERM")
        super()._on_sigterm()


@contextmanager
def _quiet_kafka_clients() -> Iterator[None]:
    """The checks before start say what failed in one line; the clients' own retry errors
    (a score of them for one unreachable broker) would only bury it."""
    loggers = [logging.getLogger(name) for name in KAFKA_CLIENT_LOGGERS]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.CRITICAL + 1)
    try:
        yield
    finally:
        for logger, level in zip(loggers, levels):
            logger.setLevel(level)


def _prepare(settings: Settings) -> int:
    """The checks before a worker joins its group; the input topics' partition count."""
    check_port(settings.web_bind, settings.web_port)
    with _quiet_kafka_clients():
        check_login(settings)
        return ensure_topics(settings.kafka_bootstrap, settings.partitions,
                             settings.replication_factor, client_options(settings))


def run_worker(settings: Settings) -> int:
    try:
        # Held until the process ends: RocksDB in this directory is this worker's alone.
        data_dir_lock = lock_data_dir(settings.data_dir)
    except DataDirInUse as exc:
        print(f"podlink: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"podlink: cannot use PODLINK_DATA_DIR={settings.data_dir}: {exc.strerror or exc}", file=sys.stderr)
        return 2
    try:
        loaded = load_policy(settings.policy_file, settings.teams)
    except PolicyError as exc:
        print(f"podlink: policy file refused: {exc}", file=sys.stderr)
        return 2
    try:
        partitions = _prepare(settings)
    except (TopicLayoutError, KafkaSecurityError, WebPortError, KafkaUnreachableError) as exc:
        print(f"podlink: {exc}", file=sys.stderr)
        return 2
    except Exception as exc:  # noqa: BLE001 - say what failed, not a traceback, to operators
        print(f"podlink: cannot reach Kafka at {settings.kafka_bootstrap}: {error_text(exc)}", file=sys.stderr)
        return 2
    logs.set_level(settings.log_level)
    worker = Worker(settings.model_copy(update={"partitions": partitions}), loaded=loaded)
    add_endpoints(worker)
    if logs.view() is not None:
        _add_summary(worker.app)
    log.info("worker starting", bootstrap=settings.kafka_bootstrap, partitions=partitions,
             teams=sorted(settings.teams) if settings.teams else "all",
             deadline_scan_seconds=settings.deadline_scan_seconds,
             web=f"http://{settings.web_bind}:{settings.web_port}")
    log.info("policies in force", source=loaded.source, rules=loaded.summary())
    faust_worker = _Worker(worker.app, loglevel="WARNING", quiet=True, redirect_stdouts=False,
                           logging_config=logs.stdlib_config())
    # Faust's terminal spinner sets the root logger to DEBUG to spin on every record, so every
    # aiokafka and Faust debug call builds a log record: 4.6% of a worker's time (profiled).
    faust_worker.spinner = None
    try:
        faust_worker.execute_from_commandline()
    except SystemExit as exit_:
        return int(exit_.code or 0)
    finally:
        log.info("worker stopped")
        data_dir_lock.close()
    return 0


def _add_summary(app: faust.App) -> None:
    @app.timer(SUMMARY_SECONDS, name="terminal-summary")
    async def summary() -> None:
        log.info(SUMMARY)


def run_embedded(settings: Settings, sample_interval: float) -> int:
    with EmbeddedBroker() as broker, tempfile.TemporaryDirectory(prefix="podlink-run-") as data:
        local = settings.model_copy(update={
            "kafka_bootstrap": broker.bootstrap,
            "data_dir": Path(data),
            # A first look on one machine: the endpoints are for this machine only.
            "web_bind": "127.0.0.1",
            # Tansu holds a group join for half the session timeout, and under-reports end
            # offsets, which Faust's recovery check would take for a corrupt store.
            "session_timeout_seconds": 6.0,
            "recovery_consistency_check": False,
            # The terminal view shows each record as it is handled.
            "record_log_level": "info",
            # The embedded broker is plain, whatever the production brokers need.
            **{name: Settings.model_fields[name].default for name in KAFKA_SECURITY_FIELDS},
        })
        logs.say(welcome(broker.bootstrap, local.web_port))
        try:
            stop_notify = start_local_notify(local, Path(data))
        except NotifyStartError as exc:
            print(f"podlink: {exc}", file=sys.stderr)
            return 2
        stop = threading.Event()
        from podlink.services.epr_exchange import exchange_welcome, start_exchange
        logs.say(exchange_welcome(start_exchange(local, stop)))
        feeder = threading.Thread(target=_feed_samples, args=(broker.bootstrap, sample_interval, stop),
                                  name="sample-feeder", daemon=True)
        feeder.start()
        try:
            return run_worker(local)
        finally:
            stop.set()
            stop_notify()


def welcome(bootstrap: str, web_port: int) -> str:
    """What `podlink run` prints first: what runs, where to look, how to stop."""
    web = f"http://127.0.0.1:{web_port}"
    tail = f"PODLINK_KAFKA_BOOTSTRAP={bootstrap} podlink tail"
    return "\n".join([
        f"podlink run: an embedded Tansu broker at {bootstrap} (memory only, for trying podlink "
        "out), a worker, and sample referrals. Ctrl-C stops.",
        f"  metrics:   {web}/metrics",
        f"  readiness: {web}/readyz",
        "  what it publishes, from another terminal:",
        *(f"    {tail} {topic} --follow"
          for topic in (FHIR_TOPIC, OUTCOMES_TOPIC, ALERTS_TOPIC, DEAD_LETTER_TOPIC)),
    ])


def _feed_samples(bootstrap: str, interval: float, stop: threading.Event) -> None:
    """One pathway of each scenario at once (some backdated past their deadline), then more."""
    now = datetime.now(timezone.utc)
    # Backdated so that each scenario is already where it shows something: a breach, a
    # deadline at risk, a meeting held late, care events before their referral.
    received = {"on-time": 16, "breached": 30, "at-risk": 20, "met-late": 30, "rejected": 2,
                "withdrawn": 3, "care-first": 16}
    first: list[Record | RawRecord] = [r for i, scenario in enumerate(SCENARIOS)
                        for r in pathway(f"REF-DEMO-{i:04d}", now - timedelta(hours=received[scenario]),
                                         scenario, n=i)]
    send_records(bootstrap, [*first, (SPA_TOPIC, b"REF-DEMO-BAD", b"{ this is not JSON")])
    n = len(SCENARIOS)
    while not stop.wait(interval):
        scenario = SCENARIOS[n % len(SCENARIOS)]
        send_records(bootstrap, pathway(f"REF-DEMO-{n:04d}", datetime.now(timezone.utc) - timedelta(
            hours=received[scenario]), scenario, n=n))
        n += 1

