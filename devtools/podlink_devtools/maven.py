"""Jars from Maven Central, resolved once into a cache: what the tests run on the JVM needs.

A pom beside the tool pins the jars (Apache Kafka's broker, the CloudEvents Java SDK), and
`mvn dependency:copy-dependencies` copies them into a directory under ~/.cache/podlink.
"""
from __future__ import annotations

import fcntl
import hashlib
import os
import shutil
import subprocess
from pathlib import Path

_MARKER = ".podlink-complete"


def cache_dir(env: str, name: str) -> Path:
    """Where a set of jars is kept: the directory in the environment variable `env` when set,
    else ~/.cache/podlink/<name>/libs."""
    override = os.environ.get(env)
    if override:
        return Path(override).expanduser()
    return Path.home() / ".cache" / "podlink" / name / "libs"


def resolve_jars(pom: Path, libs: Path, what: str) -> Path:
    """`libs`, holding the jars `pom` lists, downloading them with Maven on first use.

    The marker file records the pom's digest and is written only after Maven succeeds, so an
    interrupted download, or one made for a different pom, is discarded and redone. `what`
    names the jars in errors.
    """
    if not pom.is_file():
        raise FileNotFoundError(f"{pom} not found; resolving {what} needs a source checkout")
    digest = hashlib.sha256(pom.read_bytes()).hexdigest()
    marker = libs / _MARKER
    libs.parent.mkdir(parents=True, exist_ok=True)
    # Parallel test workers may all resolve at once; only one should run Maven.
    with open(libs.parent / f".{libs.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if marker.is_file() and marker.read_text().strip() == digest:
            return libs
        mvn = shutil.which("mvn")
        if mvn is None:
            raise RuntimeError(f"Maven ('mvn') is not on PATH; it is needed once to fetch {what}")
        shutil.rmtree(libs, ignore_errors=True)
        result = subprocess.run(
            [mvn, "-q", "-B", "-f", str(pom), "dependency:copy-dependencies",
             f"-DoutputDirectory={libs}"],
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
        )
        if result.returncode != 0:
            output = (result.stdout + result.stderr).strip().splitlines()
            raise RuntimeError(
                f"Maven could not fetch {what} (exit {result.returncode}):\n" + "\n".join(output[-40:]))
        marker.write_text(digest + "\n")
    return libs


def java_executable() -> str:
    """The `java` of JAVA_HOME, else the one on PATH."""
    java_home = os.environ.get("JAVA_HOME")
    if java_home and (Path(java_home) / "bin" / "java").is_file():
        return str(Path(java_home) / "bin" / "java")
    found = shutil.which("java")
    if found is None:
        raise RuntimeError("no 'java' on PATH and no JAVA_HOME; podlink's JVM tools need Java 17")
    return found
