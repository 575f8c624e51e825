"""The worker's log events as a person at a terminal wants them: one short line per record.

A log pipeline gets JSON lines; a person following `podlink run` wants to see what arrived,
what came out and what is due, in local time, each line within the terminal's width. The
lines are made from the same log events, which carry no patient data (a referral id
identifies the episode), so the view shows none either.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Mapping

import structlog
from rich.console import Console
from rich.text import Text

from podlink.streams.core.deadlines import LONDON

SUMMARY = "summary"
# Outcome events that end a first-meeting deadline: met, or the referral closed.
DEADLINE_MET = "meeting.first"
DEADLINE_ENDED = frozenset({DEADLINE_MET, "referral.closed", "episode.discharged"})
ALERT_STYLES = {"at-risk": "bold yellow", "breached": "bold red", "resolved": "bold green"}
QUIET_OUTCOMES = {
    "pending": "waits for its referral",
    "duplicate": "duplicate: nothing sent",
    "out-of-scope": "team out of scope: nothing sent",
}
REFERRAL_WIDTH = 15
TYPE_WIDTH = 18


def short_type(event_type: str) -> str:
    """`uk.nhs.spa.referral.received` -> `referral.received`: the contract's prefixes say nothing here."""
    parts = event_type.split(".")
    return ".".join(parts[3:]) if event_type.startswith("uk.nhs.") and len(parts) > 3 else event_type


def local_clock(timestamp: str | None) -> str:
    """An ISO 8601 moment as the time of day in Europe/London (`--:--:--` if there is none)."""
    if not timestamp:
        return "--:--:--"
    return datetime.fromisoformat(timestamp).astimezone(LONDON).strftime("%H:%M:%S")


def local_moment(timestamp: str, seconds: bool = False) -> str:
    """An ISO 8601 moment as a day and time in Europe/London, e.g. `Tue 01 Dec 14:05`."""
    moment = datetime.fromisoformat(timestamp).astimezone(LONDON)
    return moment.strftime("%a %d %b %H:%M:%S" if seconds else "%a %d %b %H:%M")


@dataclass
class Tally:
    """What the summary line counts, from the log events this view has seen."""

    records: int = 0
    fhir_messages: int = 0
    alerts: int = 0
    dead_letters: int = 0
    open_deadlines: set[str] = field(default_factory=set)

    def count(self, event: Mapping[str, Any]) -> None:
        name = event.get("event")
        if name == "record":
            self.records += 1
            self.fhir_messages += int(event.get("fhir_messages") or 0)
            referral = str(event.get("referral"))
            outcomes = {short_type(t) for t in event.get("outcome_events") or ()}
            if outcomes & DEADLINE_ENDED:
                self.open_deadlines.discard(referral)
            elif event.get("deadline"):
                self.open_deadlines.add(referral)
        elif name in ("record rejected", "record failed"):
            self.records += 1
            self.dead_letters += 1
        elif name == "alert raised":
            self.alerts += 1

    def figures(self) -> tuple[int, int, int, int, int]:
        return (self.records, self.fhir_messages, len(self.open_deadlines), self.alerts, self.dead_letters)


def summary_line(tally: Tally, timestamp: str | None, width: int) -> Text:
    records, messages, deadlines, alerts, dead = tally.figures()
    text = Text.assemble(
        (f"{local_clock(timestamp)}  ", "dim"), ("── ", "dim"),
        f"records {records} · FHIR messages {messages} · open deadlines {deadlines} · ",
        (f"alerts {alerts}", "bold yellow" if alerts else ""), " · ",
        (f"dead letters {dead}", "bold red" if dead else ""), style="cyan")
    return _fit(text, width)


def render_line(event: Mapping[str, Any], width: int) -> Text:
    """One log event as one line of at most `width` cells."""
    name = str(event.get("event", ""))
    render = _RENDERERS.get(name, _other)
    # Assembled, not added: `a + b` would give the whole line a's style.
    return _fit(Text.assemble((f"{local_clock(event.get('timestamp'))}  ", "dim"), render(event)), width)


def _fit(text: Text, width: int) -> Text:
    text.truncate(max(width, 1), overflow="ellipsis")
    return text


def _referral(event: Mapping[str, Any]) -> tuple[str, str]:
    return f"{str(event.get('referral') or '-'):<{REFERRAL_WIDTH}} ", "bold"


def _record(event: Mapping[str, Any]) -> Text:
    outcome = str(event.get("outcome", ""))
    line = Text.assemble(_referral(event), f"{short_type(str(event.get('type', ''))):<{TYPE_WIDTH}} ")
    if outcome in QUIET_OUTCOMES:
        return line.append(QUIET_OUTCOMES[outcome], style="dim")
    results = []
    messages = int(event.get("fhir_messages") or 0)
    if messages:
        results.append(Text("FHIR message" if messages == 1 else f"{messages} FHIR messages", style="green"))
    outcomes = [short_type(t) for t in event.get("outcome_events") or ()]
    # The deadline before the outcome events: a narrow terminal cuts the end of the line, and
    # when the deadline falls due matters more than the list of milestones.
    deadline = event.get("deadline")
    if DEADLINE_MET in outcomes:
        results.append(Text("deadline met", style="green"))
    elif deadline and not DEADLINE_ENDED.intersection(outcomes):
        results.append(Text(f"deadline due {local_moment(str(deadline))}", style="yellow"))
    results += [Text(f"{policy.replace('-', ' ')} due {local_moment(str(due))}", style="yellow")
                for policy, due in (event.get("other_deadlines") or {}).items()]
    results += [Text(kind, style="magenta") for kind in outcomes]
    if outcome == "replayed":
        line.append("replayed ", style="dim")
    if not results:
        return line.append("nothing sent", style="dim")
    return line.append("→ ").append_text(Text(", ").join(results))


def _dead_letter(event: Mapping[str, Any]) -> Text:
    where = f"{event.get('topic')}/{event.get('partition')}@{event.get('offset')}"
    line = Text.assemble((" DEAD LETTER ", "bold white on red"), " ")
    if event.get("referral"):
        line.append(*_referral(event)).append(f"{short_type(str(event.get('type', '')))} ")
    return line.append(f"{where}  {event.get('reason', '')}", style="red")


def _alert(event: Mapping[str, Any]) -> Text:
    kind = short_type(str(event.get("alert", ""))).removeprefix("sla.")
    style = ALERT_STYLES.get(kind, "bold")
    line = Text.assemble((f" ALERT {kind} ", f"{style} reverse"), " ", _referral(event))
    if event.get("rule"):
        return line.append(str(event["rule"]), style=style)
    due, policy = event.get("due"), str(event.get("policy", "first-meeting")).replace("-", " ")
    return line.append(f"{policy} due {local_moment(str(due))}" if due else "", style=style)


def _starting(event: Mapping[str, Any]) -> Text:
    return Text(f"worker starting: Kafka {event.get('bootstrap')}, {event.get('partitions')} partitions, "
                f"teams {event.get('teams')}, deadlines checked every {event.get('deadline_scan_seconds')} s",
                style="bold cyan")


def _assigned(event: Mapping[str, Any]) -> Text:
    numbers = ", ".join(str(p) for p in event.get("partitions") or ()) or "none"
    return Text(f"partitions assigned: {numbers}; recovering tables", style="cyan")


def _recovered(event: Mapping[str, Any]) -> Text:
    return Text(f"tables recovered ({event.get('changelog_records')} changelog records, "
                f"{event.get('seconds')} s): processing", style="cyan")


def _policies(event: Mapping[str, Any]) -> Text:
    # Each rule's summary starts with its name: "first-meeting: from referral.received, due 24h, ..."
    names = ", ".join(str(rule).split(":", 1)[0] for rule in event.get("rules") or ())
    return Text(f"policies in force ({event.get('source')}): {names}", style="cyan")


def _indexed(event: Mapping[str, Any]) -> Text:
    recomputed = f", {event['recomputed']} worked out again under changed policies" if event.get("recomputed") else ""
    return Text(f"deadlines indexed: {event.get('referrals')} referrals in {event.get('seconds')} s{recomputed}",
                style="cyan")


def _stopping(event: Mapping[str, Any]) -> Text:
    return Text(f"worker stopping ({event.get('signal')})", style="bold cyan")


def _stopped(event: Mapping[str, Any]) -> Text:
    return Text("worker stopped", style="bold cyan")


def _other(event: Mapping[str, Any]) -> Text:
    """Faust's, the Kafka clients' and podlink's other lines: text and where from, with the
    level when it asks for attention (an info line is just news)."""
    level = str(event.get("level", "info"))
    style = {"warning": "yellow", "error": "red", "critical": "bold red"}.get(level, "")
    line = Text.assemble((f"{level} " if style else "", style), str(event.get("event", "")))
    if event.get("error"):
        line.append(f" ({event['error']})")
    exception = str(event.get("exception") or "").strip().splitlines()
    if exception:
        line.append(f": {exception[-1]}", style=style)
    if event.get("logger"):
        line.append(f"  [{event['logger']}]", style="dim")
    return line


_RENDERERS = {
    "record": _record,
    "record rejected": _dead_letter,
    "record failed": _dead_letter,
    "alert raised": _alert,
    "worker starting": _starting,
    "partitions assigned": _assigned,
    "tables recovered": _recovered,
    "policies in force": _policies,
    "deadlines indexed": _indexed,
    "worker stopping": _stopping,
    "worker stopped": _stopped,
}


class TerminalView:
    """A structlog renderer: each event as a styled line for `console`, counted for the summary.

    A summary event renders the tally, and only when it changed since the last one, so an idle
    worker does not fill the screen with the same figures.
    """

    def __init__(self, console: Console) -> None:
        self.console = console
        self.tally = Tally()
        self._summarised: tuple[int, ...] | None = None

    def __call__(self, logger: Any, method: str, event: dict[str, Any]) -> str:
        if event.get("event") == SUMMARY:
            figures = self.tally.figures()
            if figures == self._summarised:
                raise structlog.DropEvent
            self._summarised = figures
            text = summary_line(self.tally, event.get("timestamp"), self.console.width)
        else:
            self.tally.count(event)
            text = render_line(event, self.console.width)
        with self.console.capture() as captured:
            self.console.print(text, end="", soft_wrap=True)
        return captured.get()

    def wrapped(self, text: str) -> str:
        """A message outside the log events (e.g. how to look), wrapped to the width."""
        with self.console.capture() as captured:
            self.console.print(text, highlight=False, markup=False, end="")
        return captured.get()
