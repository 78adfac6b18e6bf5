"""deploy/docker-compose.yml checked without Docker: against the Compose
Specification's JSON schema (the copy check-jsonschema vendors, used through
its CLI), then what the schema cannot see: KRaft, two workers that route to
each other, their volumes, and the one-shot publisher."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import REPO
from tests.dockerfile_recipe import parse

COMPOSE = REPO / "deploy" / "docker-compose.yml"


def check_jsonschema(path: Path) -> subprocess.CompletedProcess[str]:
    tool = Path(sys.executable).parent / "check-jsonschema"
    assert tool.is_file(), "check-jsonschema missing: pip install -e '.[test]'"
    return subprocess.run([str(tool), "--builtin-schema", "vendor.compose-spec", str(path)],
                          capture_output=True, text=True, timeout=120)


def _compose() -> dict[str, Any]:
    return yaml.safe_load(COMPOSE.read_text())  # resolves the file's YAML anchors and merge keys


def test_compose_file_matches_the_compose_schema() -> None:
    done = check_jsonschema(COMPOSE)
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.mark.parametrize(
    ("old", "new"),
    [
        ("condition: service_healthy", "condition: service_ready"),  # not one of the schema's conditions
        ("restart: unless-stopped\n  depends_on", "restart: unless-stopped\n  depends-on"),  # unknown key
        ("  worker-1-data:\n", "  worker-1-data: [oops]\n"),  # a volume is a mapping or null
    ],
)
def test_the_schema_rejects_broken_compose_files(old: str, new: str, tmp_path: Path) -> None:
    text = COMPOSE.read_text()
    assert old in text, f"the mutation no longer applies: {old!r}"
    broken = tmp_path / "docker-compose.yml"
    broken.write_text(text.replace(old, new, 1))
    done = check_jsonschema(broken)
    assert done.returncode == 1, done.stdout + done.stderr


def test_kafka_is_the_official_image_in_kraft_mode() -> None:
    kafka = _compose()["services"]["kafka"]
    assert kafka["image"].startswith("apache/kafka:3.9.")
    env = kafka["environment"]
    assert set(env["KAFKA_PROCESS_ROLES"].split(",")) == {"broker", "controller"}
    assert env["KAFKA_CONTROLLER_QUORUM_VOTERS"].startswith(env["KAFKA_NODE_ID"] + "@")
    assert "healthcheck" in kafka


def _workers(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {name: s for name, s in compose["services"].items() if s.get("command") is None and name != "kafka"}


def _jobs(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {name: s for name, s in compose["services"].items() if s.get("restart") == "no"}


def test_two_workers_with_their_own_volumes_ports_and_urls() -> None:
    compose = _compose()
    workers = _workers(compose)
    assert len(workers) == 2
    image_env = parse(REPO / "Dockerfile").final.env()
    advertised = compose["services"]["kafka"]["environment"]["KAFKA_ADVERTISED_LISTENERS"]
    host_ports, data_volumes, registries = set(), set(), set()
    for name, worker in workers.items():
        env = worker["environment"]
        # The other worker forwards reads for this one's keys to this URL.
        assert env["FS_CANONICAL_URL"] == f"http://{worker['hostname']}:{image_env['FS_WEB_PORT']}", name
        assert worker["hostname"] == name  # the service name resolves too
        assert f"//{env['FS_KAFKA_BOOTSTRAP']}" in advertised, "workers must use a listener kafka advertises"
        assert "FS_CONTROL_KEY" in env
        host_ports |= {p.split(":")[0] for p in worker["ports"]}
        mounts = dict(reversed(v.split(":")[:2]) for v in worker["volumes"])
        data_volumes.add(mounts[image_env["FS_HOME"]])
        registries.add(mounts[image_env["FS_REGISTRY"]])
    assert len(host_ports) == 2 and len(data_volumes) == 2, "each worker its own port and data volume"
    assert len(registries) == 1, "one registry shared by both workers"
    assert {*data_volumes, *registries} <= set(compose["volumes"])


def test_a_one_shot_job_publishes_the_flights() -> None:
    compose = _compose()
    jobs = _jobs(compose)
    assert len(jobs) == 1
    job = next(iter(jobs.values()))
    assert job["command"][:2] == ["produce", "flights"]
    assert job.get("restart") == "no"
    assert job["depends_on"]["kafka"]["condition"] == "service_healthy"
    workers = _workers(compose)
    assert job["environment"]["FS_KAFKA_BOOTSTRAP"] == next(iter(workers.values()))["environment"]["FS_KAFKA_BOOTSTRAP"]
    # Topics are created by whoever comes first, so the partition count must agree.
    assert {job["environment"]["FS_PARTITIONS"]} == {w["environment"]["FS_PARTITIONS"] for w in workers.values()}


def test_the_cli_command_the_job_runs_exists() -> None:
    from app.cli import build_parser

    command = _compose()["services"]["publish-flights"]["command"]
    args = build_parser().parse_args(command)
    assert args.command == "produce" and args.what == "flights" and args.limit == 20000


def test_one_monitor_beside_the_workers_on_its_own_port() -> None:
    from app.cli import build_parser

    compose = _compose()
    monitor = compose["services"]["monitor"]
    args = build_parser().parse_args(monitor["command"])
    assert (args.command, args.host) == ("monitor", "0.0.0.0")
    # The image's HEALTHCHECK asks FS_WEB_PORT: the monitor's port, published as is.
    assert monitor["environment"]["FS_WEB_PORT"] == str(args.port)
    assert monitor["ports"] == [f"{args.port}:{args.port}"]
    worker_env = next(iter(_workers(compose).values()))["environment"]
    for name in ("FS_KAFKA_BOOTSTRAP", "FS_TOPIC_PREFIX", "FS_PARTITIONS"):
        assert monitor["environment"][name] == worker_env[name], name
    image_env = parse(REPO / "Dockerfile").final.env()
    assert f"registry:{image_env['FS_REGISTRY']}" in monitor["volumes"], "it reads the models' baselines"


def test_the_skew_audit_runs_on_a_schedule_with_the_workers_definitions() -> None:
    from app.cli import build_parser

    compose = _compose()
    audit = compose["services"]["skew-audit"]
    args = build_parser().parse_args(audit["command"])
    assert args.command == "skew-audit" and args.every is None  # the interval comes from the environment
    assert float(audit["environment"]["FS_SKEW_AUDIT_INTERVAL_S"]) > 0
    assert audit["healthcheck"] == {"disable": True}, "no HTTP port for the image's HEALTHCHECK to ask"
    worker_env = next(iter(_workers(compose).values()))["environment"]
    # The same topics and the same feature module (absent: the image's default for both), or it audits
    # other definitions and reports skew that is not there.
    for name in ("FS_KAFKA_BOOTSTRAP", "FS_TOPIC_PREFIX", "FS_PARTITIONS", "FS_FEATURES"):
        assert audit["environment"].get(name) == worker_env.get(name), name
