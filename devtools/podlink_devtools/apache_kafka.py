"""A real single-node Apache Kafka (KRaft) broker for tests, run from Maven Central jars.

Tansu speaks the Kafka protocol but is not Kafka; running the same tests against the reference
broker catches behaviour we would otherwise only meet in production. Docker is not assumed, so
the broker runs as a plain JVM process from jars that `kafka-broker/pom.xml` beside this module pins.

    python -m podlink_devtools.apache_kafka resolve   # pre-fetch the jars (CI cache step)
"""
from __future__ import annotations

import argparse
import base64
import os
import signal
import subprocess
import sys
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Self

from podlink_devtools.maven import cache_dir, java_executable, resolve_jars

from podlink.services.embedded_broker import (
    HOST,
    BrokerProcess,
    BrokerStartError,
    ensure_port_free,
    free_port,
    log_tail,
    spawn,
    wait_until_ready,
)

KAFKA_VERSION = "3.9.1"
CACHE_ENV = "PODLINK_KAFKA_JARS_CACHE"
POM = Path(__file__).resolve().parent / "kafka-broker" / "pom.xml"

# Small heap and a client-style JIT: a test broker carries little load, and these roughly
# halve JVM start-up and memory compared with Kafka's own server defaults.
JVM_OPTS = [
    "-Xms128m",
    "-Xmx512m",
    "-XX:+UseSerialGC",
    "-XX:TieredStopAtLevel=1",
    "-XX:-UsePerfData",
    "-Djava.awt.headless=true",
]


def resolve_kafka_jars(libs: Path | None = None) -> Path:
    """Directory holding the broker's jars, downloading them with Maven on first use."""
    return resolve_jars(POM, libs or cache_dir(CACHE_ENV, f"kafka-{KAFKA_VERSION}"),
                        f"the Kafka {KAFKA_VERSION} jars")


def _cluster_id() -> str:
    # Same format as `kafka-storage.sh random-uuid` (URL-safe base64 of 16 random bytes), made
    # here to save a JVM start. Kafka refuses ids starting with "-" as they read like flags.
    while True:
        cluster_id = base64.urlsafe_b64encode(os.urandom(16)).rstrip(b"=").decode()
        if not cluster_id.startswith("-"):
            return cluster_id


SECURED_PROTOCOLS = ("SASL_PLAINTEXT", "SASL_SSL", "SSL")
SCRAM = "SCRAM-SHA-512"


@dataclass(frozen=True)
class SecuredListeners:
    """Client listeners that demand credentials, served beside the plain one.

    One listener per protocol in SECURED_PROTOCOLS, each named after its protocol: SASL ones
    take PLAIN and SCRAM-SHA-512 logins of `users`; SSL requires a client certificate signed
    by `ca_file`. The controller and inter-broker listener stay PLAINTEXT.
    """

    ca_file: Path  # PEM: trusted for client certificates
    cert_file: Path  # PEM: the broker's certificate chain, valid for 127.0.0.1
    key_file: Path  # PEM: its private key, unencrypted PKCS#8
    users: Mapping[str, str]  # SASL user name -> password (no quotes or backslashes)


def _secured_properties(secured: SecuredListeners, keystore: Path) -> dict[str, str]:
    plain_users = " ".join(f'user_{name}="{password}"' for name, password in secured.users.items())
    props = {
        "sasl.enabled.mechanisms": f"PLAIN,{SCRAM}",
        # PEM stores need no keytool; the keystore file holds the key and then the chain.
        "ssl.keystore.type": "PEM",
        "ssl.keystore.location": str(keystore),
        "ssl.truststore.type": "PEM",
        "ssl.truststore.location": str(secured.ca_file),
        "listener.name.ssl.ssl.client.auth": "required",
    }
    for listener in ("sasl_plaintext", "sasl_ssl"):
        props[f"listener.name.{listener}.plain.sasl.jaas.config"] = (
            f"org.apache.kafka.common.security.plain.PlainLoginModule required {plain_users};")
        # SCRAM users live in the cluster metadata (added at format time); the module only
        # has to be named.
        props[f"listener.name.{listener}.{SCRAM.lower()}.sasl.jaas.config"] = (
            "org.apache.kafka.common.security.scram.ScramLoginModule required;")
    return props


def _server_properties(
    port: int, controller_port: int, data_dir: Path,
    secured_ports: Mapping[str, int] | None = None, secured: dict[str, str] | None = None,
) -> str:
    clients = {"PLAINTEXT": port, **(secured_ports or {})}
    props = {
        "process.roles": "broker,controller",
        "node.id": "1",
        "controller.quorum.voters": f"1@{HOST}:{controller_port}",
        "listeners": ",".join(f"{name}://{HOST}:{p}" for name, p in
                              {**clients, "CONTROLLER": controller_port}.items()),
        "advertised.listeners": ",".join(f"{name}://{HOST}:{p}" for name, p in clients.items()),
        "controller.listener.names": "CONTROLLER",
        "listener.security.protocol.map": ",".join(f"{name}:{name}" for name in clients)
        + ",CONTROLLER:PLAINTEXT",
        "inter.broker.listener.name": "PLAINTEXT",
        "log.dirs": str(data_dir),
        "num.partitions": "1",
        # One node: internal topics cannot have more replicas than brokers.
        "offsets.topic.replication.factor": "1",
        "transaction.state.log.replication.factor": "1",
        "transaction.state.log.min.isr": "1",
        # The defaults (50 partitions each) make the first consumer group or transaction wait
        # for dozens of partitions to be created; tests only ever need one.
        "offsets.topic.num.partitions": "1",
        "transaction.state.log.num.partitions": "1",
        # Otherwise every first join of a consumer group waits 3 s for more members.
        "group.initial.rebalance.delay.ms": "0",
        **(secured or {}),
    }
    return "".join(f"{key}={value}\n" for key, value in props.items())


def _log4j_properties(log_path: Path) -> str:
    # Appends to the same file the JVM's stdout/stderr go to, so one file holds both Kafka's
    # own log and anything the JVM prints before logging is up.
    return (
        "log4j.rootLogger=INFO, file\n"
        "log4j.appender.file=org.apache.log4j.FileAppender\n"
        f"log4j.appender.file.File={log_path}\n"
        "log4j.appender.file.Append=true\n"
        "log4j.appender.file.layout=org.apache.log4j.PatternLayout\n"
        "log4j.appender.file.layout.ConversionPattern=[%d] %p %m (%c)%n\n"
    )


class ApacheKafkaBroker(BrokerProcess):
    """A fresh single-node KRaft broker on 127.0.0.1 with its data in a temp dir.

    Use as a context manager, or call `start()` and `stop()`. `stop()` deletes the temp dir;
    when start-up fails the dir is kept so the log named in the error can be read.
    With `secured`, `bootstraps` maps each of SECURED_PROTOCOLS (and PLAINTEXT) to its address.
    `kill()` then `restart()` is a crash and recovery: same ports, same data, same cluster.
    """

    def __init__(
        self,
        *,
        jars_dir: Path | None = None,
        startup_timeout: float = 60.0,
        stop_timeout: float = 15.0,
        secured: SecuredListeners | None = None,
    ) -> None:
        self._jars_dir = jars_dir
        self._startup_timeout = startup_timeout
        self._stop_timeout = stop_timeout
        self._secured = secured
        self.port, self.controller_port, *secured_ports = _distinct_free_ports(
            2 + (len(SECURED_PROTOCOLS) if secured else 0))
        self._secured_ports = dict(zip(SECURED_PROTOCOLS, secured_ports))
        self.bootstrap = f"{HOST}:{self.port}"
        self.bootstraps = {"PLAINTEXT": self.bootstrap,
                           **{name: f"{HOST}:{p}" for name, p in self._secured_ports.items()}}
        self._tmp_dir: Path | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        self._command: list[str] = []
        self.log_path: Path | None = None

    def start(self) -> Self:
        if self._proc is not None:
            raise RuntimeError("broker already started")
        jars = self._jars_dir if self._jars_dir is not None else resolve_kafka_jars()
        classpath = f"{jars}{os.sep}*"
        java = java_executable()
        for port in (self.port, self.controller_port, *self._secured_ports.values()):
            ensure_port_free(port)

        self._tmp_dir = tmp = Path(tempfile.mkdtemp(prefix="podlink-kafka-"))
        self.log_path = tmp / "broker.log"
        server_props = tmp / "server.properties"
        secured = None
        if self._secured is not None:
            keystore = tmp / "broker-keystore.pem"
            keystore.write_text(self._secured.key_file.read_text() + self._secured.cert_file.read_text())
            secured = _secured_properties(self._secured, keystore)
        server_props.write_text(_server_properties(self.port, self.controller_port, tmp / "data",
                                                   self._secured_ports, secured))
        log4j_props = tmp / "log4j.properties"
        log4j_props.write_text(_log4j_properties(self.log_path))
        jvm = [java, *JVM_OPTS, f"-Dlog4j.configuration=file:{log4j_props}", "-cp", classpath]

        self._command = [*jvm, "kafka.Kafka", str(server_props)]
        try:
            self._format_storage(jvm, server_props)
            self._run()
        except BaseException:
            self._tmp_dir = None  # keep it: the error names the log file
            self.stop()
            raise
        return self

    def kill(self) -> None:
        """SIGKILL the broker, as a crash or power loss would; its data stays for `restart()`."""
        if self._proc is None:
            raise RuntimeError("broker not running")
        os.killpg(self._proc.pid, signal.SIGKILL)
        self._proc.wait()
        self._proc = None

    def restart(self) -> Self:
        """Start the killed broker again on the same ports with the data it had."""
        if self._proc is not None or not self._command:
            raise RuntimeError("restart() needs a broker started and then killed")
        for port in (self.port, self.controller_port, *self._secured_ports.values()):
            ensure_port_free(port)
        self._run()
        return self

    def _run(self) -> None:
        assert self.log_path is not None
        self._proc = spawn(self._command, self.log_path)
        wait_until_ready(
            f"Apache Kafka {KAFKA_VERSION}", self._proc, self.bootstrap, self.log_path,
            self._startup_timeout,
        )

    def _format_storage(self, jvm: list[str], server_props: Path) -> None:
        assert self.log_path is not None
        scram = [arg for name, password in (self._secured.users.items() if self._secured else ())
                 for arg in ("--add-scram", f"{SCRAM}=[name={name},password={password}]")]
        with self.log_path.open("ab") as log:
            result = subprocess.run(
                [*jvm, "kafka.tools.StorageTool", "format", "-t", _cluster_id(), "-c", str(server_props),
                 *scram],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                timeout=self._startup_timeout,
            )
        if result.returncode != 0:
            raise BrokerStartError(
                f"formatting the KRaft storage failed (exit {result.returncode}); "
                f"last lines of {self.log_path}:\n{log_tail(self.log_path)}"
            )


def _distinct_free_ports(count: int) -> list[int]:
    ports: list[int] = []
    while len(ports) < count:
        if (port := free_port()) not in ports:
            ports.append(port)
    return ports


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m podlink_devtools.apache_kafka")
    commands = parser.add_subparsers(dest="command", required=True)
    resolve = commands.add_parser("resolve", help="download the broker jars into the cache")
    resolve.add_argument("--cache-dir", type=Path, help=f"default: ${CACHE_ENV} or ~/.cache/podlink/...")
    args = parser.parse_args(argv)
    print(resolve_kafka_jars(args.cache_dir))
    return 0


if __name__ == "__main__":
    sys.exit(main())
