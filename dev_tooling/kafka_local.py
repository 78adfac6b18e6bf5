"""A real single-node Apache Kafka broker (KRaft mode) for local dev and tests.

The broker is the upstream ``kafka.Kafka`` main class run from jars that Maven
resolves with the packaged ``kafka/pom.xml`` (kafka_local_jars); there is no
Docker and no tarball download. Everything a broker owns lives in one data
directory (kafka_local_config), so a test can start a throwaway broker in a
temp dir and ``wipe`` it afterwards. This module is the life cycle (start,
stop, status, wipe), the readiness probe and ``featurestream kafka``; the JVM
process itself is kafka_local_process.

Besides PLAINTEXT the broker can open an SSL listener (``SslListener``) for
clients that must use TLS.

If ``FS_KAFKA_BOOTSTRAP`` is set, the local broker is never started: ``start``
only checks that the configured cluster answers a metadata request.
"""
from __future__ import annotations

import argparse
import asyncio
import concurrent.futures
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Coroutine, TypeVar

from rich.console import Console

from dev_tooling.kafka_local_config import (
    BrokerPaths, SslListener, broker_paths, parse_bootstrap, parse_version, render_log4j,
    render_server_properties,
)
from dev_tooling.kafka_local_jars import ensure_libs, java_path
from dev_tooling.kafka_local_process import (
    controller_port, forget, format_storage, free_port, launch, locked, port_free, read_from,
    running_pid, size, tail, terminate,
)
from kafka_plumbing import clients
from kafka_plumbing.settings import Settings, load

__all__ = ["BrokerInfo", "SslListener", "cli", "free_port", "metadata_ok", "start", "status", "stop", "wipe"]

T = TypeVar("T")

READY_MARKER = "Kafka Server started"

console = Console(stderr=True)


@dataclass(frozen=True)
class BrokerInfo:
    bootstrap: str
    version: str | None
    pid: int | None
    log_path: Path | None
    startup_seconds: float
    # True when an already-running broker (or an external cluster) was found.
    reused: bool = False
    # host:port of the SSL listener, if the broker opened one.
    ssl_bootstrap: str | None = None


# --------------------------------------------------------------------------- #
# Metadata probe
# --------------------------------------------------------------------------- #


async def _fetch_broker_count(bootstrap: str, timeout: float, security: clients.Security | None) -> int:
    client = clients.metadata_client(bootstrap, security, request_timeout_ms=max(1000, int(timeout * 1000)))
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
    # Outside the try: a security setting that cannot work is an error, not "no answer".
    security = clients.security(settings) if settings else None
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
        properties = paths.properties.read_text()
    except OSError:
        properties = ""
    version = parse_version(read_from(paths.server_log, 0))
    return BrokerInfo(parse_bootstrap(properties) or "?", version, pid, paths.server_log, 0.0, reused=True,
                      ssl_bootstrap=parse_bootstrap(properties, "SSL"))


def _failure(paths: BrokerPaths, why: str) -> RuntimeError:
    return RuntimeError(
        f"Kafka broker {why}.\n--- {paths.server_log} (tail) ---\n{tail(paths.server_log)}"
        f"\n--- {paths.console_log} (tail) ---\n{tail(paths.console_log, 20)}"
    )


def _wait_ready(proc: subprocess.Popen[bytes], paths: BrokerPaths, bootstrap: str,
                log_offset: int, timeout: float) -> str | None:
    """Block until the log says started and metadata works; return the version."""
    deadline = time.monotonic() + timeout
    started = False
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            forget(proc)
            paths.pid_file.unlink(missing_ok=True)
            raise _failure(paths, f"exited with code {proc.returncode} during start-up")
        text = read_from(paths.server_log, log_offset)
        started = started or READY_MARKER in text
        if started and metadata_ok(bootstrap, timeout=min(5.0, max(0.5, deadline - time.monotonic()))):
            return parse_version(text)
        time.sleep(0.2)
    terminate(proc.pid, paths, 10.0)
    raise _failure(paths, f"was not ready within {timeout:g}s (stopped it)")


def start(settings: Settings, data_dir: Path | None = None, port: int | None = None,
          timeout: float = 90, ssl: SslListener | None = None) -> BrokerInfo:
    """Start (or find) the local broker and return once clients can use it;
    with ``ssl`` it also listens for TLS clients on ``ssl.port``."""
    if settings.kafka_bootstrap:
        return _external_info(settings, timeout)
    paths = broker_paths(settings, data_dir)
    with locked(paths):
        pid = running_pid(paths)
        if pid is not None:
            info = _running_info(paths, pid)
            if port is not None and not info.bootstrap.endswith(f":{port}"):
                raise RuntimeError(
                    f"a broker for {paths.data_dir} is already running at {info.bootstrap}; "
                    "stop it first to change the port"
                )
            if ssl is not None and info.ssl_bootstrap != f"127.0.0.1:{ssl.port}":
                raise RuntimeError(
                    f"a broker for {paths.data_dir} is already running without an SSL listener on "
                    f"port {ssl.port}; stop it first to add one"
                )
            return info
        return _start_new(settings, paths, port or settings.kafka_port, timeout, ssl)


def _start_new(settings: Settings, paths: BrokerPaths, port: int, timeout: float,
               ssl: SslListener | None) -> BrokerInfo:
    t0 = time.monotonic()
    if not port_free(port):
        raise RuntimeError(f"port {port} on 127.0.0.1 is already in use (pick another with --port)")
    if ssl is not None:
        if ssl.port == port or not port_free(ssl.port):
            raise RuntimeError(f"SSL port {ssl.port} on 127.0.0.1 is already in use (pick another with --ssl-port)")
        if not ssl.keystore.is_file():
            raise RuntimeError(f"SSL keystore {ssl.keystore} is not a file")
    libs = ensure_libs(settings)
    java = java_path()
    paths.log_dir.mkdir(parents=True, exist_ok=True)
    paths.properties.write_text(render_server_properties(paths, port, controller_port(port), ssl))
    paths.log4j.write_text(render_log4j(paths))
    format_storage(java, libs, paths)
    # Only lines written by this run count: an old "Kafka Server started" must not.
    offset = size(paths.server_log)
    proc = launch(java, libs, paths)
    bootstrap = f"127.0.0.1:{port}"
    version = _wait_ready(proc, paths, bootstrap, offset, timeout)
    return BrokerInfo(bootstrap, version, proc.pid, paths.server_log, time.monotonic() - t0,
                      ssl_bootstrap=f"127.0.0.1:{ssl.port}" if ssl else None)


def stop(settings: Settings, data_dir: Path | None = None, timeout: float = 30) -> bool:
    """Stop the broker of this data dir; True if one was running."""
    paths = broker_paths(settings, data_dir)
    if not paths.data_dir.exists():
        return False
    with locked(paths):
        pid = running_pid(paths)
        if pid is None:
            # Stale pid file (crash, reboot, or a recycled pid): never signal it.
            paths.pid_file.unlink(missing_ok=True)
            return False
        terminate(pid, paths, timeout)
        return True


def status(settings: Settings, data_dir: Path | None = None) -> dict[str, Any]:
    if settings.kafka_bootstrap:
        ok = metadata_ok(settings.kafka_bootstrap, timeout=5.0, settings=settings)
        return {"running": ok, "pid": None, "bootstrap": settings.kafka_bootstrap,
                "version": None, "data_dir": None, "external": True}
    paths = broker_paths(settings, data_dir)
    pid = running_pid(paths) if paths.data_dir.exists() else None
    info = _running_info(paths, pid) if pid is not None else None
    return {
        "running": pid is not None,
        "pid": pid,
        "bootstrap": info.bootstrap if info else None,
        "ssl_bootstrap": info.ssl_bootstrap if info else None,
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
    p_start.add_argument("--ssl-port", type=int, default=None,
                         help="also open an SSL listener on this port (needs --ssl-keystore)")
    p_start.add_argument("--ssl-keystore", type=Path, default=None,
                         help="PKCS12 keystore with the SSL listener's key and certificate")
    p_start.add_argument("--ssl-keystore-password", default="",
                         help="password of the keystore and of its key")
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
            info = start(settings, ns.data_dir, ns.port, ns.timeout, _ssl_listener(ns))
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
    except (RuntimeError, clients.KafkaSecurityError) as exc:
        console.print(f"[bold red]error:[/] {exc}", markup=True, highlight=False)
        return 1


def _ssl_listener(ns: argparse.Namespace) -> SslListener | None:
    if ns.ssl_port is None and ns.ssl_keystore is None:
        return None
    if ns.ssl_port is None or ns.ssl_keystore is None:
        raise RuntimeError("--ssl-port and --ssl-keystore go together")
    return SslListener(ns.ssl_port, ns.ssl_keystore.resolve(), ns.ssl_keystore_password)


def _print_started(out: Console, info: BrokerInfo) -> None:
    if info.pid is None:
        out.print(f"[green]Using external Kafka at {info.bootstrap}[/] (metadata OK)")
    elif info.reused:
        out.print(f"[green]Kafka {info.version or '?'} already running at {info.bootstrap}[/] "
                  f"(pid {info.pid}, log: {info.log_path})")
    else:
        out.print(f"[green]Kafka {info.version or '?'} ready at {info.bootstrap}[/] "
                  f"(started in {info.startup_seconds:.1f}s, log: {info.log_path})")
    if info.ssl_bootstrap:
        out.print(f"[green]SSL listener at {info.ssl_bootstrap}[/]")


def _print_status(out: Console, st: dict[str, Any]) -> int:
    from rich.table import Table

    table = Table(show_header=False, box=None)
    for key in ("running", "pid", "bootstrap", "ssl_bootstrap", "version", "data_dir"):
        value = st.get(key)
        table.add_row(key, "-" if value is None else str(value))
    out.print(table)
    return 0 if st["running"] else 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(cli(sys.argv[1:]))