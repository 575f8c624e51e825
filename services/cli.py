"""The `podlink` command: `run` (everything on an embedded broker), `worker`, `bench`."""
from __future__ import annotations

import argparse
import sys

from pydantic import ValidationError

from streams.settings import Settings

from . import logs


def _settings_help() -> str:
    lines = ["settings (environment variables):"]
    for name, field in Settings.model_fields.items():
        default = field.default if field.default is not None else "unset"
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
    bench = commands.add_parser(
        "bench", help="measure end-to-end throughput and latency against a ceiling",
        description="Pushes synthetic referral pathways through a broker (embedded unless "
        "--bootstrap is given) and reports events/s, p50/p99 latency to the FHIR message, and "
        "the plain-aiokafka ceiling measured in the same run. With --recovery, measures "
        "instead what a restart costs a worker holding that many open episodes.")
    bench.add_argument("--pathways", type=int, default=2000, help="referral pathways (default 2000)")
    bench.add_argument("--recovery", type=int, default=None, metavar="EPISODES",
                       help="time a restart with EPISODES open episodes, with the RocksDB data "
                       "kept and lost, and one deadline scan (on Apache Kafka unless --bootstrap)")
    bench.add_argument("--bootstrap", default=None, help="broker to use instead of an embedded one")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        settings = Settings()
    except ValidationError as exc:
        print(f"podlink: invalid setting: {exc}", file=sys.stderr)
        return 2
    logs.configure(settings.log_format)
    if args.command == "worker":
        from .runner import run_worker
        return run_worker(settings)
    if args.command == "run":
        from .runner import run_embedded
        return run_embedded(settings, args.sample_interval)
    if args.recovery is not None:
        from .recovery_bench import run_recovery_bench
        return run_recovery_bench(settings, args.recovery, args.bootstrap)
    from .bench import run_bench
    return run_bench(settings, args.pathways, args.bootstrap)


if __name__ == "__main__":
    sys.exit(main())
