"""`podlink tail TOPIC`: the records on one of podlink's topics, for a person or as JSON lines.

Values are shown as they are, patient data included: FHIR messages are for the EPR, and the
person reading them at a terminal is looking at what the EPR receives. They go to standard
output only, never to a log.
"""
from __future__ import annotations

import json
import signal
import sys
from datetime import datetime, timezone
from typing import Any, TextIO

from kafka.consumer.fetcher import ConsumerRecord
from rich.console import Console
from rich.json import JSON
from rich.text import Text

from podlink.services.kafka_login import error_text
from podlink.services.terminal_view import local_moment
from podlink.services.topic_reader import NoSuchTopic, read_topic
from podlink.streams.core.encoding import utc_text
from podlink.streams.worker.settings import INPUT_TOPICS, OUTPUT_TOPICS, Settings

TOPICS = INPUT_TOPICS + OUTPUT_TOPICS


def unknown_topic(topic: str) -> str | None:
    """Why `topic` cannot be tailed, or None if it is one of podlink's."""
    if topic in TOPICS:
        return None
    return f"unknown topic {topic!r}: podlink's topics are {', '.join(TOPICS)}"


def _text(raw: bytes | None) -> str | None:
    return None if raw is None else raw.decode("utf-8", "backslashreplace")


def _value(raw: bytes | None) -> Any:
    """The value parsed as JSON when it is JSON, else its text."""
    text = _text(raw)
    if text is None:
        return None
    try:
        return json.loads(text)
    except ValueError:
        return text


def as_json(record: ConsumerRecord) -> dict[str, Any]:
    """One record as one JSON object: where it is, when, its key, headers and value."""
    return {
        "topic": record.topic,
        "partition": record.partition,
        "offset": record.offset,
        "timestamp": utc_text(datetime.fromtimestamp(record.timestamp / 1000, timezone.utc)),
        "key": _text(record.key),
        "headers": {name: _text(raw) for name, raw in record.headers or ()},
        "value": _value(record.value),
    }


def heading(record: ConsumerRecord) -> Text:
    """`topic/partition@offset  local time  key=...` and the headers, one per line after it."""
    moment = local_moment(utc_text(datetime.fromtimestamp(record.timestamp / 1000, timezone.utc)), seconds=True)
    text = Text.assemble((f"{record.topic}/{record.partition}@{record.offset}", "bold cyan"),
                         f"  {moment}  ", ("key=", "dim"), (str(_text(record.key)), "bold"))
    for name, raw in record.headers or ():
        text.append(f"\n  {name}: {_text(raw)}", style="dim")
    return text


def show(console: Console, record: ConsumerRecord) -> None:
    console.print(heading(record))
    value = _value(record.value)
    if value is None:
        console.print("(no value)", style="dim")
    elif isinstance(value, str):
        console.print(value, markup=False, highlight=False, soft_wrap=True)
    else:
        console.print(JSON.from_data(value, ensure_ascii=False), soft_wrap=True)
    console.print()


def run_tail(settings: Settings, topic: str, follow: bool, limit: int | None, json_lines: bool,
             out: TextIO = sys.stdout, err: TextIO = sys.stderr) -> int:
    refused = unknown_topic(topic)
    if refused:
        print(f"podlink tail: {refused}", file=err)
        return 2
    # Ctrl-C must stop a follow even when whatever started us ignored SIGINT (a background job
    # of a script does): Python installs its own handler only where SIGINT is not ignored.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    console = Console(file=out)
    shown = 0
    try:
        for record in read_topic(settings, topic, "podlink-tail", follow=follow):
            if json_lines:
                print(json.dumps(as_json(record), ensure_ascii=False), file=out, flush=follow)
            else:
                show(console, record)
            shown += 1
            if limit is not None and shown >= limit:
                break
    except NoSuchTopic as exc:
        print(f"podlink tail: {exc} (a worker creates it when it starts)", file=err)
        return 2
    except KeyboardInterrupt:
        return 0
    except BrokenPipeError:
        return 0  # the reader went away, e.g. `| head`
    except Exception as exc:  # noqa: BLE001 - say what failed, not a traceback, to operators
        print(f"podlink tail: cannot read {topic} from {settings.kafka_bootstrap}: {error_text(exc)}", file=err)
        return 2
    return 0
