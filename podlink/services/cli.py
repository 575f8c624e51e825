"""The `podlink` command: `run` (everything on an embedded broker), `worker`, `bench`, `tail`,
the EPR exchange `deliver` and `intake` (docs/epr-exchange.md), the operator tools
`dead-letters` (with `redrive`) and `replay` (docs/operations.md), and `report`
(docs/report.md)."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from pydantic import ValidationError
from pydantic_core import PydanticUndefined
from pydantic_settings import BaseSettings

from podlink.services import logs
from podlink.services.kafka_options import aware_time
from podlink.services.notify.settings import settings_help as notify_settings_help
from podlink.streams.worker.settings import Settings, describe_invalid


def _settings_help(model: type[BaseSettings] = Settings, title: str = "settings") -> str:
    lines = [f"{title} (environment variables):"]
    for name, field in model.model_fields.items():
        default = field.default if field.default not in (None, PydanticUndefined) else "unset"
        lines.append(f"  PODLINK_{name.upper():<28} {field.description} (default: {default})")
    return "\n".join(lines)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="podlink",
        description="Links a Peer-supported Open Dialogue team to the trust's systems: SPA "
        "referrals and care events in, FHIR R4 messages, SLA alerts and outcome events out.",
        epilog=_settings_help(), formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    run = commands.add_parser(
        "run", help="start an embedded broker, a worker and a stream of sample referrals",
        description="Starts the embedded Tansu broker (memory only: for trying podlink out, "
        "never for production), a worker, and sample referral pathways, and shows what "
        "happens until Ctrl-C.", epilog=_settings_help(),
        formatter_class=argparse.RawDescriptionHelpFormatter)
    run.add_argument("--sample-interval", type=float, default=10.0, metavar="SECONDS",
                     help="a new sample referral every SECONDS (default 10)")
    commands.add_parser(
        "worker", help="run a worker against PODLINK_KAFKA_BOOTSTRAP",
        description="Creates missing topics, then consumes the input topics and publishes "
        "FHIR messages, outcome events, SLA alerts and dead letters.", epilog=_settings_help(),
        formatter_class=argparse.RawDescriptionHelpFormatter)
    from podlink.services.deliver.settings import DeliverSettings
    from podlink.services.intake.settings import IntakeSettings
    commands.add_parser(
        "deliver", help="send the FHIR messages to the EPR's $process-message (BaRS)",
        description="Consumes epr.fhir-messages.v1 with its own consumer group and POSTs each "
        "Bundle to PODLINK_EPR_URL/$process-message; retries, dead letters, outcome events and "
        "settings in docs/epr-exchange.md. Kafka settings as for the worker.",
        epilog=_settings_help(DeliverSettings, "deliver's settings"),
        formatter_class=argparse.RawDescriptionHelpFormatter)
    commands.add_parser(
        "intake", help="take FHIR messages from the EPR on POST /fhir/$process-message",
        description="Serves POST /fhir/$process-message and GET /fhir/metadata on "
        "PODLINK_INTAKE_PORT; each accepted message becomes a care event on pod.care-events.v1 "
        "(docs/epr-exchange.md). Kafka settings as for the worker.",
        epilog=_settings_help(IntakeSettings, "intake's settings"),
        formatter_class=argparse.RawDescriptionHelpFormatter)
    bench = commands.add_parser(
        "bench", help="measure end-to-end throughput and latency against a ceiling",
        description="Pushes synthetic referral pathways through a broker (embedded Tansu, "
        "Apache Kafka from jars with --broker kafka, or --bootstrap) and reports events/s, p50/p99 "
        "latency to the FHIR message, and the plain-aiokafka ceiling measured in the same run. "
        "With --recovery, measures instead what a restart costs a worker holding that many open "
        "episodes; with --open-episodes, what holding them costs while it runs.")
    bench.add_argument("--pathways", type=int, default=2000, help="referral pathways (default 2000)")
    bench.add_argument("--broker", choices=("tansu", "kafka"), default="tansu",
                       help="broker the throughput bench starts: embedded Tansu (default) or "
                       "Apache Kafka from the jars the tests use")
    mode = bench.add_mutually_exclusive_group()
    mode.add_argument("--recovery", type=int, default=None, metavar="EPISODES",
                      help="time a restart with EPISODES open episodes, with the RocksDB data "
                      "kept and lost, and one deadline scan (on Apache Kafka unless --bootstrap)")
    mode.add_argument("--open-episodes", type=int, default=None, metavar="EPISODES",
                      help="load EPISODES open episodes into one worker and report its memory, "
                      "changelog sizes, deadline scan times and an upper bound of its event-loop "
                      "lag (on Apache Kafka unless --bootstrap)")
    bench.add_argument("--bootstrap", default=None, help="broker to use instead of an embedded one")
    commands.add_parser(
        "notify", help="page on-call staff about SLA alerts; acknowledgement API and SLA board",
        description="Reads pod.sla-alerts.v1 in its own consumer group and tells the people the "
        "rota (PODLINK_ROTA_FILE) names, by webhook, PagerDuty, email and GOV.UK Notify, escalating "
        "until someone acknowledges; serves the acknowledgement API and the SLA board on "
        "PODLINK_NOTIFY_PORT (default 6067). See docs/on-call.md.", epilog=notify_settings_help(),
        formatter_class=argparse.RawDescriptionHelpFormatter)
    _add_operator_tools(commands)
    _add_report(commands)
    return parser


def _time(text: str) -> object:
    try:
        return aware_time(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def positive_int(text: str) -> int:
    """An argparse type: a whole number of at least 1."""
    try:
        number = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if number < 1:
        raise argparse.ArgumentTypeError(f"must be 1 or more, not {number}")
    return number


def _add_operator_tools(commands: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    from podlink.services.tail import TOPICS
    from podlink.streams.worker.settings import INPUT_TOPICS
    tail = commands.add_parser(
        "tail", help="print the records of one of podlink's topics",
        description="Prints the records of TOPIC from the earliest kept, each with its partition, "
        "offset, time (Europe/London), key, headers and value (JSON pretty-printed). Reading uses "
        "no consumer group: it changes nothing. FHIR messages and input events hold patient data, "
        f"as the EPR receives them. Topics: {', '.join(TOPICS)}.")
    tail.add_argument("topic", metavar="TOPIC", help="one of podlink's topics")
    tail.add_argument("--follow", action="store_true", help="keep printing new records until Ctrl-C")
    tail.add_argument("--limit", type=positive_int, metavar="N", help="stop after N records")
    tail.add_argument("--json", action="store_true",
                      help="one JSON object per line: topic, partition, offset, timestamp, key, "
                      "headers, value (parsed when it is JSON)")
    letters = commands.add_parser(
        "dead-letters", help="list the dead letters: source, reason, key, size (no values)",
        description="Reads podlink.dead-letter.v1 (no consumer group: reading changes nothing) "
        "and prints one line per dead letter, oldest first: time, source topic/partition@offset, "
        "key, the value's size and the reason. Values can carry patient data, so they are shown "
        "only with --show-values.")
    letters.add_argument("--since", type=_time, metavar="TIME",
                         help="only dead letters written at or after TIME (ISO 8601 with a zone, "
                         "e.g. 2026-05-01T09:00Z); default: from the beginning")
    letters.add_argument("--limit", type=positive_int, metavar="N", help="at most N (1 or more), oldest first")
    letters.add_argument("--show-values", action="store_true",
                         help="also print each original value (may hold patient data; warns on stderr)")
    letters.add_argument("--json", action="store_true", help="one JSON object per line")
    letters_actions = letters.add_subparsers(dest="letters_action", metavar="ACTION")
    redrive = letters_actions.add_parser(
        "redrive", help="re-send the FHIR messages the EPR refused, with the same X-Request-Id",
        description="Re-sends the dead letters `podlink deliver` wrote (messages the EPR "
        "refused) to PODLINK_EPR_URL, oldest first, each with its original X-Request-Id so the "
        "EPR can de-duplicate; publishes a delivery outcome event for each.")
    redrive.add_argument("--since", type=_time, metavar="TIME", dest="redrive_since",
                         help="only dead letters written at or after TIME (ISO 8601 with a zone)")
    redrive.add_argument("--referral", metavar="ID", help="only this referral's messages")
    redrive.add_argument("--dry-run", action="store_true", help="list what would be re-sent; send nothing")
    replay = commands.add_parser(
        "replay", help="move the workers' committed input offsets back so they re-read records",
        description="Moves the committed offsets of consumer group PODLINK_GROUP_ID on the input "
        "topics back to an offset, a time, or the earliest record; never forward. Refuses while "
        "a worker of the group is running. Re-read records re-send their FHIR messages and "
        "outcome events with the same ids; no alert is raised twice. See docs/operations.md.")
    to = replay.add_mutually_exclusive_group(required=True)
    to.add_argument("--to-offset", type=int, metavar="N", help="re-read from offset N of each chosen partition")
    to.add_argument("--to-datetime", type=_time, metavar="TIME",
                    help="re-read from the first record written at or after TIME (ISO 8601 with a zone)")
    to.add_argument("--to-earliest", action="store_true", help="re-read from the earliest record kept")
    replay.add_argument("--topic", choices=INPUT_TOPICS, help="one input topic (default: both)")
    replay.add_argument("--partition", type=int, metavar="P", help="one partition number (default: all)")
    replay.add_argument("--dry-run", action="store_true",
                        help="show committed and new offsets and the records to re-read; change nothing")


def _add_report(commands: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    from podlink.services.report.command import FORMATS
    report = commands.add_parser(
        "report", help="the service evaluation (Kent study tables, POD principles) from outcome events",
        description="Reads pod.outcomes.v1 from the beginning (no consumer group: reading changes "
        "nothing) or a file of outcome events, and writes the service evaluation: referrals, time to "
        "first meeting, network meeting attendance, adherence, outcome measures, governance and "
        "fidelity to the POD principles. Outcome events carry no patient identifiers. Exit status: 0 "
        "written, 1 nothing to report, 2 the input could not be read. See docs/report.md.")
    report.add_argument("--from-file", metavar="FILE",
                        help="read outcome events from FILE, one JSON object a line (- for standard "
                        "input), instead of the topic")
    report.add_argument("--bootstrap", metavar="SERVERS",
                        help="brokers to read from (default: PODLINK_KAFKA_BOOTSTRAP)")
    report.add_argument("--format", choices=FORMATS, default="json",
                        help="json (default), html (one self-contained file) or csv (one file per table)")
    report.add_argument("--out", type=Path, metavar="PATH",
                        help="the file to write (json: default standard output; html: required), or "
                        "the folder for csv")
    report.add_argument("--team", metavar="CODE", help="only referrals registered to this team")
    report.add_argument("--since", type=_time, metavar="TIME",
                        help="only referrals received at or after TIME (ISO 8601 with a zone)")
    report.add_argument("--until", type=_time, metavar="TIME",
                        help="only referrals received before TIME (ISO 8601 with a zone)")


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        settings = Settings()
    except ValidationError as exc:
        print(f"podlink: invalid setting: {describe_invalid(exc)}", file=sys.stderr)
        return 2
    logs.configure(settings.log_format)
    if args.command == "worker":
        from podlink.services.runner import run_worker
        return run_worker(settings)
    if args.command == "notify":
        from podlink.services.notify.service import run_notify
        return run_notify(settings)
    if args.command == "run":
        from podlink.services.runner import run_embedded
        return run_embedded(settings, args.sample_interval)
    if args.command == "tail":
        from podlink.services.tail import run_tail
        return run_tail(settings, args.topic, args.follow, args.limit, args.json)
    if args.command == "dead-letters" and args.letters_action == "redrive":
        from podlink.services.dead_letters import run_redrive
        return run_redrive(settings, args.redrive_since, args.referral, args.dry_run)
    if args.command == "deliver":
        from podlink.services.deliver.command import run_deliver
        return run_deliver(settings)
    if args.command == "intake":
        from podlink.services.intake.command import run_intake
        return run_intake(settings)
    if args.command == "dead-letters":
        from podlink.services.dead_letters import run_dead_letters
        return run_dead_letters(settings, args.since, args.limit, args.show_values, args.json)
    if args.command == "replay":
        from podlink.services.replay import Target, run_replay
        target = (Target("offset", offset=args.to_offset) if args.to_offset is not None
                  else Target("datetime", at=args.to_datetime) if args.to_datetime is not None
                  else Target("earliest"))
        return run_replay(settings, target, args.topic, args.partition, args.dry_run)
    if args.command == "report":
        from podlink.services.report.collect import Scope
        from podlink.services.report.command import run_report
        if args.bootstrap:
            settings = settings.model_copy(update={"kafka_bootstrap": args.bootstrap})
        return run_report(settings, args.from_file, args.format, args.out,
                          Scope(args.team, args.since, args.until))
    return _bench(settings, args)


def _bench(settings: Settings, args: argparse.Namespace) -> int:
    # The benchmarks are development tools, outside the podlink wheel (devtools/).
    try:
        from podlink_devtools.bench import run_bench
        from podlink_devtools.open_episodes_bench import run_open_episodes_bench
        from podlink_devtools.recovery_bench import run_recovery_bench
    except ImportError:
        print("podlink: bench is a development tool: from a source checkout, run scripts/bootstrap "
              "(it installs devtools/ beside podlink), then .venv/bin/podlink bench", file=sys.stderr)
        return 2
    if args.recovery is not None:
        return run_recovery_bench(settings, args.recovery, args.bootstrap)
    if args.open_episodes is not None:
        return run_open_episodes_bench(settings, args.open_episodes, args.bootstrap)
    return run_bench(settings, args.pathways, args.broker, args.bootstrap)


if __name__ == "__main__":
    sys.exit(main())
