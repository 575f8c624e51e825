"""deploy/: the container image, the Compose file and the Kubernetes manifests.

Linted with tools that need no Docker engine and no cluster (hadolint, the Compose
Specification schema, Kubernetes' OpenAPI-derived schemas, yamllint), then checked for what the
files must agree on with each other and with podlink itself: setting names, ports, the data
directory, the user id, probe paths.
"""
from __future__ import annotations

import asyncio
import http.server
import json
import os
import re
import socket
import subprocess
import sys
import sysconfig
import threading
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import kubernetes_validate
import pytest
import yaml
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from dockerfile_parse import DockerfileParser
from dockerfile_parse.util import WordSplitter

from podlink.fhir_mappings.conformance import published_resources
from podlink.fhir_mappings.inbound import Systems
from podlink.services.deliver.command import _metrics_server as deliver_metrics_server
from podlink.services.deliver.metrics import DeliverMetrics
from podlink.services.deliver.settings import DeliverSettings
from podlink.services.intake.app import Intake
from podlink.services.intake.app import build_app as build_intake_app
from podlink.services.intake.settings import IntakeSettings
from podlink.services.notify.rota import load_rota
from podlink.services.notify.service import web_app as notify_web_app
from podlink.services.notify.settings import NotifySettings
from podlink.streams.worker.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
K8S = DEPLOY / "k8s"
DOCKERFILE = DEPLOY / "Dockerfile"
COMPOSE = DEPLOY / "compose.yaml"
SECRET_TEMPLATE = K8S / "secret.example.yaml"
PLACEHOLDER = "REPLACE-ME"
# The oldest Kubernetes minor still commonly run, and the newest the schemas bundle.
KUBERNETES_VERSIONS = ("1.30.0", kubernetes_validate.latest_version())

SECRET_SETTINGS = {"PODLINK_KAFKA_SASL_USERNAME", "PODLINK_KAFKA_SASL_PASSWORD",
                   "PODLINK_KAFKA_SSL_KEY_PASSWORD"}


def _tool(name: str) -> str:
    """A console script installed with the test extra, next to this interpreter."""
    path = Path(sysconfig.get_path("scripts")) / name
    assert path.exists(), f"{name} is not installed: it comes with podlink's `test` extra"
    return str(path)


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, capture_output=True, text=True, timeout=120, check=False)


def _manifests() -> dict[str, dict[str, Any]]:
    """Every Kubernetes object under deploy/k8s, by kind/name; the Kustomization aside."""
    objects = {}
    for path in sorted(K8S.glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            if doc and doc["kind"] != "Kustomization":
                objects[f"{doc['kind']}/{doc['metadata']['name']}"] = doc
    return objects


WORKLOAD_KINDS = ("StatefulSet", "Deployment")


def _workloads() -> list[tuple[dict[str, Any], dict[str, Any]]]:
    """Each podlink workload in deploy/k8s with its one container."""
    found = []
    for obj in _manifests().values():
        if obj["kind"] in WORKLOAD_KINDS:
            (container,) = obj["spec"]["template"]["spec"]["containers"]
            found.append((obj, container))
    return found


def _workload(command: str) -> tuple[dict[str, Any], dict[str, Any]]:
    (found,) = [(obj, c) for obj, c in _workloads() if c["args"] == [command]]
    return found


def _statefulset() -> dict[str, Any]:
    return yaml.safe_load((K8S / "statefulset.yaml").read_text())


def _container() -> dict[str, Any]:
    (container,) = _statefulset()["spec"]["template"]["spec"]["containers"]
    return container


def _container_env() -> dict[str, str]:
    return {e["name"]: e["value"] for e in _container()["env"]}


def _compose() -> dict[str, Any]:
    return yaml.safe_load(COMPOSE.read_text())


def _compose_podlink() -> dict[str, dict[str, Any]]:
    """The services built from deploy/Dockerfile."""
    return {name: svc for name, svc in _compose()["services"].items()
            if svc.get("build", {}).get("dockerfile") == "deploy/Dockerfile"}


def _compose_command(svc: dict[str, Any]) -> list[str]:
    """What `podlink` runs in a Compose service: its command, else the image's CMD."""
    return svc.get("command") or json.loads(_instruction(_dockerfile(), "CMD"))


def _compose_workers() -> dict[str, dict[str, Any]]:
    """The services built from deploy/Dockerfile that run `podlink worker`."""
    return {name: svc for name, svc in _compose_podlink().items() if _compose_command(svc) == ["worker"]}


def _dockerfile() -> DockerfileParser:
    return DockerfileParser(str(DOCKERFILE))


def _final_stage(parser: DockerfileParser) -> list[dict[str, Any]]:
    froms = [i for i, ins in enumerate(parser.structure) if ins["instruction"] == "FROM"]
    return parser.structure[froms[-1]:]


def _instruction(parser: DockerfileParser, name: str) -> str:
    """The value of the last `name` instruction of the final stage."""
    values = [ins["value"] for ins in _final_stage(parser) if ins["instruction"] == name]
    assert values, f"the image's final stage has no {name}"
    return values[-1]


def _image_uid() -> int:
    parser = _dockerfile()
    user = WordSplitter(_instruction(parser, "USER"), args=parser.args).dequote()
    return int(user.split(":")[0])


def _healthcheck_command() -> list[str]:
    value = _instruction(_dockerfile(), "HEALTHCHECK")
    return json.loads(value[value.index("CMD") + len("CMD"):])


def _project_version() -> str:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]


# --- the linters -------------------------------------------------------------------------------

def test_the_dockerfile_passes_hadolint() -> None:
    result = _run(_tool("hadolint"), "--no-color", str(DOCKERFILE))
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_compose_file_follows_the_compose_specification() -> None:
    result = _run(_tool("check-jsonschema"), "--builtin-schema", "vendor.compose-spec", str(COMPOSE))
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
def test_the_kubernetes_manifests_follow_the_api_schemas(version: str) -> None:
    """Strict: an unknown field fails too. An unknown kind raises rather than passing unchecked."""
    failures = []
    for name, obj in _manifests().items():
        try:
            kubernetes_validate.validate(obj, version, strict=True)
        except kubernetes_validate.ValidationError as exc:
            failures.append(f"{name}: {'.'.join(map(str, exc.path))}: {exc.message}")
    assert not failures, "\n".join(failures)


def test_the_yaml_files_pass_yamllint() -> None:
    """Catches what a schema cannot see, such as a key given twice (the last silently wins)."""
    result = _run(_tool("yamllint"), "-f", "parsable", "-c", str(DEPLOY / ".yamllint"), str(DEPLOY))
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_kustomization_applies_every_manifest_but_the_secret_template() -> None:
    kustomization = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    manifests = {p.name for p in K8S.glob("*.yaml")} - {"kustomization.yaml", SECRET_TEMPLATE.name}
    assert set(kustomization["resources"]) == manifests
    (image,) = kustomization["images"]
    assert _container()["image"].split(":")[0] == image["name"]


# --- the image ---------------------------------------------------------------------------------

def test_the_image_runs_a_worker_as_a_fixed_non_root_user_on_slim_python() -> None:
    parser = _dockerfile()
    assert parser.baseimage == "python:3.11-slim"
    assert parser.is_multistage, "build in one stage, copy only the virtualenv to the final one"
    assert _image_uid() > 0
    assert json.loads(_instruction(parser, "ENTRYPOINT")) == ["podlink"]
    assert json.loads(_instruction(parser, "CMD")) == ["worker"]
    assert parser.envs["PODLINK_LOG_FORMAT"] == "json"
    assert json.loads(_instruction(parser, "VOLUME")) == [parser.envs["PODLINK_DATA_DIR"]]
    assert _instruction(parser, "EXPOSE") == parser.envs["PODLINK_WEB_PORT"]


class _Health(http.server.BaseHTTPRequestHandler):
    status = 200

    def do_GET(self) -> None:  # noqa: N802 - the standard library's name
        self.send_response(self.status if self.path == "/healthz" else 404)
        self.end_headers()

    def log_message(self, *_: Any) -> None:
        """Quiet: the tests read status codes, and pytest's output stays clean."""


@pytest.fixture
def health_server() -> Iterator[tuple[http.server.HTTPServer, type[_Health]]]:
    handler = type("Health", (_Health,), {})
    server = http.server.HTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server, handler
    server.shutdown()
    server.server_close()


def _run_healthcheck(port: int) -> int:
    """The image's HEALTHCHECK command, with this interpreter standing in for the image's python."""
    command = _healthcheck_command()
    assert command[0] == "python", "slim has no curl: the check must use the image's python"
    env = {**os.environ, "PODLINK_WEB_PORT": str(port)}
    return subprocess.run([sys.executable, *command[1:]], env=env, capture_output=True,
                          timeout=30, check=False).returncode


def test_the_image_health_check_follows_healthz(health_server) -> None:
    server, handler = health_server
    port = server.server_address[1]
    assert _run_healthcheck(port) == 0
    handler.status = 503
    assert _run_healthcheck(port) != 0


def test_the_image_health_check_fails_when_nothing_listens() -> None:
    with http.server.HTTPServer(("127.0.0.1", 0), _Health) as closed:
        port = closed.server_address[1]
    assert _run_healthcheck(port) != 0


# --- Compose -----------------------------------------------------------------------------------

def test_compose_runs_kafka_in_kraft_mode_with_a_health_check() -> None:
    kafka = _compose()["services"]["kafka"]
    env = kafka["environment"]
    assert kafka["image"] == "apache/kafka:3.9.1"
    assert set(env["KAFKA_PROCESS_ROLES"].split(",")) == {"broker", "controller"}
    voters = env["KAFKA_CONTROLLER_QUORUM_VOTERS"]
    assert voters.startswith(f"{env['KAFKA_NODE_ID']}@")
    assert voters.rsplit(":", 1)[1] in env["KAFKA_LISTENERS"]
    assert int(env["KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR"]) == 1
    assert not any("ZOOKEEPER" in key for key in env)
    assert kafka["healthcheck"]["test"]


def test_compose_runs_two_workers_of_one_group_each_with_its_own_tables() -> None:
    workers = _compose_workers()
    assert len(workers) == 2
    kafka = _compose()["services"]["kafka"]["environment"]
    advertised = dict(listener.split("://") for listener in kafka["KAFKA_ADVERTISED_LISTENERS"].split(","))
    image_data_dir = _dockerfile().envs["PODLINK_DATA_DIR"]
    volumes, host_ports, groups = set(), set(), set()
    for svc in workers.values():
        env = svc["environment"]
        groups.add(env["PODLINK_GROUP_ID"])
        assert svc["depends_on"]["kafka"]["condition"] == "service_healthy"
        assert env["PODLINK_DATA_DIR"] == image_data_dir
        # Through a listener Kafka advertises under its name on the Compose network, so that
        # the addresses in metadata responses resolve inside the worker's container too.
        (listener,) = [name for name, address in advertised.items()
                       if address == env["PODLINK_KAFKA_BOOTSTRAP"]]
        kafka_host, kafka_port = advertised[listener].rsplit(":", 1)
        assert kafka_host == "kafka"
        assert f"{listener}://:{kafka_port}" in kafka["KAFKA_LISTENERS"].split(",")
        assert int(env["PODLINK_REPLICATION_FACTOR"]) == 1, "one broker holds one replica"
        (volume,) = [v for v in svc["volumes"] if v.endswith(f":{image_data_dir}")]
        volumes.add(volume.split(":")[0])
        (port,) = svc["ports"]
        host, container = port.rsplit(":", 1)
        assert container == env["PODLINK_WEB_PORT"] == _instruction(_dockerfile(), "EXPOSE")
        host_ports.add(host)
    assert len(groups) == 1
    assert len(volumes) == 2 and volumes <= set(_compose()["volumes"])
    assert len(host_ports) == 2


# --- Kubernetes --------------------------------------------------------------------------------

def test_workers_are_a_statefulset_with_a_volume_for_rocksdb_each() -> None:
    sts = _statefulset()
    (claim,) = sts["spec"]["volumeClaimTemplates"]
    mounts = {m["name"]: m["mountPath"] for m in _container()["volumeMounts"]}
    assert mounts[claim["metadata"]["name"]] == _container_env()["PODLINK_DATA_DIR"] \
        == _dockerfile().envs["PODLINK_DATA_DIR"]
    assert claim["spec"]["accessModes"] == ["ReadWriteOnce"]
    service = _manifests()[f"Service/{sts['spec']['serviceName']}"]
    assert service["spec"]["clusterIP"] == "None", "a StatefulSet's governing service is headless"


def test_the_probes_are_healthz_for_liveness_and_readyz_for_readiness() -> None:
    c = _container()
    ports = {p["name"]: p["containerPort"] for p in c["ports"]}
    probes = {kind: c[f"{kind}Probe"]["httpGet"] for kind in ("startup", "liveness", "readiness")}
    assert {kind: get["path"] for kind, get in probes.items()} == \
        {"startup": "/healthz", "liveness": "/healthz", "readiness": "/readyz"}
    web_port = int(_container_env()["PODLINK_WEB_PORT"])
    assert {ports[get["port"]] for get in probes.values()} == {web_port}
    startup = c["startupProbe"]
    # The worker checks topics and joins the group before it serves; allow minutes, not seconds.
    assert startup["periodSeconds"] * startup["failureThreshold"] >= 120


def test_every_port_agrees_with_the_image() -> None:
    image_port = int(_instruction(_dockerfile(), "EXPOSE"))
    template = _statefulset()["spec"]["template"]
    service = _manifests()["Service/podlink-workers"]
    assert int(_container_env()["PODLINK_WEB_PORT"]) == image_port
    assert [p["containerPort"] for p in _container()["ports"]] == [image_port]
    assert int(template["metadata"]["annotations"]["prometheus.io/port"]) == image_port
    assert template["metadata"]["annotations"]["prometheus.io/path"] == "/metrics"
    assert [p["port"] for p in service["spec"]["ports"]] == [image_port]


def test_the_worker_runs_locked_down_with_only_its_volumes_writable() -> None:
    pod = _statefulset()["spec"]["template"]["spec"]
    c = _container()
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] == pod["securityContext"]["fsGroup"] == _image_uid()
    assert c["securityContext"]["readOnlyRootFilesystem"] is True
    assert c["securityContext"]["allowPrivilegeEscalation"] is False
    assert c["securityContext"]["capabilities"]["drop"] == ["ALL"]
    mounts = {m["mountPath"] for m in c["volumeMounts"] if not m.get("readOnly")}
    assert {"/tmp", _container_env()["PODLINK_DATA_DIR"]} <= mounts
    for kind in ("requests", "limits"):
        assert set(c["resources"][kind]) == {"cpu", "memory"}


def test_selectors_match_the_worker_pods() -> None:
    objects = _manifests()
    labels = _statefulset()["spec"]["template"]["metadata"]["labels"]
    selectors = [objects["StatefulSet/podlink-worker"]["spec"]["selector"]["matchLabels"],
                 objects["PodDisruptionBudget/podlink-worker"]["spec"]["selector"]["matchLabels"],
                 objects["Service/podlink-workers"]["spec"]["selector"]]
    for selector in selectors:
        assert selector.items() <= labels.items()
    assert f"ServiceAccount/{_statefulset()['spec']['template']['spec']['serviceAccountName']}" in objects


def test_settings_come_from_the_configmap_and_secrets_from_the_secret() -> None:
    objects = _manifests()
    sources = {ref: src[ref]["name"] for src in _container()["envFrom"] for ref in src}
    configmap = objects[f"ConfigMap/{sources['configMapRef']}"]
    secret = objects[f"Secret/{sources['secretRef']}"]
    assert not SECRET_SETTINGS & set(configmap["data"])
    assert set(secret["stringData"]) <= SECRET_SETTINGS


def test_the_secret_template_holds_only_placeholders() -> None:
    secrets = list(yaml.safe_load_all(SECRET_TEMPLATE.read_text()))
    assert len(secrets) == 6
    for secret in secrets:
        assert secret["kind"] == "Secret"
        assert "data" not in secret
        assert set(secret["stringData"].values()) == {PLACEHOLDER}


def test_compose_and_kubernetes_use_the_image_of_this_version() -> None:
    expected = f"podlink:{_project_version()}"
    assert {svc["image"] for svc in _compose_podlink().values()} == {expected}
    assert {container["image"] for _, container in _workloads()} == {expected}
    kustomization = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    assert kustomization["images"][0]["newTag"] == _project_version()


# --- agreement with podlink ----------------------------------------------------------------------


# Every podlink command loads the worker's Settings (Kafka and the rest) and then its own.
SERVICE_SETTINGS: dict[str, tuple[type, ...]] = {
    "worker": (Settings,),
    "notify": (Settings, NotifySettings),
    "deliver": (Settings, DeliverSettings),
    "intake": (Settings, IntakeSettings),
}
PODLINK_VARIABLE = re.compile(r"\bPODLINK_[A-Z0-9_]+")
# Where the README speaks of one service: its sections are headed by the command.
README_SECTION = re.compile(r"^#{2,3} .*`podlink (notify|deliver|intake)`", re.MULTILINE)


def _setting_names(settings: type) -> set[str]:
    assert settings.model_config["env_prefix"] == "PODLINK_"
    return {f"PODLINK_{name.upper()}" for name in settings.model_fields}


class _EverySecretSet(dict[str, str]):
    """An environment in which any variable the rota names is set, so that loading it lists them."""

    def get(self, key: str, default: Any = None) -> str:
        return "set"


def _rota_secret_names(rota_text: str, tmp_dir: Path) -> set[str]:
    """The environment variables a rota names by *_env, as notify itself reads the rota."""
    path = tmp_dir / "rota.yaml"
    path.write_text(rota_text)
    rota = load_rota(path, _EverySecretSet())
    names = {c.webhook.secret_env for c in rota.contacts.values() if c.webhook}
    names |= {c.pagerduty_key_env for c in rota.contacts.values() if c.pagerduty_key_env}
    names |= {rota.smtp.password_env} if rota.smtp else set()
    names |= {rota.notify.api_key_env} if rota.notify else set()
    return names


def _rota_texts(texts: dict[str, str]) -> list[str]:
    rotas = [texts["rota.example.yaml"]]
    for doc in yaml.safe_load_all(texts["k8s/notify.yaml"]):
        if doc["kind"] == "ConfigMap" and "rota.yaml" in doc["data"]:
            rotas.append(doc["data"]["rota.yaml"])
    return rotas


def _accepted(texts: dict[str, str], tmp_dir: Path) -> dict[str, set[str]]:
    """The PODLINK_* variables each command reads: its settings, and for notify the rota's secrets."""
    accepted = {service: set().union(*map(_setting_names, classes))
                for service, classes in SERVICE_SETTINGS.items()}
    for rota in _rota_texts(texts):
        accepted["notify"] |= _rota_secret_names(rota, tmp_dir)
    return accepted


def _deploy_texts() -> dict[str, str]:
    return {str(p.relative_to(DEPLOY)): p.read_text() for p in sorted(DEPLOY.rglob("*")) if p.is_file()}


def _k8s_documents(text: str) -> list[str]:
    return [chunk for chunk in re.split(r"^---$", text, flags=re.MULTILINE) if chunk.strip()]


def _component(doc: dict[str, Any]) -> str | None:
    return doc.get("metadata", {}).get("labels", {}).get("app.kubernetes.io/component")


def _unknown_variables(texts: dict[str, str], tmp_dir: Path) -> list[str]:
    """Each PODLINK_* name in deploy/, against the settings of the command it is given to.

    Text (comments too) is read in the scope it belongs to: a Kubernetes document by its
    component label, a README section by the command in its heading, the rota by notify. Where
    the structure says which container gets a variable (a container's env, the ConfigMaps and
    Secrets it loads, a Compose service's environment), that container's command decides.
    Anything else must be a worker setting, the set every command reads.
    """
    accepted = _accepted(texts, tmp_dir)
    everyone = set().union(*accepted.values())
    problems: list[str] = []

    def check(where: str, names: set[str], allowed: set[str]) -> None:
        problems.extend(f"{where}: {name}" for name in sorted(names - allowed))

    k8s_objects: dict[str, dict[str, Any]] = {}
    for path, text in texts.items():
        if path.startswith("k8s/"):
            for chunk in _k8s_documents(text):
                doc = yaml.safe_load(chunk)
                kind_name = f"{doc['kind']}/{doc.get('metadata', {}).get('name')}"
                k8s_objects[kind_name] = doc
                check(f"{path} {kind_name}", set(PODLINK_VARIABLE.findall(chunk)),
                      accepted[_component(doc) or "worker"])
        elif path == "README.md":
            starts = [0, *(m.start() for m in README_SECTION.finditer(text)), len(text)]
            for begin, end in zip(starts, starts[1:]):
                section = text[begin:end]
                heading = README_SECTION.match(section)
                check(f"{path} section {heading.group(1) if heading else 'general'}",
                      set(PODLINK_VARIABLE.findall(section)), accepted[heading.group(1) if heading else "worker"])
        elif path == "rota.example.yaml":
            check(path, set(PODLINK_VARIABLE.findall(text)), accepted["notify"])
        elif path == "compose.yaml":
            # Comments cannot be placed in a service; they must name something some command reads.
            check(path, set(PODLINK_VARIABLE.findall(text)), everyone)
        else:
            check(path, set(PODLINK_VARIABLE.findall(text)), accepted["worker"])

    for name, svc in yaml.safe_load(texts["compose.yaml"])["services"].items():
        if svc.get("build", {}).get("dockerfile") == "deploy/Dockerfile":
            command = svc.get("command", ["worker"])[0]
            check(f"compose.yaml service {name} ({command})", set(svc.get("environment", {})), accepted[command])

    for kind_name, doc in k8s_objects.items():
        if doc["kind"] not in WORKLOAD_KINDS:
            continue
        for container in doc["spec"]["template"]["spec"]["containers"]:
            command = container["args"][0]
            names = {e["name"] for e in container.get("env", [])}
            for source in container.get("envFrom", []):
                for ref, kind in (("configMapRef", "ConfigMap"), ("secretRef", "Secret")):
                    if ref in source:
                        loaded = k8s_objects[f"{kind}/{source[ref]['name']}"]
                        names |= set(loaded.get("data") or loaded.get("stringData") or {})
            check(f"{kind_name} container {container['name']} ({command})", names, accepted[command])
    return problems


def test_every_podlink_variable_named_in_deploy_is_a_setting_of_the_command_given_it(tmp_path: Path) -> None:
    """Including comments and the README: a misspelt setting is silently ignored by podlink."""
    texts = _deploy_texts()
    assert set(PODLINK_VARIABLE.findall("".join(texts.values())))
    assert _unknown_variables(texts, tmp_path) == []


@pytest.mark.parametrize(("path", "before", "after", "reported"), [
    # Misspelt, in a container's ConfigMap, in a Compose service, in a README section.
    ("k8s/deliver.yaml", "PODLINK_EPR_URL:", "PODLINK_EPR_URI:", "PODLINK_EPR_URI"),
    ("compose.yaml", "PODLINK_INTAKE_PORT:", "PODLINK_INTAKE_PROT:", "PODLINK_INTAKE_PROT"),
    ("README.md", "PODLINK_NOTIFY_PUBLIC_URL", "PODLINK_NOTIFY_PUBLIC_URI", "PODLINK_NOTIFY_PUBLIC_URI"),
    ("k8s/statefulset.yaml", "name: PODLINK_WEB_BIND", "name: PODLINK_WEB_BINDS", "PODLINK_WEB_BINDS"),
    # Right name, wrong service: deliver's setting given to notify, intake's to a worker.
    ("k8s/notify.yaml", "  PODLINK_NOTIFY_TICK_SECONDS:", "  PODLINK_DELIVER_GROUP_ID: x\n  PODLINK_NOTIFY_TICK_SECONDS:",
     "PODLINK_DELIVER_GROUP_ID"),
    ("compose.yaml", "    PODLINK_GROUP_ID: podlink\n", "    PODLINK_GROUP_ID: podlink\n    PODLINK_INTAKE_PORT: \"1\"\n",
     "PODLINK_INTAKE_PORT"),
    # A secret a rota does not name is no notify setting.
    ("k8s/secret.example.yaml", "PODLINK_SMTP_PASSWORD:", "PODLINK_SMTP_PASWORD:", "PODLINK_SMTP_PASWORD"),
])
def test_a_misspelt_or_misplaced_variable_is_reported(tmp_path: Path, path: str, before: str, after: str,
                                                       reported: str) -> None:
    texts = _deploy_texts()
    assert before in texts[path]
    texts[path] = texts[path].replace(before, after, 1)
    problems = _unknown_variables(texts, tmp_path)
    assert problems and all(reported in problem for problem in problems), problems


# --- notify, deliver and intake ------------------------------------------------------------------

SERVICES = ("notify", "deliver", "intake")
# The port setting of each service, and the port podlink serves when it is unset.
PORT_SETTINGS = {"notify": "PODLINK_NOTIFY_PORT", "deliver": "PODLINK_DELIVER_WEB_PORT",
                 "intake": "PODLINK_INTAKE_PORT", "worker": "PODLINK_WEB_PORT"}
DEFAULT_PORTS = {"notify": 6067, "deliver": 6069, "intake": 6068}
SECRET_WORDS = re.compile(r"TOKEN|PASSWORD|SECRET|_KEY$|API_KEY")


def _env_of(container: dict[str, Any]) -> dict[str, str]:
    """What a container's environment holds: its ConfigMaps, then its own env (which wins)."""
    objects = _manifests()
    env: dict[str, str] = {}
    for source in container.get("envFrom", []):
        if "configMapRef" in source:
            env |= objects[f"ConfigMap/{source['configMapRef']['name']}"]["data"]
    return env | {e["name"]: e["value"] for e in container.get("env", [])}


def test_each_kubernetes_workload_runs_its_own_command_once() -> None:
    commands = {}
    for obj, container in _workloads():
        (command,) = container["args"]
        commands[command] = obj["kind"]
        assert container["name"] == command == _component(obj) == _component(obj["spec"]["template"])
    # Only the worker keeps tables on disk; the others keep their state in Kafka.
    assert commands == {"worker": "StatefulSet", "notify": "Deployment", "deliver": "Deployment",
                        "intake": "Deployment"}


def test_each_compose_service_runs_its_own_command() -> None:
    commands = {name: _compose_command(svc) for name, svc in _compose_podlink().items()}
    assert commands == {"worker-1": ["worker"], "worker-2": ["worker"], "notify": ["notify"],
                        "deliver": ["deliver"], "intake": ["intake"]}
    for name in SERVICES:
        # Behind a profile, so that `up` alone still starts Kafka and the workers only.
        assert _compose()["services"][name]["profiles"] == [name]


@pytest.mark.parametrize("command", ["worker", *SERVICES])
def test_the_commands_exist_in_podlink(command: str) -> None:
    podlink = Path(sysconfig.get_path("scripts")) / "podlink"
    result = _run(str(podlink), command, "--help")
    assert result.returncode == 0, result.stderr


def test_notify_runs_once_per_cluster() -> None:
    """docs/on-call.md: a second notify shares the alerts but not the other's escalation timers."""
    deployment, _ = _workload("notify")
    assert deployment["spec"]["replicas"] == 1
    assert deployment["spec"]["strategy"]["type"] == "Recreate", "a rolling update runs two for a while"
    assert not [obj for obj in _manifests().values() if obj["kind"] == "PodDisruptionBudget"
                and obj["spec"]["selector"]["matchLabels"].items() <= deployment["spec"]["template"]
                ["metadata"]["labels"].items()], "a budget for one replica only blocks node drains"


@pytest.mark.parametrize("command", ["worker", *SERVICES])
def test_every_workload_runs_locked_down_like_the_worker(command: str) -> None:
    obj, c = _workload(command)
    pod = obj["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] == pod["securityContext"]["fsGroup"] == _image_uid()
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert pod["automountServiceAccountToken"] is False
    assert c["securityContext"] == {"allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True,
                                    "capabilities": {"drop": ["ALL"]}}
    assert "/tmp" in {m["mountPath"] for m in c["volumeMounts"] if not m.get("readOnly")}
    for kind in ("requests", "limits"):
        assert set(c["resources"][kind]) == {"cpu", "memory"}


@pytest.mark.parametrize("command", SERVICES)
def test_ports_agree_with_the_settings_and_the_service(command: str) -> None:
    obj, c = _workload(command)
    port = int(_env_of(c)[PORT_SETTINGS[command]])
    assert port == DEFAULT_PORTS[command]
    assert [p["containerPort"] for p in c["ports"]] == [port]
    (port_name,) = [p["name"] for p in c["ports"]]
    (service,) = [s for s in _manifests().values() if s["kind"] == "Service"
                  and s["spec"]["selector"].items() <= obj["spec"]["template"]["metadata"]["labels"].items()]
    assert [(p["port"], p["targetPort"]) for p in service["spec"]["ports"]] == [(port, port_name)]
    for kind in ("startup", "liveness", "readiness"):
        assert c[f"{kind}Probe"]["httpGet"]["port"] == port_name
        assert "scheme" not in c[f"{kind}Probe"]["httpGet"], "HTTP, as the ConfigMap leaves TLS unset"
    annotations = obj["spec"]["template"]["metadata"].get("annotations", {})
    if annotations:
        assert int(annotations["prometheus.io/port"]) == port
    compose = _compose()["services"][command]
    (mapping,) = compose["ports"]
    assert int(compose["environment"][PORT_SETTINGS[command]]) == int(mapping.rsplit(":", 1)[1]) == port


async def _statuses(app: web.Application, paths: list[str]) -> dict[str, int]:
    async with TestClient(TestServer(app, host="127.0.0.1")) as client:
        return {path: (await client.get(path)).status for path in paths}


def _probe_paths(command: str) -> list[str]:
    _, c = _workload(command)
    return sorted({c[f"{kind}Probe"]["httpGet"]["path"] for kind in ("startup", "liveness", "readiness")})


def test_notify_serves_its_probe_path() -> None:
    # web_app only keeps the notifier for the API's handlers; /healthz does not read it.
    app = notify_web_app(None)  # type: ignore[arg-type]
    paths = _probe_paths("notify")
    assert asyncio.run(_statuses(app, [*paths, "/readyz"])) == {**dict.fromkeys(paths, 200), "/readyz": 404}


def test_deliver_serves_its_probe_path() -> None:
    async def serve() -> dict[str, int]:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        settings = DeliverSettings(epr_url="https://epr.example.invalid/fhir", deliver_web_port=port,
                                   deliver_web_bind="127.0.0.1")
        runner = await deliver_metrics_server(DeliverMetrics(), settings)
        try:
            async with aiohttp.ClientSession() as session:
                statuses = {}
                for path in [*_probe_paths("deliver"), "/readyz"]:
                    async with session.get(f"http://127.0.0.1:{port}{path}") as response:
                        statuses[path] = response.status
                return statuses
        finally:
            await runner.cleanup()

    assert asyncio.run(serve()) == {"/healthz": 200, "/readyz": 404}


def test_intake_serves_its_probe_path_without_a_credential() -> None:
    # The capability statement reads neither Kafka nor a token: no broker is needed to answer it.
    base = Settings().fhir_base_url
    intake = Intake(IntakeSettings(), None, Systems.of(base), published_resources(base))  # type: ignore[arg-type]
    assert _probe_paths("intake") == ["/fhir/metadata"]
    statuses = asyncio.run(_statuses(build_intake_app(intake), ["/fhir/metadata", "/healthz"]))
    assert statuses == {"/fhir/metadata": 200, "/healthz": 404}


def _secret_names(texts: dict[str, str], tmp_dir: Path) -> set[str]:
    """Every variable that holds a secret: settings typed as secrets, the template's keys, the
    rota's *_env names, and intake's token list."""
    names = {f"PODLINK_{name.upper()}" for classes in SERVICE_SETTINGS.values() for cls in classes
             for name, field in cls.model_fields.items() if "SecretStr" in str(field.annotation)}
    for doc in yaml.safe_load_all(texts["k8s/secret.example.yaml"]):
        names |= {key for key in doc["stringData"] if key.startswith("PODLINK_")}
    for rota in _rota_texts(texts):
        names |= _rota_secret_names(rota, tmp_dir)
    return names | {"PODLINK_INTAKE_TOKENS", "PODLINK_KAFKA_SASL_USERNAME"}


def _secrets_in_configuration(texts: dict[str, str], tmp_dir: Path) -> list[str]:
    secrets = _secret_names(texts, tmp_dir)
    found = []
    for path, text in texts.items():
        if path.startswith("k8s/"):
            for doc in yaml.safe_load_all(text):
                if doc["kind"] == "ConfigMap":
                    found += [f"{path} {doc['metadata']['name']}: {key}" for key in doc["data"]
                              if key in secrets or (SECRET_WORDS.search(key) and not key.endswith("_FILE"))]
    for name, svc in yaml.safe_load(texts["compose.yaml"])["services"].items():
        found += [f"compose.yaml {name}: {key}" for key in svc.get("environment", {})
                  if key in secrets or (SECRET_WORDS.search(key) and not key.endswith("_FILE"))]
    return found


def test_no_secret_is_in_a_configmap_or_a_compose_environment(tmp_path: Path) -> None:
    texts = _deploy_texts()
    assert {"PODLINK_EPR_TOKEN", "PODLINK_INTAKE_TOKENS", "PODLINK_SMTP_PASSWORD"} <= _secret_names(texts, tmp_path)
    assert _secrets_in_configuration(texts, tmp_path) == []


@pytest.mark.parametrize(("path", "before", "after"), [
    ("k8s/deliver.yaml", "  PODLINK_DELIVER_GROUP_ID:", "  PODLINK_EPR_TOKEN: abc\n  PODLINK_DELIVER_GROUP_ID:"),
    ("k8s/notify.yaml", "  PODLINK_NOTIFY_ATTEMPTS:", "  PODLINK_SMTP_PASSWORD: abc\n  PODLINK_NOTIFY_ATTEMPTS:"),
    ("compose.yaml", "      PODLINK_INTAKE_BIND:", "      PODLINK_INTAKE_TOKENS: a=b\n      PODLINK_INTAKE_BIND:"),
    ("k8s/configmap.yaml", "  PODLINK_GROUP_ID:", "  PODLINK_KAFKA_SASL_PASSWORD: abc\n  PODLINK_GROUP_ID:"),
])
def test_a_secret_put_in_a_configmap_is_reported(tmp_path: Path, path: str, before: str, after: str) -> None:
    texts = _deploy_texts()
    assert before in texts[path]
    texts[path] = texts[path].replace(before, after, 1)
    assert len(_secrets_in_configuration(texts, tmp_path)) == 1


def test_each_service_gets_the_secrets_it_needs_from_the_template(tmp_path: Path) -> None:
    templates = {doc["metadata"]["name"]: set(doc["stringData"])
                 for doc in yaml.safe_load_all(SECRET_TEMPLATE.read_text())}
    loaded = {command: {s["secretRef"]["name"] for s in _workload(command)[1]["envFrom"] if "secretRef" in s}
              for command in ("worker", *SERVICES)}
    assert loaded == {"worker": {"podlink-kafka-credentials"},
                      "notify": {"podlink-kafka-credentials", "podlink-notify-secrets"},
                      "deliver": {"podlink-kafka-credentials", "podlink-deliver-secrets"},
                      "intake": {"podlink-kafka-credentials", "podlink-intake-secrets"}}
    assert templates["podlink-deliver-secrets"] == {"PODLINK_EPR_TOKEN"}
    assert templates["podlink-intake-secrets"] == {"PODLINK_INTAKE_TOKENS"}
    (k8s_rota,) = _rota_texts(_deploy_texts())[1:]
    assert templates["podlink-notify-secrets"] == _rota_secret_names(k8s_rota, tmp_path)


def test_notify_reads_the_rota_where_it_is_mounted_and_it_loads(tmp_path: Path) -> None:
    deployment, c = _workload("notify")
    rota_file = Path(_env_of(c)["PODLINK_ROTA_FILE"])
    volumes = {v["name"]: v for v in deployment["spec"]["template"]["spec"]["volumes"]}
    (mount,) = [m for m in c["volumeMounts"] if Path(m["mountPath"]) == rota_file.parent]
    configmap = _manifests()[f"ConfigMap/{volumes[mount['name']]['configMap']['name']}"]
    rota = tmp_path / rota_file.name
    rota.write_text(configmap["data"][rota_file.name])
    # With the Secret's keys set, as the Deployment sets them, notify accepts the rota.
    (secrets,) = [d for d in yaml.safe_load_all(SECRET_TEMPLATE.read_text())
                  if d["metadata"]["name"] == "podlink-notify-secrets"]
    assert load_rota(rota, secrets["stringData"]).contacts
    compose = _compose()["services"]["notify"]
    assert f"./rota.example.yaml:{compose['environment']['PODLINK_ROTA_FILE']}:ro" in compose["volumes"]
    assert load_rota(DEPLOY / "rota.example.yaml", secrets["stringData"]).contacts


def test_deliver_points_at_a_placeholder_that_cannot_resolve() -> None:
    """No real address for patient data by default: .invalid never resolves (RFC 6761)."""
    _, c = _workload("deliver")
    compose_url = _compose()["services"]["deliver"]["environment"]["PODLINK_EPR_URL"]
    (compose_default,) = re.fullmatch(r"\$\{PODLINK_EPR_URL:-([^}]+)\}", compose_url).groups()
    for url in (_env_of(c)["PODLINK_EPR_URL"], compose_default):
        assert urlsplit(url).scheme == "https"
        assert urlsplit(url).hostname.endswith(".invalid")


def test_compose_services_reach_kafka_like_the_workers_and_keep_no_volume() -> None:
    worker = _compose()["services"]["worker-1"]
    for name in SERVICES:
        svc = _compose()["services"][name]
        assert svc["environment"]["PODLINK_KAFKA_BOOTSTRAP"] == worker["environment"]["PODLINK_KAFKA_BOOTSTRAP"]
        assert svc["depends_on"]["kafka"]["condition"] == "service_healthy"
        assert svc["read_only"] is True
        assert not [v for v in svc.get("volumes", []) if not v.endswith(":ro")]
        check = svc["healthcheck"]["test"]
        assert check[:3] == ["CMD", "python", "-c"]
        assert f"http://127.0.0.1:{svc['environment'][PORT_SETTINGS[name]]}{_probe_paths(name)[0]}" in check[3]
