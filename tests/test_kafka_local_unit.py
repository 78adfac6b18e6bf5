"""Unit tests for dev_tooling.kafka_local* (life cycle, config, jars, process)
that need no broker, JVM or Maven."""
from __future__ import annotations

import base64
import dataclasses
import subprocess
import sys
from pathlib import Path

import pytest

from dev_tooling import kafka_local as kl
from dev_tooling import kafka_local_config as cfg
from dev_tooling import kafka_local_jars as jars
from dev_tooling import kafka_local_process as proc
from kafka_plumbing.settings import Settings


@pytest.fixture
def settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Settings:
    monkeypatch.delenv("FS_KAFKA_BOOTSTRAP", raising=False)
    monkeypatch.setenv("FS_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("FS_CACHE_DIR", str(tmp_path / "cache"))
    return Settings()


@pytest.fixture
def paths(tmp_path: Path) -> cfg.BrokerPaths:
    return cfg.BrokerPaths(tmp_path / "broker")


def test_cluster_id_is_urlsafe_base64_of_16_bytes_without_padding() -> None:
    ids = {cfg.new_cluster_id() for _ in range(500)}
    assert len(ids) == 500
    for cid in ids:
        assert len(cid) == 22
        assert "=" not in cid and not cid.startswith("-")
        assert set(cid) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")
        assert len(base64.urlsafe_b64decode(cid + "==")) == 16


def test_kafka_version_comes_from_packaged_pom() -> None:
    assert jars.POM_PATH.is_file()
    assert jars.kafka_version().startswith("3.9.")


def test_libs_dir_is_versioned_under_cache(settings: Settings) -> None:
    assert jars.libs_dir(settings) == settings.cache_dir / f"kafka-{jars.kafka_version()}" / "libs"


def test_broker_paths_default_to_home_kafka(settings: Settings) -> None:
    p = cfg.broker_paths(settings)
    assert p.data_dir == settings.home / "kafka"
    assert p.log_dir.parent == p.data_dir
    assert {p.properties.name, p.log4j.name, p.pid_file.name, p.server_log.name} <= p.owned_names()
    assert len({p.log_dir, p.properties, p.log4j, p.pid_file, p.server_log, p.console_log}) == 6


def test_server_properties_single_node_kraft(paths: cfg.BrokerPaths) -> None:
    text = cfg.render_server_properties(paths, 19192, 19193)
    props = cfg.parse_properties(text)
    assert props["process.roles"] == "broker,controller"
    assert props["node.id"] == "1"
    assert props["controller.quorum.voters"] == "1@127.0.0.1:19193"
    assert props["listeners"] == "PLAINTEXT://127.0.0.1:19192,CONTROLLER://127.0.0.1:19193"
    assert props["advertised.listeners"] == "PLAINTEXT://127.0.0.1:19192"
    assert props["controller.listener.names"] == "CONTROLLER"
    assert "CONTROLLER:PLAINTEXT" in props["listener.security.protocol.map"]
    assert props["log.dirs"] == str(paths.log_dir)
    for key in ("offsets.topic.replication.factor", "transaction.state.log.replication.factor",
                "transaction.state.log.min.isr"):
        assert props[key] == "1"
    assert props["group.initial.rebalance.delay.ms"] == "0"
    assert props["auto.create.topics.enable"] == "true"
    assert props["num.partitions"] == "4"


def test_dedupe_buffer_small_but_accepted_by_kafka(paths: cfg.BrokerPaths) -> None:
    props = cfg.parse_properties(cfg.render_server_properties(paths, 9092, 9093))
    size = int(props["log.cleaner.dedupe.buffer.size"])
    threads = int(props.get("log.cleaner.threads", "1"))
    # KafkaConfig requires buffer/threads > 1 MiB (strictly); default is 128 MiB.
    assert 1024 * 1024 < size / threads and size <= 16 * 1024 * 1024


def test_properties_escape_backslashes() -> None:
    p = cfg.BrokerPaths(Path("/tmp/odd\\dir"))
    line = next(l for l in cfg.render_server_properties(p, 1, 2).splitlines()
                if l.startswith("log.dirs="))
    assert line == "log.dirs=/tmp/odd\\\\dir/data"
    assert cfg.parse_properties(line)["log.dirs"] == "/tmp/odd\\dir/data"


def test_log4j_writes_server_log_and_keeps_version_and_ready_lines(paths: cfg.BrokerPaths) -> None:
    props = cfg.parse_properties(cfg.render_log4j(paths))
    assert props["log4j.appender.file.File"] == str(paths.server_log)
    assert props["log4j.rootLogger"].startswith("WARN")
    assert props["log4j.logger.kafka"] == "INFO"  # KafkaRaftServer: "Kafka Server started"
    assert props["log4j.logger.org.apache.kafka.common.utils.AppInfoParser"] == "INFO"


def test_parse_bootstrap_roundtrip(paths: cfg.BrokerPaths) -> None:
    assert cfg.parse_bootstrap(cfg.render_server_properties(paths, 29092, 29093)) == "127.0.0.1:29092"
    assert cfg.parse_bootstrap("# nothing\n") is None


def test_parse_version_takes_latest_run() -> None:
    log = (
        "[2025-01-01 00:00:00,000] INFO Kafka version: 3.9.0 (org.apache.kafka.common.utils.AppInfoParser)\n"
        "[2025-01-02 00:00:00,000] INFO Kafka version: 3.9.1 (org.apache.kafka.common.utils.AppInfoParser)\n"
        "[2025-01-02 00:00:00,001] INFO [KafkaRaftServer nodeId=1] Kafka Server started\n"
    )
    assert cfg.parse_version(log) == "3.9.1"
    assert cfg.parse_version("no version here") is None


def test_read_from_offset_ignores_previous_runs(tmp_path: Path) -> None:
    log = tmp_path / "server.log"
    log.write_text("old run: Kafka Server started\n")
    offset = proc.size(log)
    with log.open("a") as fh:
        fh.write("new run starting\n")
    assert kl.READY_MARKER not in proc.read_from(log, offset)
    # A rolled-over (shorter) file is read from the start.
    log.write_text("x\n")
    assert proc.read_from(log, offset) == "x\n"


def test_free_port_and_controller_port() -> None:
    port = kl.free_port()
    assert proc.port_free(port)
    cport = proc.controller_port(port)
    assert cport != port and 0 < cport < 65536


def test_cli_help_and_required_command(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        kl.cli(["--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    assert "featurestream kafka" in out and "start" in out and "status" in out
    with pytest.raises(SystemExit):
        kl.cli([])
    with pytest.raises(SystemExit) as exc:
        kl.cli(["start", "--help"])
    assert "--port" in capsys.readouterr().out


def test_status_and_stop_without_broker(settings: Settings, tmp_path: Path) -> None:
    data = tmp_path / "nobroker"
    assert kl.stop(settings, data) is False
    st = kl.status(settings, data)
    assert st["running"] is False and st["pid"] is None
    assert kl.cli(["status", "--data-dir", str(data)]) == 1
    assert kl.cli(["stop", "--data-dir", str(data)]) == 0


def test_stale_pid_file_is_never_signalled(settings: Settings, tmp_path: Path) -> None:
    # A live process that is not our broker (pid reuse): must be left alone.
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        p = cfg.broker_paths(settings, tmp_path / "stale")
        p.data_dir.mkdir(parents=True)
        p.pid_file.write_text(f"{other.pid}\n")
        assert kl.status(settings, p.data_dir)["running"] is False
        assert kl.stop(settings, p.data_dir) is False
        assert other.poll() is None
        assert not p.pid_file.exists()
    finally:
        other.kill()
        other.wait()


def test_wipe_refuses_foreign_directories(settings: Settings, tmp_path: Path) -> None:
    foreign = tmp_path / "precious"
    foreign.mkdir()
    (foreign / "thesis.tex").write_text("do not delete")
    with pytest.raises(RuntimeError, match="refusing"):
        kl.wipe(settings, foreign)
    assert (foreign / "thesis.tex").exists()


def test_wipe_removes_broker_dir(settings: Settings, paths: cfg.BrokerPaths) -> None:
    paths.log_dir.mkdir(parents=True)
    paths.properties.write_text(cfg.render_server_properties(paths, 1, 2))
    paths.server_log.write_text("")
    (paths.data_dir / "server.log.1").write_text("")
    kl.wipe(settings, paths.data_dir)
    assert not paths.data_dir.exists()
    kl.wipe(settings, paths.data_dir)  # idempotent


def test_ensure_libs_skips_maven_when_cached(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    libs = jars.libs_dir(settings)
    libs.mkdir(parents=True)
    (libs / f"kafka_2.13-{jars.kafka_version()}.jar").write_bytes(b"")
    monkeypatch.setattr(jars.subprocess, "run", lambda *a, **k: pytest.fail("mvn must not run"))
    assert jars.ensure_libs(settings) == libs


def test_ensure_libs_builds_in_temp_dir_then_renames(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: dict[str, object] = {}

    def fake_mvn(cmd: list[str], cwd: Path, **_: object) -> subprocess.CompletedProcess[str]:
        staged = Path(next(a for a in cmd if a.startswith("-Dlibs.dir=")).split("=", 1)[1])
        seen["cmd"], seen["cwd"], seen["staged"] = cmd, Path(cwd), staged
        assert (Path(cwd) / "pom.xml").read_bytes() == jars.POM_PATH.read_bytes()
        staged.mkdir()
        (staged / f"kafka_2.13-{jars.kafka_version()}.jar").write_bytes(b"jar")
        return subprocess.CompletedProcess(cmd, 0, "", "")

    monkeypatch.setattr(jars.shutil, "which", lambda name: f"/usr/bin/{name}")
    monkeypatch.setattr(jars.subprocess, "run", fake_mvn)
    libs = jars.ensure_libs(settings)
    assert libs == jars.libs_dir(settings)
    assert seen["cmd"][1:4] == ["-q", "-B", "package"]  # type: ignore[index]
    assert seen["staged"] != libs and not Path(seen["cwd"]).exists()  # type: ignore[arg-type]
    assert [p.name for p in libs.parent.iterdir()] == ["libs"]


def test_ensure_libs_reports_maven_failure(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(jars.shutil, "which", lambda name: f"/usr/bin/{name}")
    monkeypatch.setattr(
        jars.subprocess, "run",
        lambda cmd, **_: subprocess.CompletedProcess(cmd, 1, "", "Could not resolve artifact"),
    )
    with pytest.raises(RuntimeError, match="Could not resolve artifact"):
        jars.ensure_libs(settings)
    assert not jars.libs_dir(settings).exists()
    assert list(jars.libs_dir(settings).parent.iterdir()) == []


def test_external_bootstrap_never_starts_a_broker(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    ext = dataclasses.replace(settings, kafka_bootstrap="broker.example:9092")
    monkeypatch.setattr(kl, "metadata_ok", lambda *a, **k: True)
    monkeypatch.setattr(kl, "ensure_libs", lambda s: pytest.fail("must not resolve jars"))
    info = kl.start(ext)
    assert info.bootstrap == "broker.example:9092" and info.pid is None and info.reused
    monkeypatch.setattr(kl, "metadata_ok", lambda *a, **k: False)
    with pytest.raises(RuntimeError, match="metadata"):
        kl.start(ext)


def test_metadata_ok_false_for_closed_port_even_inside_event_loop() -> None:
    import asyncio

    port = kl.free_port()

    async def inside() -> bool:
        return kl.metadata_ok(f"127.0.0.1:{port}", timeout=1.0)

    assert kl.metadata_ok(f"127.0.0.1:{port}", timeout=1.0) is False
    assert asyncio.run(inside()) is False


def test_start_refuses_busy_port(settings: Settings, tmp_path: Path) -> None:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        with pytest.raises(RuntimeError, match="already in use"):
            kl.start(settings, tmp_path / "busy", port)


def test_ssl_listener_is_added_next_to_plaintext(paths: cfg.BrokerPaths, tmp_path: Path) -> None:
    ssl = cfg.SslListener(19194, tmp_path / "broker.p12", "secret")
    props = cfg.parse_properties(cfg.render_server_properties(paths, 19192, 19193, ssl))
    assert props["listeners"] == "PLAINTEXT://127.0.0.1:19192,SSL://127.0.0.1:19194,CONTROLLER://127.0.0.1:19193"
    assert props["advertised.listeners"] == "PLAINTEXT://127.0.0.1:19192,SSL://127.0.0.1:19194"
    assert props["listener.security.protocol.map"].split(",") == ["PLAINTEXT:PLAINTEXT", "CONTROLLER:PLAINTEXT", "SSL:SSL"]
    assert props["inter.broker.listener.name"] == "PLAINTEXT"
    assert props["listener.name.ssl.ssl.keystore.type"] == "PKCS12"
    assert props["listener.name.ssl.ssl.keystore.location"] == str(tmp_path / "broker.p12")
    assert props["listener.name.ssl.ssl.keystore.password"] == "secret"
    text = cfg.render_server_properties(paths, 19192, 19193, ssl)
    assert cfg.parse_bootstrap(text) == "127.0.0.1:19192"
    assert cfg.parse_bootstrap(text, "SSL") == "127.0.0.1:19194"
    plain = cfg.render_server_properties(paths, 19192, 19193)
    assert cfg.parse_bootstrap(plain, "SSL") is None
    assert not any(key.startswith("listener.name.ssl.") for key in cfg.parse_properties(plain))


def test_start_refuses_missing_keystore_and_clashing_ssl_port(settings: Settings, tmp_path: Path) -> None:
    port = kl.free_port()
    with pytest.raises(RuntimeError, match="keystore"):
        kl.start(settings, tmp_path / "nokeystore", port, ssl=cfg.SslListener(kl.free_port(), tmp_path / "none.p12", "x"))
    with pytest.raises(RuntimeError, match="SSL port"):
        kl.start(settings, tmp_path / "clash", port, ssl=cfg.SslListener(port, tmp_path / "none.p12", "x"))


def test_cli_ssl_flags_go_together(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert kl.cli(["start", "--data-dir", str(tmp_path / "b"), "--ssl-port", "19999"]) == 1
    assert "--ssl-keystore" in capsys.readouterr().err
