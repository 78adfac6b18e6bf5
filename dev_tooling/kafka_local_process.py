"""The local broker as an operating-system process: launching the JVM (and
formatting its KRaft storage first), finding it again by pid file, stopping
it, serialising start/stop on a data dir, free ports, and reading its logs."""
from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
from pathlib import Path
from typing import Iterator

from dev_tooling.kafka_local_config import BrokerPaths, new_cluster_id

MAIN_CLASS = "kafka.Kafka"
JVM_OPTS = ["-Xmx512m", "-Xms256m", "-XX:+UseG1GC", "-Djava.awt.headless=true"]

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


def alive(pid: int) -> bool:
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
    return bool(cmd) and MAIN_CLASS in cmd.split() and str(paths.properties) in cmd


def _read_pid(paths: BrokerPaths) -> int | None:
    try:
        return int(paths.pid_file.read_text().strip())
    except (OSError, ValueError):
        return None


def running_pid(paths: BrokerPaths) -> int | None:
    """The pid of the broker for this data dir, if it is really running."""
    pid = _read_pid(paths)
    if pid is not None and alive(pid) and _is_our_broker(pid, paths):
        return pid
    return None


@contextlib.contextmanager
def locked(paths: BrokerPaths) -> Iterator[None]:
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


def port_free(port: int, host: str = "127.0.0.1") -> bool:
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


def controller_port(port: int) -> int:
    return port + 1 if port < 65535 and port_free(port + 1) else free_port()


def tail_text(text: str, lines: int = 40) -> str:
    return "\n".join(text.splitlines()[-lines:])


def tail(path: Path, lines: int = 40) -> str:
    try:
        return tail_text(path.read_text(errors="replace"), lines)
    except OSError:
        return f"({path} not found)"


def read_from(path: Path, offset: int) -> str:
    try:
        with open(path, "rb") as fh:
            if fh.seek(0, os.SEEK_END) < offset:  # rolled over since we looked
                offset = 0
            fh.seek(offset)
            return fh.read().decode(errors="replace")
    except OSError:
        return ""


def size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


def format_storage(java: str, libs: Path, paths: BrokerPaths) -> None:
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
            + tail_text(proc.stdout + proc.stderr)
        )


def launch(java: str, libs: Path, paths: BrokerPaths) -> subprocess.Popen[bytes]:
    cmd = [java, *JVM_OPTS, f"-Dlog4j.configuration=file:{paths.log4j}",
           "-cp", f"{libs}/*", MAIN_CLASS, str(paths.properties)]
    with open(paths.console_log, "ab") as out:
        # Own session: Ctrl-C in the shell that ran `kafka start` must not kill it.
        proc = subprocess.Popen(cmd, cwd=paths.data_dir, stdin=subprocess.DEVNULL,
                                stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    _CHILDREN[proc.pid] = proc
    paths.pid_file.write_text(f"{proc.pid}\n")
    return proc



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
        if not alive(pid):
            return True
        time.sleep(0.1)
    return not alive(pid)


def terminate(pid: int, paths: BrokerPaths, timeout: float) -> None:
    """SIGTERM gives Kafka a clean shutdown (no log recovery next start)."""
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    if not _wait_gone(pid, timeout):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
        _wait_gone(pid, 10.0)
    paths.pid_file.unlink(missing_ok=True)




def forget(proc: subprocess.Popen[bytes]) -> None:
    """Drop a child that has exited (it was reaped by ``poll``)."""
    _CHILDREN.pop(proc.pid, None)
