"""deploy/k8s/ checked without a cluster: every resource against the
Kubernetes OpenAPI schemas that kubernetes-validate ships (offline, strict:
unknown fields are errors), then what schemas cannot see: that the pieces
refer to each other and to the image correctly."""
from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from tests.conftest import REPO
from tests.dockerfile_recipe import parse

K8S = REPO / "deploy" / "k8s"
# The oldest minor still supported by the big managed offerings, and the newest the package knows.
VERSIONS = ("1.30.0", kubernetes_validate.latest_version())


def _documents() -> list[tuple[Path, dict[str, Any]]]:
    docs = []
    for path in sorted(K8S.glob("*.yaml")):
        docs += [(path, doc) for doc in yaml.safe_load_all(path.read_text()) if doc]
    return docs


def _one(kind: str, name: str | None = None) -> dict[str, Any]:
    found = [d for _, d in _documents() if d["kind"] == kind and (name is None or d["metadata"]["name"] == name)]
    assert len(found) == 1, f"expected one {kind} {name or ''}, found {len(found)}"
    return found[0]


def _validate(doc: dict[str, Any], version: str) -> None:
    kubernetes_validate.validate(doc, version, strict=True)


@pytest.mark.parametrize("version", VERSIONS)
def test_every_resource_matches_the_kubernetes_schema(version: str) -> None:
    docs = _documents()
    kinds = {d["kind"] for _, d in docs}
    assert {"StatefulSet", "Service", "ConfigMap", "Secret", "PersistentVolumeClaim"} <= kinds
    for path, doc in docs:
        try:
            _validate(doc, version)
        except kubernetes_validate.ValidationError as exc:
            pytest.fail(f"{path.name}: {doc['kind']}/{doc['metadata']['name']}: {exc}")


def _container(statefulset: dict[str, Any]) -> dict[str, Any]:
    return statefulset["spec"]["template"]["spec"]["containers"][0]


@pytest.mark.parametrize(
    "breakage",
    ["typo in a field", "wrong type", "missing required field"],
)
def test_the_validator_rejects_broken_manifests(breakage: str) -> None:
    broken = copy.deepcopy(_one("StatefulSet"))
    container = _container(broken)
    if breakage == "typo in a field":
        container["readinesProbe"] = container.pop("readinessProbe")  # strict: unknown fields are errors
    elif breakage == "wrong type":
        broken["spec"]["replicas"] = "two"
    else:
        del broken["spec"]["selector"]
    with pytest.raises(kubernetes_validate.ValidationError):
        _validate(broken, VERSIONS[0])


def test_workers_route_through_the_headless_service() -> None:
    statefulset = _one("StatefulSet")
    headless = _one("Service", statefulset["spec"]["serviceName"])
    assert headless["spec"]["clusterIP"] == "None"
    # 503 from /healthz during a rebalance must not remove the owners' DNS names.
    assert headless["spec"].get("publishNotReadyAddresses") is True
    labels = statefulset["spec"]["template"]["metadata"]["labels"]
    for service in (d for _, d in _documents() if d["kind"] == "Service"):
        if service["spec"]["selector"].get("app.kubernetes.io/component") == "worker":
            assert service["spec"]["selector"].items() <= labels.items(), service["metadata"]["name"]
    assert statefulset["spec"]["selector"]["matchLabels"].items() <= labels.items()

    env = {e["name"]: e for e in _container(statefulset)["env"]}
    url = env["FS_CANONICAL_URL"]["value"]
    assert url.startswith("http://$(POD_NAME)." + headless["metadata"]["name"] + ".$(POD_NAMESPACE).svc")
    names = list(env)
    # $(VAR) expands only variables defined earlier in the list.
    assert names.index("POD_NAME") < names.index("FS_CANONICAL_URL")
    assert names.index("POD_NAMESPACE") < names.index("FS_CANONICAL_URL")
    port = env["FS_WEB_PORT"]["value"]
    assert url.endswith(":" + port)


def test_probes_use_healthz_on_the_web_port() -> None:
    container = _container(_one("StatefulSet"))
    assert {p["name"]: p["containerPort"] for p in container["ports"]} == {"http": 6066}
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert container[probe]["httpGet"] == {"path": "/healthz", "port": "http"}, probe


def test_config_and_secrets_come_from_the_configmap_and_secret() -> None:
    container = _container(_one("StatefulSet"))
    config, secret = _one("ConfigMap"), _one("Secret")
    refs = {next(iter(r)): next(iter(r.values()))["name"] for r in container["envFrom"]}
    assert refs == {"configMapRef": config["metadata"]["name"], "secretRef": secret["metadata"]["name"]}
    secret_keys = set(secret["stringData"])
    assert {"FS_CONTROL_KEY", "FS_KAFKA_SASL_PASSWORD"} <= secret_keys
    # Credentials never in the ConfigMap (it is readable by anyone who can read the namespace's config).
    assert not any(k in config["data"] for k in ("FS_CONTROL_KEY", "FS_KAFKA_SASL_PASSWORD", "FS_TOKENS",
                                                 "FS_ADMIN_TOKEN", "FS_KAFKA_SSL_KEY_PASSWORD"))
    # Every FS_ name is one the settings module reads (a typo would be silently ignored).
    known = set(_settings_variables())
    for name in [*config["data"], *secret_keys, *(e["name"] for e in container["env"])]:
        assert not name.startswith("FS_") or name in known, f"{name} is not a setting"
    # The placeholder key is too short for a worker to start with (kafka_plumbing/signing.py).
    from kafka_plumbing.signing import MIN_KEY_CHARS

    assert len(secret["stringData"]["FS_CONTROL_KEY"]) < MIN_KEY_CHARS


def _settings_variables() -> list[str]:
    import re

    source = (REPO / "kafka_plumbing" / "settings.py").read_text()
    return re.findall(r'_(?:path_|flag_)?env\("(FS_[A-Z0-9_]+)"', source)


def test_state_and_registry_are_on_volumes_where_the_image_expects_them() -> None:
    statefulset = _one("StatefulSet")
    image_env = parse(REPO / "Dockerfile").final.env()
    container = _container(statefulset)
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env["FS_HOME"] == image_env["FS_HOME"] and env["FS_REGISTRY"] == image_env["FS_REGISTRY"]
    mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    claim = statefulset["spec"]["volumeClaimTemplates"][0]
    assert mounts[claim["metadata"]["name"]] == env["FS_HOME"]  # one volume per worker
    registry_claim = _one("PersistentVolumeClaim")
    volumes = {v["name"]: v for v in statefulset["spec"]["template"]["spec"]["volumes"]}
    registry_volume = next(n for n, v in volumes.items()
                           if v.get("persistentVolumeClaim", {}).get("claimName") == registry_claim["metadata"]["name"])
    assert mounts[registry_volume] == env["FS_REGISTRY"]
    assert registry_claim["spec"]["accessModes"] == ["ReadWriteMany"]  # shared by every worker

    security = statefulset["spec"]["template"]["spec"]["securityContext"]
    image_user = parse(REPO / "Dockerfile").final.all("USER")[-1].value.split(":")[0]
    assert security["runAsNonRoot"] is True and str(security["runAsUser"]) == image_user
    assert str(security["fsGroup"]) == parse(REPO / "Dockerfile").final.all("USER")[-1].value.split(":")[1]


def test_the_worker_arguments_parse() -> None:
    from app.cli import build_parser

    args = build_parser().parse_args(_container(_one("StatefulSet"))["args"])
    assert args.command == "worker" and args.web_host == "0.0.0.0"


def test_one_monitor_with_its_service_reads_the_registry() -> None:
    from app.cli import build_parser

    monitor = _one("Deployment", "featurestream-monitor")
    assert monitor["spec"]["replicas"] == 1  # two would publish every alert twice
    pod_labels = monitor["spec"]["template"]["metadata"]["labels"]
    assert monitor["spec"]["selector"]["matchLabels"].items() <= pod_labels.items()
    assert _one("Service", "featurestream-monitor")["spec"]["selector"].items() <= pod_labels.items()
    container = _container(monitor)
    args = build_parser().parse_args(container["args"])
    assert (args.command, args.host) == ("monitor", "0.0.0.0")
    assert {p["name"]: p["containerPort"] for p in container["ports"]} == {"http": args.port}
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env["FS_WEB_PORT"] == str(args.port)  # the image's HEALTHCHECK
    assert {e["name"] for e in container["env"]} <= set(_settings_variables())
    mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    volumes = {v["name"]: v for v in monitor["spec"]["template"]["spec"]["volumes"]}
    registry = next(n for n, v in volumes.items() if v.get("persistentVolumeClaim", {}).get("claimName")
                    == _one("PersistentVolumeClaim")["metadata"]["name"])
    assert mounts[registry] == env["FS_REGISTRY"]


def test_the_skew_audit_is_a_cron_job_with_the_workers_config() -> None:
    from app.cli import build_parser

    cron = _one("CronJob", "featurestream-skew-audit")
    assert cron["spec"]["concurrencyPolicy"] == "Forbid"
    pod = cron["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    container = pod["containers"][0]
    args = build_parser().parse_args(container["args"])
    assert args.command == "skew-audit" and args.every is None
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env["FS_SKEW_AUDIT_INTERVAL_S"] == "0", "one audit per Job: the CronJob is the schedule"
    assert set(env) <= set(_settings_variables())
    # The workers' ConfigMap and Secret: the same topics, feature module and credentials.
    assert container["envFrom"] == _container(_one("StatefulSet"))["envFrom"]
    assert pod["securityContext"]["runAsNonRoot"] is True
