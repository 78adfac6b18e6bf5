"""A real single-node Apache Kafka broker (KRaft mode) for local dev and tests.

The broker is the upstream ``kafka.Kafka`` main class run from jars that Maven
resolves with the packaged ``kafka/pom.xml``; there is no Docker and no tarball
download. Everything a broker owns lives in one data directory, so a test can
start a throwaway broker in a temp dir and ``wipe`` it afterwards.

If ``FS_KAFKA_BOOTSTRAP`` is set, the local broker is never started: ``start``
only checks that the configured cluster answers a metadata request.
"""
from __future__ import annotations

import argparse
import asyncio
import base64
import concurrent.futures
import contextlib
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Coroutine, Iterator, TypeVar

from rich.console import Console

from kafka_plumbing.settings import Settings, load

T = TypeVar("T")

POM_PATH = Path(__file__).parent / "kafka" / "pom.xml"
READY_MARKER = "Kafka Server started"
_VERSION_RE = re.compile(r"Kafka version: (\S+)")
_MAIN_CLASS = "kafka.Kafka"
JVM_OPTS = ["-Xmx512m", "-Xms256m", "-XX:+UseG1GC", "-Djava.awt.headless=true"]

console = Console(stderr=True)


# --------------------------------------------------------------------------- #
# Jars
# --------------------------------------------------------------------------- #


def kafka_version(pom: Path = POM_PATH) -> str:
    """The Kafka version pinned in the pom, so the pom stays the single source."""
    ns = {"m": "http://maven.apache.org/POM/4.0.0"}
    node = ET.parse(pom).getroot().find("m:properties/m:kafka.version", ns)
    if node is None or not (node.text or "").strip():
        raise RuntimeError(f"{pom} has no <kafka.version> property")
    return node.text.strip()


def libs_dir(settings: Settings) -> Path:
    return settings.cache_dir / f"kafka-{kafka_version()}" / "libs"


def _libs_complete(libs: Path, version: str) -> bool:
    return (libs / f"kafka_2.13-{version}.jar").is_file()


def ensure_libs(settings: Settings) -> Path:
    """Resolve the Kafka jars into the shared cache once; return the libs dir.

    Maven writes into a private temp dir that is renamed into place, so a
    half-finished or concurrent resolution never leaves a partial libs dir
    that a later run would mistake for a complete one.
    """
    version = kafka_version()
    libs = libs_dir(settings)
    if _libs_complete(libs, version):
        return libs
    mvn = shutil.which("mvn")
    if mvn is None:
        raise RuntimeError("Maven ('mvn') is needed to resolve Apache Kafka but is not on PATH")
    libs.parent.mkdir(parents=True, exist_ok=True)
    build = Path(tempfile.mkdtemp(prefix=".build-", dir=libs.parent))
    try:
        shutil.copy2(POM_PATH, build / "pom.xml")
        staged = build / "libs"
        with console.status(f"Resolving Apache Kafka {version} from Maven Central"):
            proc = subprocess.run(
                [mvn, "-q", "-B", "package", f"-Dlibs.dir={staged}"],
                cwd=build,
                capture_output=True,
                text=True,
            )
        if proc.returncode != 0 or not _libs_complete(staged, version):
            raise RuntimeError(
                f"mvn failed (exit {proc.returncode}) resolving Kafka {version}:\n"
                + _tail_text(proc.stdout + proc.stderr)
            )
        try:
            staged.rename(libs)
        except OSError:
            # Another process won the race; its copy is complete by construction.
            if not _libs_complete(libs, version):
                raise
    finally:
        shutil.rmtree(build, ignore_errors=True)
    return libs


def _java() -> str:
    java = shutil.which("java")
    if java is None:
        raise RuntimeError("Java 17+ ('java') is needed to run Kafka but is not on PATH")
    return java


# --------------------------------------------------------------------------- #
# Layout and config rendering
# --------------------------------------------------------------------------- #


@dataclass(frozen=True)
class BrokerPaths:
    data_dir: Path

    @property
    def log_dir(self) -> Path:
        """Kafka's ``log.dirs``: the partitions and the KRaft metadata log."""
        return self.data_dir / "data"

    @property
    def properties(self) -> Path:
        return self.data_dir / "server.properties"

    @property
    def log4j(self) -> Path:
        return self.data_dir / "log4j.properties"

    @property
    def pid_file(self) -> Path:
        return self.data_dir / "broker.pid"

    @property
    def server_log(self) -> Path:
        """Written by log4j; holds the version and readiness lines."""
        return self.data_dir / "server.log"

    @property
    def console_log(self) -> Path:
        """stdout/stderr of the JVM: crashes before log4j is up land here."""
        return self.data_dir / "console.log"

    @property
    def lock_file(self) -> Path:
        return self.data_dir / ".lock"

    @property
    def meta_properties(self) -> Path:
        return self.log_dir / "meta.properties"

    def owned_names(self) -> set[str]:
        return {
            p.name
            for p in (self.log_dir, self.properties, self.log4j, self.pid_file,
                      self.server_log, self.console_log, self.lock_file)
        }


def broker_paths(settings: Settings, data_dir: Path | None = None) -> BrokerPaths:
    return BrokerPaths(Path(data_dir or settings.home / "kafka").resolve())


@dataclass(frozen=True)
class BrokerInfo:
    bootstrap: str
    version: str | None
    pid: int | None
    log_path: Path | None
    startup_seconds: float
    # True when an already-running broker (or an external cluster) was found.
    reused: bool = False


def new_cluster_id() -> str:
    """A KRaft cluster id: URL-safe base64 of 16 random bytes, no padding.

    Kafka's own Uuid.randomUuid() rejects ids starting with '-' because the
    CLI would read them as a flag; we do the same.
    """
    while True:
        cid = base64.urlsafe_b64encode(os.urandom(16)).rstrip(b"=").decode("ascii")
        if not cid.startswith("-"):
            return cid


def _prop_value(value: str | Path) -> str:
    # java.util.Properties treats backslash as an escape character.
    return str(value).replace("\\", "\\\\")


def _render(props: dict[str, str | int | Path]) -> str:
    return "".join(f"{k}={_prop_value(v)}\n" for k, v in props.items())


def server_properties(paths: BrokerPaths, port: int, controller_port: int) -> dict[str, str | int | Path]:
    """Broker config tuned for one laptop-sized node: few threads, few partitions."""
    host = "127.0.0.1"
    return {
        "process.roles": "broker,controller",
        "node.id": 1,
        "controller.quorum.voters": f"1@{host}:{controller_port}",
        "listeners": f"PLAINTEXT://{host}:{port},CONTROLLER://{host}:{controller_port}",
        "advertised.listeners": f"PLAINTEXT://{host}:{port}",
        "controller.listener.names": "CONTROLLER",
        "inter.broker.listener.name": "PLAINTEXT",
        "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
        "log.dirs": paths.log_dir,
        "num.partitions": 4,
        "default.replication.factor": 1,
        "min.insync.replicas": 1,
        # A single node cannot host the default RF-3 internal topics.
        "offsets.topic.replication.factor": 1,
        "offsets.topic.num.partitions": 4,
        "transaction.state.log.replication.factor": 1,
        "transaction.state.log.min.isr": 1,
        "transaction.state.log.num.partitions": 4,
        # Tests start consumers one by one; don't make each join wait 3 s.
        "group.initial.rebalance.delay.ms": 0,
        # The 128 MiB default dedupe buffer is allocated at start-up. KafkaConfig
        # requires strictly more than 1 MiB per cleaner thread, so 1 MiB is rejected.
        "log.cleaner.dedupe.buffer.size": 2 * 1024 * 1024,
        "log.cleaner.threads": 1,
        "num.network.threads": 2,
        "num.io.threads": 2,
        "num.recovery.threads.per.data.dir": 1,
        "num.replica.fetchers": 1,
        "background.threads": 2,
        "auto.create.topics.enable": "true",
        "delete.topic.enable": "true",
        "log.retention.check.interval.ms": 300000,
    }


def render_server_properties(paths: BrokerPaths, port: int, controller_port: int) -> str:
    return "# Written by featurestream kafka start; rewritten on every start.\n" + _render(
        server_properties(paths, port, controller_port)
    )


def render_log4j(paths: BrokerPaths) -> str:
    """Broker INFO (version, readiness) to server.log; the chatty parts at WARN."""
    props: dict[str, str | int | Path] = {
        "log4j.rootLogger": "WARN, file",
        "log4j.appender.file": "org.apache.log4j.RollingFileAppender",
        "log4j.appender.file.File": paths.server_log,
        "log4j.appender.file.MaxFileSize": "10MB",
        "log4j.appender.file.MaxBackupIndex": 2,
        "log4j.appender.file.layout": "org.apache.log4j.PatternLayout",
        "log4j.appender.file.layout.ConversionPattern": "[%d] %p %m (%c)%n",
        "log4j.logger.kafka": "INFO",
        "log4j.logger.org.apache.kafka": "WARN",
        # Prints "Kafka version: x.y.z".
        "log4j.logger.org.apache.kafka.common.utils.AppInfoParser": "INFO",
        "log4j.logger.kafka.request.logger": "WARN",
        "log4j.logger.state.change.logger": "WARN",
        "log4j.logger.kafka.authorizer.logger": "WARN",
        "log4j.logger.kafka.server.KafkaConfig": "WARN",
        # Per-partition load/recovery lines: several per partition per start.
        "log4j.logger.kafka.log": "WARN",
        "log4j.logger.kafka.coordinator": "WARN",
        "log4j.logger.kafka.cluster.Partition": "WARN",
        "log4j.logger.kafka.server.ReplicaFetcherManager": "WARN",
        "log4j.logger.kafka.server.metadata": "WARN",
    }
    return _render(props)


def parse_version(text: str) -> str | None:
    """The last ``Kafka version: x.y.z`` in a log, i.e. the current run's."""
    found = _VERSION_RE.findall(text)
    return found[-1] if found else None


def parse_properties(text: str) -> dict[str, str]:
    """Enough of java.util.Properties for the files we write ourselves."""
    out: dict[str, str] = {}
    for line in text.splitlines():
        line = line.strip()
        if not line or line[0] in "#!" or "=" not in line:
            continue
        key, value = line.split("=", 1)
        out[key.strip()] = value.strip().replace("\\\\", "\\")
    return out


def parse_bootstrap(properties_text: str) -> str | None:
    """host:port of the PLAINTEXT listener clients should use."""
    listeners = parse_properties(properties_text).get("advertised.listeners", "")
    for listener in listeners.split(","):
        name, _, address = listener.partition("://")
        if name.strip() == "PLAINTEXT" and address:
            return address
    return None


# --------------------------------------------------------------------------- #
# Process helpers
# --------------------------------------------------------------------------- #

# Popen objects of brokers started by this process: keeping them referenced
# lets stop() reap the child (no zombie) and silences Popen's ResourceWarning.
_CHILDREN: dict[int, subprocess.Popen[bytes]] = {}


def _cmdline(pid: int) -> str | None:
    proc = Path(f"/proc/{pid}/cmdline")
    if proc.parent.parent.is_dir() and Path("/proc/self").exists():
        try:
            raw = proc.read_bytes()
        except OSError:
            return None
        return raw.replace(b"\0", b" ").decode(errors="replace").strip() or None
    # No procfs (macOS): ask ps.
    out = subprocess.run(["ps", "-o", "command=", "-p", str(pid)], capture_output=True, text=True)
    return out.stdout.strip() or None


def _alive(pid: int) -> bool:
    child = _CHILDREN.get(pid)
    if child is not None:
        if child.poll() is None:
            return True
        _CHILDREN.pop(pid, None)
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    stat = Path(f"/proc/{pid}/stat")
    if stat.exists():
        try:
            # Field 3 is the state; a zombie has exited but still answers kill(0).
            return stat.read_text().rsplit(")", 1)[1].split()[0] != "Z"
        except (OSError, IndexError):
            return False
    return True


def _is_our_broker(pid: int, paths: BrokerPaths) -> bool:
    cmd = _cmdline(pid)
    return bool(cmd) and _MAIN_CLASS in cmd.split() and str(paths.properties) in cmd


def _read_pid(paths: BrokerPaths) -> int | None:
    try:
        return int(paths.pid_file.read_text().strip())
    except (OSError, ValueError):
        return None


def _running_pid(paths: BrokerPaths) -> int | None:
    """The pid of the broker for this data dir, if it is really running."""
    pid = _read_pid(paths)
    if pid is not None and _alive(pid) and _is_our_broker(pid, paths):
        return pid
    return None


@contextlib.contextmanager
def _locked(paths: BrokerPaths) -> Iterator[None]:
    """Serialise start/stop on one data dir across processes (e.g. xdist workers)."""
    paths.data_dir.mkdir(parents=True, exist_ok=True)
    try:
        import fcntl
    except ImportError:  # pragma: no cover - non-POSIX
        yield
        return
    with open(paths.lock_file, "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _port_free(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def _controller_port(port: int) -> int:
    return port + 1 if port < 65535 and _port_free(port + 1) else free_port()


def _tail_text(text: str, lines: int = 40) -> str:
    return "\n".join(text.splitlines()[-lines:])


def _tail(path: Path, lines: int = 40) -> str:
    try:
        return _tail_text(path.read_text(errors="replace"), lines)
    except OSError:
        return f"({path} not found)"


def _read_from(path: Path, offset: int) -> str:
    try:
        with open(path, "rb") as fh:
            if fh.seek(0, os.SEEK_END) < offset:  # rolled over since we looked
                offset = 0
            fh.seek(offset)
            return fh.read().decode(errors="replace")
    except OSError:
        return ""


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


# --------------------------------------------------------------------------- #
# Metadata probe
# --------------------------------------------------------------------------- #


def _client_security(settings: Settings) -> dict[str, Any]:
    """settings.kafka_security() adapted to aiokafka's client arguments."""
    kwargs: dict[str, Any] = dict(settings.kafka_security())
    cafile = kwargs.pop("ssl_cafile", None)
    if cafile:
        from aiokafka.helpers import create_ssl_context

        kwargs["ssl_context"] = create_ssl_context(cafile=cafile)
    return kwargs


async def _fetch_broker_count(bootstrap: str, timeout: float, security: dict[str, Any]) -> int:
    from aiokafka.client import AIOKafkaClient

    client = AIOKafkaClient(
        bootstrap_servers=bootstrap,
        request_timeout_ms=max(1000, int(timeout * 1000)),
        **security,
    )
    try:
        await asyncio.wait_for(client.bootstrap(), timeout)
        metadata = await asyncio.wait_for(client.fetch_all_metadata(), timeout)
        return len(metadata.brokers())
    finally:
        await client.close()


def _run_coro(factory: Callable[[], Coroutine[Any, Any, T]]) -> T:
    """asyncio.run, also when called from inside a running loop (async tests)."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(factory())
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(lambda: asyncio.run(factory())).result()


def metadata_ok(bootstrap: str, timeout: float = 5.0, settings: Settings | None = None) -> bool:
    """Whether the cluster answers a metadata request with at least one broker."""
    security = _client_security(settings) if settings else {}
    try:
        count: int = _run_coro(lambda: _fetch_broker_count(bootstrap, timeout, security))
    except Exception:
        return False
    return count > 0


# --------------------------------------------------------------------------- #
# Lifecycle
# --------------------------------------------------------------------------- #


def _external_info(settings: Settings, timeout: float) -> BrokerInfo:
    t0 = time.monotonic()
    bootstrap = settings.kafka_bootstrap
    if not metadata_ok(bootstrap, timeout=min(timeout, 15.0), settings=settings):
        raise RuntimeError(f"FS_KAFKA_BOOTSTRAP={bootstrap} does not answer a metadata request")
    return BrokerInfo(bootstrap, None, None, None, time.monotonic() - t0, reused=True)


def _running_info(paths: BrokerPaths, pid: int) -> BrokerInfo:
    try:
        bootstrap = parse_bootstrap(paths.properties.read_text()) or "?"
    except OSError:
        bootstrap = "?"
    version = parse_version(_read_from(paths.server_log, 0))
    return BrokerInfo(bootstrap, version, pid, paths.server_log, 0.0, reused=True)


def _format_storage(java: str, libs: Path, paths: BrokerPaths) -> None:
    """Format the KRaft log dir once; a data dir keeps its cluster id for life."""
    if paths.meta_properties.exists():
        return
    proc = subprocess.run(
        [java, f"-Dlog4j.configuration=file:{paths.log4j}", "-cp", f"{libs}/*",
         "kafka.tools.StorageTool", "format",
         "-t", new_cluster_id(), "-c", str(paths.properties), "--ignore-formatted"],
        capture_output=True,
        text=True,
    )
    if proc.returncode != 0:
        raise RuntimeError(
            f"kafka-storage format failed (exit {proc.returncode}):\n"
            + _tail_text(proc.stdout + proc.stderr)
        )


def _launch(java: str, libs: Path, paths: BrokerPaths) -> subprocess.Popen[bytes]:
    cmd = [java, *JVM_OPTS, f"-Dlog4j.configuration=file:{paths.log4j}",
           "-cp", f"{libs}/*", _MAIN_CLASS, str(paths.properties)]
    with open(paths.console_log, "ab") as out:
        # Own session: Ctrl-C in the shell that ran `kafka start` must not kill it.
        proc = subprocess.Popen(cmd, cwd=paths.data_dir, stdin=subprocess.DEVNULL,
                                stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    _CHILDREN[proc.pid] = proc
    paths.pid_file.write_text(f"{proc.pid}\n")
    return proc


def _failure(paths: BrokerPaths, why: str) -> RuntimeError:
    return RuntimeError(
        f"Kafka broker {why}.\n--- {paths.server_log} (tail) ---\n{_tail(paths.server_log)}"
        f"\n--- {paths.console_log} (tail) ---\n{_tail(paths.console_log, 20)}"
    )


def _wait_ready(proc: subprocess.Popen[bytes], paths: BrokerPaths, bootstrap: str,
                log_offset: int, timeout: float) -> str | None:
    """Block until the log says started and metadata works; return the version."""
    deadline = time.monotonic() + timeout
    started = False
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            _CHILDREN.pop(proc.pid, None)
            paths.pid_file.unlink(missing_ok=True)
            raise _failure(paths, f"exited with code {proc.returncode} during start-up")
        text = _read_from(paths.server_log, log_offset)
        started = started or READY_MARKER in text
        if started and metadata_ok(bootstrap, timeout=min(5.0, max(0.5, deadline - time.monotonic()))):
            return parse_version(text)
        time.sleep(0.2)
    _terminate(proc.pid, paths, 10.0)
    raise _failure(paths, f"was not ready within {timeout:g}s (stopped it)")


def start(settings: Settings, data_dir: Path | None = None, port: int | None = None,
          timeout: float = 90) -> BrokerInfo:
    """Start (or find) the local broker and return once clients can use it."""
    if settings.kafka_bootstrap:
        return _external_info(settings, timeout)
    paths = broker_paths(settings, data_dir)
    with _locked(paths):
        pid = _running_pid(paths)
        if pid is not None:
            info = _running_info(paths, pid)
            if port is not None and not info.bootstrap.endswith(f":{port}"):
                raise RuntimeError(
                    f"a broker for {paths.data_dir} is already running at {info.bootstrap}; "
                    "stop it first to change the port"
                )
            return info
        return _start_new(settings, paths, port or settings.kafka_port, timeout)


def _start_new(settings: Settings, paths: BrokerPaths, port: int, timeout: float) -> BrokerInfo:
    t0 = time.monotonic()
    if not _port_free(port):
        raise RuntimeError(f"port {port} on 127.0.0.1 is already in use (pick another with --port)")
    libs = ensure_libs(settings)
    java = _java()
    paths.log_dir.mkdir(parents=True, exist_ok=True)
    paths.properties.write_text(render_server_properties(paths, port, _controller_port(port)))
    paths.log4j.write_text(render_log4j(paths))
    _format_storage(java, libs, paths)
    # Only lines written by this run count: an old "Kafka Server started" must not.
    offset = _size(paths.server_log)
    proc = _launch(java, libs, paths)
    bootstrap = f"127.0.0.1:{port}"
    version = _wait_ready(proc, paths, bootstrap, offset, timeout)
    return BrokerInfo(bootstrap, version, proc.pid, paths.server_log, time.monotonic() - t0)


def _wait_gone(pid: int, timeout: float) -> bool:
    child = _CHILDREN.get(pid)
    if child is not None:
        try:
            child.wait(timeout)
        except subprocess.TimeoutExpired:
            return False
        _CHILDREN.pop(pid, None)
        return True
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not _alive(pid):
            return True
        time.sleep(0.1)
    return not _alive(pid)


def _terminate(pid: int, paths: BrokerPaths, timeout: float) -> None:
    """SIGTERM gives Kafka a clean shutdown (no log recovery next start)."""
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    if not _wait_gone(pid, timeout):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
        _wait_gone(pid, 10.0)
    paths.pid_file.unlink(missing_ok=True)


def stop(settings: Settings, data_dir: Path | None = None, timeout: float = 30) -> bool:
    """Stop the broker of this data dir; True if one was running."""
    paths = broker_paths(settings, data_dir)
    if not paths.data_dir.exists():
        return False
    with _locked(paths):
        pid = _running_pid(paths)
        if pid is None:
            # Stale pid file (crash, reboot, or a recycled pid): never signal it.
            paths.pid_file.unlink(missing_ok=True)
            return False
        _terminate(pid, paths, timeout)
        return True


def status(settings: Settings, data_dir: Path | None = None) -> dict[str, Any]:
    if settings.kafka_bootstrap:
        ok = metadata_ok(settings.kafka_bootstrap, timeout=5.0, settings=settings)
        return {"running": ok, "pid": None, "bootstrap": settings.kafka_bootstrap,
                "version": None, "data_dir": None, "external": True}
    paths = broker_paths(settings, data_dir)
    pid = _running_pid(paths) if paths.data_dir.exists() else None
    info = _running_info(paths, pid) if pid is not None else None
    return {
        "running": pid is not None,
        "pid": pid,
        "bootstrap": info.bootstrap if info else None,
        "version": info.version if info else None,
        "data_dir": str(paths.data_dir),
        "external": False,
    }


def wipe(settings: Settings, data_dir: Path) -> None:
    """Stop the broker and delete its data dir, for a fresh broker in tests."""
    paths = broker_paths(settings, data_dir)
    stop(settings, paths.data_dir)
    if not paths.data_dir.exists():
        return
    # Refuse to rm -rf a directory that holds anything we did not create.
    strangers = {p.name for p in paths.data_dir.iterdir()} - paths.owned_names()
    strangers = {n for n in strangers if not n.startswith(paths.server_log.name)}
    if strangers:
        raise RuntimeError(
            f"refusing to wipe {paths.data_dir}: it holds files not made by the broker "
            f"({', '.join(sorted(strangers)[:5])})"
        )
    shutil.rmtree(paths.data_dir)


# --------------------------------------------------------------------------- #
# CLI
# --------------------------------------------------------------------------- #


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="featurestream kafka",
        description=(
            "Run a local single-node Apache Kafka broker (KRaft mode) for development "
            "and tests. Jars are resolved once from Maven Central into FS_CACHE_DIR. "
            "If FS_KAFKA_BOOTSTRAP is set, nothing is started and the commands check "
            "that cluster instead."
        ),
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="{start,stop,status}")

    def add(name: str, help_text: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help_text, description=help_text)
        p.add_argument("--data-dir", type=Path, default=None,
                       help="broker state directory (default: $FS_HOME/kafka)")
        return p

    p_start = add("start", "start the broker in the background and wait until it is ready")
    p_start.add_argument("--port", type=int, default=None,
                         help="client (PLAINTEXT) port; the controller uses port+1 if free "
                              "(default: $FS_KAFKA_PORT or 9092)")
    p_start.add_argument("--timeout", type=float, default=90.0,
                         help="seconds to wait for readiness (default: 90)")
    p_stop = add("stop", "stop the broker started from this data dir")
    p_stop.add_argument("--timeout", type=float, default=30.0,
                        help="seconds to wait after SIGTERM before SIGKILL (default: 30)")
    add("status", "show whether the broker is running (exit 0 if running, 1 if not)")
    return parser


def cli(args: list[str]) -> int:
    """``featurestream kafka start|stop|status``; returns the exit code."""
    ns = _parser().parse_args(args)
    settings = load()
    out = Console()
    try:
        if ns.command == "start":
            info = start(settings, ns.data_dir, ns.port, ns.timeout)
            _print_started(out, info)
            return 0
        if ns.command == "stop":
            if settings.kafka_bootstrap:
                out.print(f"FS_KAFKA_BOOTSTRAP={settings.kafka_bootstrap} is external; nothing to stop")
            elif stop(settings, ns.data_dir, ns.timeout):
                out.print("[green]Kafka broker stopped[/]")
            else:
                out.print("No local Kafka broker was running")
            return 0
        return _print_status(out, status(settings, ns.data_dir))
    except RuntimeError as exc:
        console.print(f"[bold red]error:[/] {exc}", markup=True, highlight=False)
        return 1


def _print_started(out: Console, info: BrokerInfo) -> None:
    if info.pid is None:
        out.print(f"[green]Using external Kafka at {info.bootstrap}[/] (metadata OK)")
    elif info.reused:
        out.print(f"[green]Kafka {info.version or '?'} already running at {info.bootstrap}[/] "
                  f"(pid {info.pid}, log: {info.log_path})")
    else:
        out.print(f"[green]Kafka {info.version or '?'} ready at {info.bootstrap}[/] "
                  f"(started in {info.startup_seconds:.1f}s, log: {info.log_path})")


def _print_status(out: Console, st: dict[str, Any]) -> int:
    from rich.table import Table

    table = Table(show_header=False, box=None)
    for key in ("running", "pid", "bootstrap", "version", "data_dir"):
        value = st.get(key)
        table.add_row(key, "-" if value is None else str(value))
    out.print(table)
    return 0 if st["running"] else 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(cli(sys.argv[1:]))
