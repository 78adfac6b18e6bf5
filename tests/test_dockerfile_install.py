"""The image's install steps, run for real in a fresh venv (no Docker here).

The build stage's COPY lines are replayed into a temporary directory and its
RUN lines are executed there with bash, with ``$VENV`` and ``$FS_CACHE_DIR``
pointed at temporary paths. So a dependency that no longer installs, a file
missing from the COPY list, or a broken genmodel pre-compile fails here
instead of in someone's ``docker build``. Only the apt-get lines are skipped
(system packages; the machine has Java 17 and a JDK).

A fresh venv installs every dependency (h2o's wheel is ~200 MB): measured
here at 38 s on a quiet machine and 78 s with other test runs sharing its two
cores, so it runs with the unit tests (no ``slow`` marker).
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import REPO, SUMMARY_LINES
from tests.dockerfile_recipe import Stage, parse, run_command

# The build stage's absolute paths, and where the check puts them instead.
REMAPPED_ENV = ("VENV", "FS_CACHE_DIR")


def _replay_copies(stage: Stage, context: Path, workdir: Path) -> None:
    for copy in stage.all("COPY"):
        words = copy.value.split()
        assert not any(w.startswith("--") for w in words), f"line {copy.line}: COPY flags are not replayed: {copy.value}"
        *sources, dest = words
        for source in sources:
            origin = context / source
            # Docker: a destination ending in "/" is a directory the sources go into.
            target = workdir / dest / origin.name if dest.endswith("/") else workdir / dest
            if origin.is_dir():
                shutil.copytree(origin, target, ignore=shutil.ignore_patterns("__pycache__"))
            else:
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(origin, target)


def _install_steps(stage: Stage) -> list[tuple[int, str]]:
    steps = []
    for run in stage.all("RUN"):
        command = run_command(run)
        if "apt-get" in command:
            continue  # system packages: the test machine provides Python 3.11 and a JDK
        assert "/opt/" not in command, f"line {run.line}: an absolute path the check cannot remap; use an ENV variable"
        steps.append((run.line, command))
    return steps


def test_build_stage_installs_in_a_fresh_venv(tmp_path: Path) -> None:
    build = parse(REPO / "Dockerfile").stage("build")
    env_paths = {k for k, v in build.env().items() if v.startswith("/")}
    assert env_paths <= set(REMAPPED_ENV), f"build-stage paths not remapped by this check: {env_paths - set(REMAPPED_ENV)}"
    workdirs = build.all("WORKDIR")
    assert len(workdirs) == 1, "one WORKDIR in the build stage (the check replays COPY relative to it)"

    workdir = tmp_path / "src"
    workdir.mkdir()
    _replay_copies(build, REPO, workdir)
    steps = _install_steps(build)
    assert any("pip" in command and "install" in command for _, command in steps), "no pip install step found"

    env = {k: v for k, v in os.environ.items() if not k.startswith(("FS_", "VIRTUAL_ENV", "PYTHON"))}
    env.update(build.env())
    env.update({"VENV": str(tmp_path / "venv"), "FS_CACHE_DIR": str(tmp_path / "cache")})
    # `python` is the base image's Python 3.11; here, the interpreter the test
    # venv was made from (not the venv itself, and whatever `python` is on PATH).
    shims = tmp_path / "bin"
    shims.mkdir()
    (shims / "python").symlink_to(getattr(sys, "_base_executable", sys.executable))
    path = [p for p in env.get("PATH", "").split(os.pathsep) if p and Path(p).resolve() != Path(sys.prefix, "bin").resolve()]
    env["PATH"] = os.pathsep.join([str(shims), *path])
    started = time.monotonic()
    for line, command in steps:
        done = subprocess.run(["bash", "-euo", "pipefail", "-c", command], cwd=workdir, env=env,
                              capture_output=True, text=True, timeout=1500)
        assert done.returncode == 0, f"Dockerfile line {line} failed: {command}\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    elapsed = time.monotonic() - started
    SUMMARY_LINES.append(f"Dockerfile build-stage install steps in a fresh venv: {elapsed:.0f} s")

    venv = tmp_path / "venv"
    assert (venv / "bin" / "featurestream").is_file(), "the console script was not installed"
    shown = subprocess.run([str(venv / "bin" / "featurestream"), "--help"], cwd=tmp_path, env=env,
                           capture_output=True, text=True, timeout=120)
    assert shown.returncode == 0 and "worker" in shown.stdout, shown.stderr
    # What the runtime stage copies and relies on (it has no javac): the jar and the compiled helper.
    cache = tmp_path / "cache" / "h2o"
    assert list(cache.glob("h2o-genmodel-*.jar")), f"no genmodel jar in {cache}"
    assert list(cache.glob("batch-scorer-*/featurestream/genmodel/BatchScorer.class")), f"no compiled helper in {cache}"


def test_steps_the_check_cannot_remap_are_refused() -> None:
    recipe = parse(text=(
        "FROM python:3.11-slim AS build\n"
        "RUN apt-get update && apt-get install -y gcc\n"
        "RUN --mount=type=cache,target=/root/.cache/pip pip install .\n"
        "RUN /opt/venv/bin/pip install .\n"
    ))
    build = recipe.stage("build")
    with pytest.raises(AssertionError, match="absolute path"):
        _install_steps(build)
    build.instructions.pop()
    # apt-get skipped; the cache mount stripped from the command that runs.
    assert _install_steps(build) == [(3, "pip install .")]
