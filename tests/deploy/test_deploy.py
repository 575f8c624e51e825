"""deploy/: the container image, the Compose file and the Kubernetes manifests.

Linted with tools that need no Docker engine and no cluster (hadolint, the Compose
Specification schema, Kubernetes' OpenAPI-derived schemas, yamllint), then checked for what the
files must agree on with each other and with podlink itself: setting names, ports, the data
directory, the user id, probe paths.
"""
from __future__ import annotations

import http.server
import json
import os
import re
import subprocess
import sys
import sysconfig
import threading
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml
from dockerfile_parse import DockerfileParser
from dockerfile_parse.util import WordSplitter

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


def _statefulset() -> dict[str, Any]:
    return yaml.safe_load((K8S / "statefulset.yaml").read_text())


def _container() -> dict[str, Any]:
    (container,) = _statefulset()["spec"]["template"]["spec"]["containers"]
    return container


def _container_env() -> dict[str, str]:
    return {e["name"]: e["value"] for e in _container()["env"]}


def _compose() -> dict[str, Any]:
    return yaml.safe_load(COMPOSE.read_text())


def _compose_workers() -> dict[str, dict[str, Any]]:
    """The services built from deploy/Dockerfile."""
    return {name: svc for name, svc in _compose()["services"].items()
            if svc.get("build", {}).get("dockerfile") == "deploy/Dockerfile"}


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
    secret = yaml.safe_load(SECRET_TEMPLATE.read_text())
    assert "data" not in secret
    assert set(secret["stringData"].values()) == {PLACEHOLDER}


def test_compose_and_kubernetes_use_the_image_of_this_version() -> None:
    expected = f"podlink:{_project_version()}"
    assert {svc["image"] for svc in _compose_workers().values()} == {expected}
    assert _container()["image"] == expected
    kustomization = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    assert kustomization["images"][0]["newTag"] == _project_version()


# --- agreement with podlink ----------------------------------------------------------------------

def test_every_podlink_variable_named_in_deploy_is_a_setting() -> None:
    """Including comments and the README: a misspelt setting is silently ignored by podlink."""
    known = {f"PODLINK_{name.upper()}" for name in Settings.model_fields}
    named = {}
    for path in sorted(p for p in DEPLOY.rglob("*") if p.is_file()):
        for variable in re.findall(r"\bPODLINK_[A-Z0-9_]+", path.read_text()):
            named.setdefault(variable, path.relative_to(ROOT))
    unknown = {variable: str(path) for variable, path in named.items() if variable not in known}
    assert named and not unknown
