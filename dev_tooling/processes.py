"""Starting and stopping worker (and monitor) processes: the demo, the bench
and the integration tests run real ``featurestream worker`` processes, the
way a user does."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass
class WorkerHandle:
    pid: int
    url: str
    log_path: Path
    process: subprocess.Popen[bytes] | None = None


def http_json(url: str, timeout: float = 5.0) -> tuple[int, Any]:
    """GET a JSON URL; returns (status, body) for 4xx/5xx too."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        body = exc.read()
        try:
            return exc.code, json.loads(body)
        except ValueError:
            return exc.code, body.decode("utf-8", "replace")


def start_worker(
    web_port: int,
    data_dir: Path,
    log_path: Path,
    env: dict[str, str] | None = None,
    features: str | None = None,
) -> WorkerHandle:
    cmd = ["worker", "--web-port", str(web_port), "--data-dir", str(data_dir), "--loglevel", "INFO"]
    if features:
        cmd += ["--features", features]
    return _start(cmd, web_port, log_path, env)


def start_monitor(port: int, log_path: Path, env: dict[str, str] | None = None) -> WorkerHandle:
    """``featurestream monitor`` on ``port``; ``wait_ready`` waits for it as for a worker."""
    return _start(["monitor", "--port", str(port)], port, log_path, env)


def _start(args: list[str], port: int, log_path: Path, env: dict[str, str] | None) -> WorkerHandle:
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "ab") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "app.cli", *args],
            stdout=log,
            stderr=subprocess.STDOUT,
            env={**os.environ, **(env or {})},
            start_new_session=True,  # outlives the demo command; stopped by pid
            cwd=Path(__file__).resolve().parent.parent,
        )
    return WorkerHandle(process.pid, f"http://127.0.0.1:{port}", log_path, process)


def wait_ready(handle: WorkerHandle, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if handle.process is not None and handle.process.poll() is not None:
            raise RuntimeError(f"worker exited with {handle.process.returncode}; see {handle.log_path}")
        try:
            status, body = http_json(handle.url + "/healthz", timeout=2)
            if status == 200 and body.get("ready"):
                return
        except (OSError, ValueError):
            pass
        time.sleep(0.5)
    raise RuntimeError(f"worker not ready after {timeout:.0f}s; see {handle.log_path}")


def alive(pid: int) -> bool:
    """True for a running process; a zombie waiting to be reaped counts as gone."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return True
    return state != "Z"


def stop_pid(pid: int, timeout: float = 30.0) -> bool:
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return False
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            finished, _ = os.waitpid(pid, os.WNOHANG)
            if finished == pid:
                return True
        except ChildProcessError:
            pass  # not our child: poll for existence instead
        if not alive(pid):
            return True
        time.sleep(0.2)
    os.kill(pid, signal.SIGKILL)
    return True
