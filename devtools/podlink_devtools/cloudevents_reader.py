"""Read a topic with the official CloudEvents Java SDK: a consumer podlink does not use to write.

The tests check podlink's CloudEvents with the strictest reader at hand, the SDK's Kafka
deserializer (`io.cloudevents:cloudevents-kafka`), run from `cloudevents-reader/Reader.java` by
Java's single-file source launcher, so there is no build step. Its jars come from Maven Central,
pinned by `cloudevents-reader/pom.xml` and cached like Apache Kafka's.

    python -m podlink_devtools.cloudevents_reader resolve   # pre-fetch the jars (scripts/test does)
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from podlink_devtools.maven import cache_dir, java_executable, resolve_jars

SDK_VERSION = "4.0.1"  # keep in step with cloudevents.version in the pom
CACHE_ENV = "PODLINK_CLOUDEVENTS_JARS_CACHE"
READER_DIR = Path(__file__).resolve().parent / "cloudevents-reader"


def resolve_reader_jars(libs: Path | None = None) -> Path:
    """Directory holding the SDK's jars and the Kafka client's, fetched with Maven on first use."""
    return resolve_jars(READER_DIR / "pom.xml", libs or cache_dir(CACHE_ENV, f"cloudevents-{SDK_VERSION}"),
                        f"the CloudEvents Java SDK {SDK_VERSION} jars")


def read_with_java_sdk(bootstrap: str, topic: str, timeout: float = 120.0) -> list[dict[str, Any]]:
    """Every record on `topic` when called, as the Java SDK read it.

    One dict per record: `partition`, `offset`, `ok`, and `id`, `type`, `subject` when the SDK
    parsed it, or `error` (the SDK's message) when it refused it.
    """
    jars = resolve_reader_jars()
    result = subprocess.run(
        [java_executable(), "-XX:TieredStopAtLevel=1", "-cp", f"{jars}{os.sep}*",
         str(READER_DIR / "Reader.java"), bootstrap, topic],
        stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=timeout,
    )
    if result.returncode != 0:
        raise RuntimeError(f"Reader.java failed (exit {result.returncode}):\n{result.stderr[-4000:]}")
    return [json.loads(line) for line in result.stdout.splitlines()]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m podlink_devtools.cloudevents_reader")
    commands = parser.add_subparsers(dest="command", required=True)
    resolve = commands.add_parser("resolve", help="download the SDK's jars into the cache")
    resolve.add_argument("--cache-dir", type=Path, help=f"default: ${CACHE_ENV} or ~/.cache/podlink/...")
    read = commands.add_parser("read", help="print each record of TOPIC as the Java SDK reads it")
    read.add_argument("bootstrap")
    read.add_argument("topic")
    args = parser.parse_args(argv)
    if args.command == "resolve":
        print(resolve_reader_jars(args.cache_dir))
    else:
        for line in read_with_java_sdk(args.bootstrap, args.topic):
            print(json.dumps(line))
    return 0


if __name__ == "__main__":
    sys.exit(main())
