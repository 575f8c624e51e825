"""What a worker says about the broker's reachability, fed with failures and successes by hand."""
from __future__ import annotations

import ast
import logging
from pathlib import Path

import aiokafka
from aiokafka.errors import KafkaConnectionError, NodeNotReadyError, UnknownMemberIdError

from podlink.streams.worker.broker_watch import (
    CLIENT_LOGGERS,
    CONNECTION_TEMPLATES,
    Announcement,
    BrokerOutage,
    DropConnectionFailures,
    is_connection_failure,
)

OUTAGE_AFTER = 6.0
REPORT_EVERY = 30.0


def outage() -> BrokerOutage:
    return BrokerOutage(OUTAGE_AFTER, REPORT_EVERY, started=1000.0)


def run(machine: BrokerOutage, steps: list[tuple[float, str]]) -> list[tuple[float, Announcement]]:
    """Feeds (time, "error" | "failure" | "success") steps; returns what was said, and when."""
    said = []
    for now, step in steps:
        kind = {"error": machine.client_error, "failure": machine.failure, "success": machine.success}[step]
        said += [(now, announcement) for announcement in kind(now)]
    return said


def test_failures_become_an_outage_only_when_no_success_comes_for_outage_after_seconds():
    machine = outage()
    # 1000.0 to 1005.9: failing for 5.9 s, under OUTAGE_AFTER.
    assert run(machine, [(1000.0, "error"), (1003.0, "failure"), (1005.9, "error")]) == []
    assert machine.reachable
    assert run(machine, [(1006.0, "failure")]) == [
        (1006.0, Announcement("broker unreachable", 6, 2))]
    assert not machine.reachable


def test_a_success_between_failures_starts_the_count_again():
    machine = outage()
    said = run(machine, [(1000.0, "error"), (1005.0, "success"), (1006.0, "error"), (1011.9, "error")])
    assert said == [] and machine.reachable
    assert run(machine, [(1012.0, "failure")])[0][1].event == "broker unreachable"


def test_an_outage_is_said_once_then_every_report_every_seconds_then_once_more_when_it_ends():
    machine = outage()
    steps = [(1000.0 + t / 2, "error") for t in range(0, 2 * 100)]  # two errors a second, 100 s
    steps.append((1100.0, "success"))
    said = run(machine, steps)
    assert [(now, a.event, a.seconds) for now, a in said] == [
        (1006.0, "broker unreachable", 6),
        (1036.0, "broker still unreachable", 36),
        (1066.0, "broker still unreachable", 66),
        (1096.0, "broker still unreachable", 96),
        (1100.0, "broker reachable again", 100),
    ]
    # Every client error is in one announcement's count: 200 errors, 1000.0 to 1099.5.
    assert [a.client_errors for _, a in said] == [13, 60, 60, 60, 7]
    assert machine.reachable


def test_the_probe_alone_finds_an_outage_when_the_clients_say_nothing_it_recognises():
    machine = outage()
    said = run(machine, [(1000.0 + 2 * i, "failure") for i in range(5)] + [(1010.0, "success")])
    assert [(a.event, a.seconds, a.client_errors) for _, a in said] == [
        ("broker unreachable", 6, 0), ("broker reachable again", 10, 0)]


def test_client_errors_the_probe_contradicts_are_summed_up_at_most_every_report_every_seconds():
    machine = outage()
    steps = [(1000.0 + i, step) for i in range(0, 70) for step in ("error", "success")]
    said = run(machine, steps)
    # Each error is followed by a success within the same second: never an outage.
    assert [(now, a.event, a.seconds, a.client_errors) for now, a in said] == [
        (1030.0, "kafka client errors", 30, 31),
        (1060.0, "kafka client errors", 30, 30),
    ]


def test_levels_make_the_outage_an_error_and_its_end_information():
    levels = {event: Announcement(event, 0, 0).level for event in (
        "broker unreachable", "broker still unreachable", "broker reachable again", "kafka client errors")}
    assert levels == {"broker unreachable": "error", "broker still unreachable": "error",
                      "broker reachable again": "info", "kafka client errors": "warning"}


def test_the_clients_connection_failures_are_recognised_by_template_or_by_their_error():
    assert is_connection_failure("Unable connect to node with id %s: %s", (1, OSError("refused")))
    assert is_connection_failure("Unable to update metadata from %s", ([1],))
    assert is_connection_failure("Failed fetch messages from %s: %s", (1, "x"))
    assert is_connection_failure("Group Coordinator Request failed: %s", (NodeNotReadyError("x"),))
    assert is_connection_failure("some future wording %s", (KafkaConnectionError("closed"),))
    assert is_connection_failure("some future wording %s", KafkaConnectionError("closed"))
    assert not is_connection_failure("OffsetCommit failed for group %s due to group error (%s), will rejoin",
                                     ("g", UnknownMemberIdError("g")))
    assert not is_connection_failure("Unable connect to node with id %s", ())  # a near miss
    assert not is_connection_failure("LeaveGroup request succeeded", ())


def _record(msg: str, *args: object) -> logging.LogRecord:
    return logging.LogRecord("aiokafka", logging.ERROR, __file__, 1, msg, args, None)


def test_the_filter_drops_connection_failures_and_counts_them_and_lets_the_rest_through():
    seen = []
    quiet = DropConnectionFailures(lambda: seen.append(1))
    assert not quiet.filter(_record("Unable to update metadata from %s", [1]))
    assert not quiet.filter(_record("Failed fetch messages from %s: %s", 1, NodeNotReadyError("x")))
    assert quiet.filter(_record("Heartbeat failed: local member_id was not recognized; "
                                "resetting and re-joining group"))
    assert len(seen) == 2


def _aiokafka_modules() -> dict[str, ast.Module]:
    root = Path(aiokafka.__file__).parent
    return {".".join(("aiokafka", *path.relative_to(root).with_suffix("").parts)).removesuffix(".__init__"):
            ast.parse(path.read_text()) for path in root.rglob("*.py")}


def _logger_name(module_name: str, tree: ast.Module) -> str | None:
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and getattr(node.func, "attr", None) == "getLogger" and node.args:
            arg = node.args[0]
            return arg.value if isinstance(arg, ast.Constant) else module_name  # __name__
    return None


def test_every_template_is_one_the_installed_aiokafka_logs_on_a_logger_the_watch_filters():
    # An aiokafka upgrade that rewords a line, or moves it to another module, fails here
    # rather than flooding a trust's logs again.
    found = {}
    for module_name, tree in _aiokafka_modules().items():
        for node in ast.walk(tree):
            if isinstance(node, ast.Constant) and node.value in CONNECTION_TEMPLATES:
                found[node.value] = _logger_name(module_name, tree)
    assert set(found) == CONNECTION_TEMPLATES
    assert set(found.values()) <= set(CLIENT_LOGGERS), found
