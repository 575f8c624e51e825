"""Validate FHIR resources with the HAPI FHIR validator: a validator podlink does not build with.

The tests check podlink's FHIR messages against base R4, the UK Core profiles they claim and
podlink's own published CodeSystems and extensions with the HAPI FHIR validator
(`ca.uhn.hapi.fhir:hapi-fhir-validation`), run from `fhir-validator/Validator.java` by Java's
single-file source launcher (no build step), one JVM for any number of resources. Its jars come
from Maven Central, pinned by `fhir-validator/pom.xml` and cached like Apache Kafka's. The UK
Core resources it loads are vendored in `fhir-validator/ukcore/` (see the README there).

    python -m podlink_devtools.fhir_validator resolve          # pre-fetch the jars (scripts/test does)
    python -m podlink_devtools.fhir_validator validate FILE... # print each file's issues
    python -m podlink_devtools.fhir_validator vendor-ukcore SOURCE_DIR  # refresh ukcore/
"""
from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from podlink_devtools.maven import cache_dir, java_executable, resolve_jars

HAPI_VERSION = "8.8.0"  # keep in step with hapi.version in the pom
CACHE_ENV = "PODLINK_FHIR_VALIDATOR_JARS_CACHE"
VALIDATOR_DIR = Path(__file__).resolve().parent / "fhir-validator"
UKCORE_DIR = VALIDATOR_DIR / "ukcore"

# The UK Core profiles podlink's messages claim; vendor-ukcore copies these and all they use.
CLAIMED_PROFILES = tuple(
    f"https://fhir.hl7.org.uk/StructureDefinition/UKCore-{name}"
    for name in ("Bundle", "MessageHeader", "Patient", "ServiceRequest", "Encounter", "CarePlan",
                 "Observation", "Practitioner", "RelatedPerson", "Location", "Task")
)
# Any canonical the source set defines counts, whatever its host: UK Core defines some under
# hl7.org (e.g. the cross-version extension-Patient.fetalStatus).
_CANONICAL = re.compile(r'value="(https?://[^"|]+)')
_URL = re.compile(r'<url value="([^"]+)"')


@dataclass(frozen=True)
class Issue:
    severity: str  # fatal, error, warning, information
    location: str
    message_id: str
    message: str


def resolve_validator_jars(libs: Path | None = None) -> Path:
    """Directory holding the HAPI validator's jars, fetched with Maven on first use."""
    return resolve_jars(VALIDATOR_DIR / "pom.xml", libs or cache_dir(CACHE_ENV, f"hapi-fhir-{HAPI_VERSION}"),
                        f"the HAPI FHIR validator {HAPI_VERSION} jars")


def validate(resources: Iterable[dict[str, Any]], conformance: Iterable[dict[str, Any]] = (),
             timeout: float = 600.0) -> list[list[Issue]]:
    """The issues the HAPI validator finds in each resource, in order, in one JVM.

    The vendored UK Core resources are loaded, and `conformance` (CodeSystems, ValueSets and
    StructureDefinitions, e.g. podlink's published ones) with them.
    """
    jars = resolve_validator_jars()
    lines = [json.dumps(resource, ensure_ascii=False) for resource in resources]
    with tempfile.TemporaryDirectory(prefix="podlink-fhir-conformance-") as extra:
        for number, resource in enumerate(conformance):
            name = f"{number:03d}-{resource['resourceType']}-{resource['id']}.json"
            (Path(extra) / name).write_text(json.dumps(resource), encoding="utf-8")
        result = subprocess.run(
            [java_executable(), "-XX:TieredStopAtLevel=1", "-cp", f"{jars}/*",
             str(VALIDATOR_DIR / "Validator.java"), str(UKCORE_DIR), extra],
            input="\n".join(lines) + "\n", capture_output=True, text=True, encoding="utf-8", timeout=timeout,
        )
    if result.returncode != 0:
        raise RuntimeError(f"Validator.java failed (exit {result.returncode}):\n{result.stderr[-4000:]}")
    answers = [json.loads(line) for line in result.stdout.splitlines()]
    if len(answers) != len(lines):
        raise RuntimeError(f"Validator.java answered {len(answers)} of {len(lines)} resources:\n"
                           f"{result.stderr[-4000:]}")
    return [
        [Issue(i["severity"], i["location"], i["messageId"] or "", i["message"]) for i in answer["issues"]]
        for answer in answers
    ]


def vendor_ukcore(source: Path, target: Path = UKCORE_DIR) -> list[Path]:
    """Copy from `source` (a UK Core checkout's codesystems/, structuredefinitions/, valuesets/)
    the claimed profiles and every UK Core resource they use, transitively, into `target`."""
    by_url: dict[str, Path] = {}
    for path in sorted(source.rglob("*.xml")):
        found = _URL.search(path.read_text(encoding="utf-8"))
        if found:
            by_url[found.group(1)] = path
    wanted: set[str] = set()
    waiting = list(CLAIMED_PROFILES)
    while waiting:
        url = waiting.pop()
        if url in wanted or url not in by_url:
            continue
        wanted.add(url)
        waiting.extend(_CANONICAL.findall(by_url[url].read_text(encoding="utf-8")))
    copied = []
    for url in sorted(wanted):
        path = by_url[url]
        destination = target / path.relative_to(source)
        destination.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, destination)
        copied.append(destination)
    return copied


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m podlink_devtools.fhir_validator")
    commands = parser.add_subparsers(dest="command", required=True)
    resolve = commands.add_parser("resolve", help="download the validator's jars into the cache")
    resolve.add_argument("--cache-dir", type=Path, help=f"default: ${CACHE_ENV} or ~/.cache/podlink/...")
    check = commands.add_parser("validate", help="print the issues of each FHIR JSON file")
    check.add_argument("files", nargs="+", type=Path)
    check.add_argument("--base-url", help="also load podlink's published resources for this base URL")
    vendor = commands.add_parser("vendor-ukcore", help="copy the UK Core resources podlink uses into ukcore/")
    vendor.add_argument("source", type=Path)
    args = parser.parse_args(argv)
    if args.command == "resolve":
        print(resolve_validator_jars(args.cache_dir))
    elif args.command == "vendor-ukcore":
        print(f"{len(vendor_ukcore(args.source))} files copied into {UKCORE_DIR}")
    else:
        conformance: list[dict[str, Any]] = []
        if args.base_url:
            from podlink.fhir_mappings.conformance import published_resources
            conformance = list(published_resources(args.base_url).values())
        resources = [json.loads(path.read_text(encoding="utf-8")) for path in args.files]
        errors = 0
        for path, issues in zip(args.files, validate(resources, conformance)):
            for issue in issues:
                print(f"{path}: {issue.severity}: {issue.location}: {issue.message}")
                errors += issue.severity in ("error", "fatal")
        return 1 if errors else 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
