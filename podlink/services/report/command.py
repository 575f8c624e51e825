"""`podlink report`: read the outcome events, compute the report, write it.

Exit status: 0 written; 1 nothing to report (no outcome events, or no referral in scope);
2 the input could not be read (broker unreachable or refusing the login, file missing) or the
options do not fit.
"""
from __future__ import annotations

import logging
import sys
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, TextIO

from aiokafka.errors import KafkaError

from podlink.services.kafka_login import KafkaLoginError, KafkaUnreachableError, check_login, error_text
from podlink.services.report.collect import Scope
from podlink.services.report.events import parse
from podlink.services.report.figures import build_report
from podlink.services.report.sources import file_lines, topic_values
from podlink.services.report.writers import html_text, json_text, write_csv
from podlink.services.topic_reader import NoSuchTopic
from podlink.streams.worker.settings import OUTCOMES_TOPIC, Settings

FORMATS = ("json", "html", "csv")


def run_report(settings: Settings, from_file: str | None, fmt: str, out: Path | None, scope: Scope,
               stdout: TextIO | None = None, err: TextIO | None = None) -> int:
    def say(text: str) -> None:
        print(f"podlink report: {text}", file=err or sys.stderr)

    if fmt in ("html", "csv") and out is None:
        say(f"--format {fmt} needs --out ({'a file, e.g. report.html' if fmt == 'html' else 'a folder'})")
        return 2
    source = from_file
    where = OUTCOMES_TOPIC if source is None else ("standard input" if source == "-" else source)
    # The client's own log lines would land among the JSON on standard output; one line
    # saying why reading failed replaces them.
    client_logs = [logging.getLogger(name) for name in ("aiokafka", "kafka")]
    levels = [log.level for log in client_logs]
    for log in client_logs:
        log.setLevel(logging.CRITICAL)
    try:
        if source is None:
            # As a worker does before it starts: the clients would only say "Unable to bootstrap".
            check_login(settings)
        values: Iterable[bytes | None] = (topic_values(settings) if source is None
                                          else file_lines(None if source == "-" else Path(source)))
        report = build_report((parse(value) for value in values), scope)
    except (KafkaLoginError, KafkaUnreachableError) as exc:
        say(f"cannot read {OUTCOMES_TOPIC}: {exc}")
        return 2
    except NoSuchTopic:
        say(f"no outcome events: {OUTCOMES_TOPIC} does not exist on {settings.kafka_bootstrap} "
            "(a worker creates it when it starts)")
        return 1
    except OSError as exc:
        say(f"cannot read {where}: {exc.strerror or error_text(exc)}")
        return 2
    except KeyboardInterrupt:
        return 130
    except (KafkaError, TimeoutError) as exc:  # the broker went away while being read
        say(f"cannot read {where} from {settings.kafka_bootstrap}: {error_text(exc)}")
        return 2
    finally:
        for log, level in zip(client_logs, levels):
            log.setLevel(level)
    if report["skipped"]:
        reasons = "; ".join(f"{reason}: {n}" for reason, n in report["skippedReasons"].items())
        say(f"skipped {report['skipped']} records that are not podlink outcome events ({reasons})")
    if report["eventsRead"] == report["skipped"]:
        say(f"no outcome events in {where}: nothing to report")
        return 1
    if not report["referrals"]["registered"]:
        say(f"no referrals registered {describe(scope)} in {where}: nothing to report")
        return 1
    return _write(report, fmt, out, stdout or sys.stdout, say)


def _write(report: dict[str, Any], fmt: str, out: Path | None, stdout: TextIO,
           say: Callable[[str], None]) -> int:
    try:
        if fmt == "csv":
            assert out is not None
            written = write_csv(report, out)
            say(f"wrote {len(written)} tables to {out}/")
        elif fmt == "html":
            assert out is not None
            out.write_text(html_text(report), encoding="utf-8")
            say(f"wrote {out}")
        elif out is None:
            stdout.write(json_text(report))
        else:
            out.write_text(json_text(report), encoding="utf-8")
            say(f"wrote {out}")
    except BrokenPipeError:
        return 0  # the reader went away, e.g. `| head`
    except OSError as exc:
        say(f"cannot write {out}: {exc.strerror or exc}")
        return 2
    return 0


def describe(scope: Scope) -> str:
    """The scope in words, e.g. `for team POD-KENT received since 2026-01-01T00:00:00Z`."""
    parts = [f"for team {scope.team}" if scope.team else "for any team"]
    if scope.since:
        parts.append(f"received since {scope.since.isoformat()}")
    if scope.until:
        parts.append(f"{'and ' if scope.since else 'received '}before {scope.until.isoformat()}")
    return " ".join(parts)
