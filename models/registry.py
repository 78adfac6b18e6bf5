"""File-system model registry.

Layout::

    <root>/<name>/<version>/model.zip       the H2O MOJO
    <root>/<name>/<version>/metadata.json   features + view versions, metrics, baselines...
    <root>/<name>/<version>/report/         index.html + PNGs (optional)

Versions are positive integers per model name (1, 2, 3, ...). A version is
written atomically: everything is staged in ``<root>/.staging-<random>/`` and
then renamed into place, so a reader never sees a half-written version (and a
directory without both ``model.zip`` and ``metadata.json`` is never listed).

Pure file-system code: no H2O import, so the serving side can use it cheaply.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

MOJO_FILE = "model.zip"
METADATA_FILE = "metadata.json"
REPORT_DIR = "report"
_STAGING_PREFIX = ".staging-"
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")


class RegistryError(Exception):
    """A refused registry operation (unknown model/version, bad MOJO, bad name...).

    The message is meant to be shown to a person as is."""


def validate_name(name: str) -> str:
    """Model names become directory names: letters, digits, ``_ . -`` only."""
    if not isinstance(name, str) or not _NAME_RE.match(name) or name in {".", ".."}:
        raise RegistryError(
            f"invalid model name {name!r}: use letters, digits, '_', '.' or '-' "
            "(starting with a letter or digit, at most 128 characters)"
        )
    return name


def parse_version(version: int | str) -> int:
    """Accept ``3`` or ``"3"`` (e.g. from a CLI or URL); refuse anything else."""
    if isinstance(version, bool):
        raise RegistryError(f"invalid version {version!r}: versions are positive integers")
    if isinstance(version, int):
        v = version
    elif isinstance(version, str) and version.strip().isdigit():
        v = int(version.strip())
    else:
        raise RegistryError(f"invalid version {version!r}: versions are positive integers (1, 2, 3, ...)")
    if v < 1:
        raise RegistryError(f"invalid version {version!r}: versions are positive integers (1, 2, 3, ...)")
    return v


def validate_mojo(path: str | os.PathLike[str]) -> dict[str, str]:
    """Cheap structural check of an H2O MOJO file.

    Checks the file exists, is a readable zip archive whose members are not
    corrupt, and contains ``model.ini``. Returns the ``[info]`` section of
    ``model.ini`` (algorithm, h2o_version, mojo_version, ...) as a dict.
    Raises :class:`RegistryError` with a clear message otherwise. This does
    not load the model: h2o-genmodel can still refuse a structurally valid zip.
    """
    p = Path(path)
    if not p.exists():
        raise RegistryError(f"MOJO file not found: {p}")
    if not p.is_file():
        raise RegistryError(f"MOJO path is not a file: {p}")
    if p.stat().st_size == 0:
        raise RegistryError(f"MOJO file is empty: {p}")
    if not zipfile.is_zipfile(p):
        raise RegistryError(f"not a MOJO: {p} is not a zip archive (corrupt or wrong file)")
    try:
        with zipfile.ZipFile(p) as zf:
            names = set(zf.namelist())
            if "model.ini" not in names:
                raise RegistryError(
                    f"not a MOJO: {p} is a zip archive but has no model.ini "
                    "(export the model with model.download_mojo())"
                )
            bad = zf.testzip()
            if bad is not None:
                raise RegistryError(f"corrupt MOJO: member {bad!r} of {p} fails its CRC check")
            ini_text = zf.read("model.ini").decode("utf-8", errors="replace")
    except RegistryError:
        raise
    except (zipfile.BadZipFile, OSError, EOFError, RuntimeError) as exc:
        raise RegistryError(f"corrupt MOJO: cannot read zip archive {p}: {exc}") from exc
    info = _ini_section(ini_text, "info")
    if not info:
        raise RegistryError(f"corrupt MOJO: model.ini in {p} has no [info] section")
    return info


def _ini_section(text: str, section: str) -> dict[str, str]:
    """``key = value`` pairs of one section of model.ini (other sections, such
    as [columns], hold bare lines that configparser cannot read)."""
    out: dict[str, str] = {}
    current = None
    for raw in text.splitlines():
        line = raw.strip()
        if line.startswith("[") and line.endswith("]"):
            current = line[1:-1].strip()
            continue
        if current == section and "=" in line:
            key, _, value = line.partition("=")
            out[key.strip()] = value.strip()
    return out


@dataclass(frozen=True)
class ModelVersion:
    name: str
    version: int
    path: Path
    metadata: dict[str, Any] = field(repr=False, compare=False)

    @property
    def mojo_path(self) -> Path:
        return self.path / MOJO_FILE

    @property
    def metadata_path(self) -> Path:
        return self.path / METADATA_FILE

    @property
    def report_path(self) -> Path | None:
        """``report/index.html`` if the version has a report, else None."""
        p = self.path / REPORT_DIR / "index.html"
        return p if p.exists() else None


class Registry:
    def __init__(self, root: str | os.PathLike[str]):
        self.root = Path(root)

    # ------------------------------------------------------------------ reads
    def _version_dirs(self, name: str) -> list[int]:
        model_dir = self.root / name
        if not model_dir.is_dir():
            return []
        out = []
        for child in model_dir.iterdir():
            if (
                child.is_dir()
                and child.name.isdigit()
                and not child.name.startswith("0")
                and (child / MOJO_FILE).is_file()
                and (child / METADATA_FILE).is_file()
            ):
                out.append(int(child.name))
        return sorted(out)

    def model_names(self) -> list[str]:
        if not self.root.is_dir():
            return []
        return sorted(
            c.name
            for c in self.root.iterdir()
            if c.is_dir() and not c.name.startswith(".") and _NAME_RE.match(c.name) and self._version_dirs(c.name)
        )

    def versions(self, name: str) -> list[int]:
        validate_name(name)
        return self._version_dirs(name)

    def list_models(self) -> dict[str, list[ModelVersion]]:
        """Every model name with its versions, oldest first."""
        return {n: [self._load(n, v) for v in self._version_dirs(n)] for n in self.model_names()}

    def _load(self, name: str, version: int) -> ModelVersion:
        path = self.root / name / str(version)
        meta_path = path / METADATA_FILE
        try:
            metadata = json.loads(meta_path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise RegistryError(f"model {name!r} version {version}: unreadable {meta_path}: {exc}") from exc
        if not isinstance(metadata, dict):
            raise RegistryError(f"model {name!r} version {version}: {meta_path} is not a JSON object")
        return ModelVersion(name=name, version=version, path=path, metadata=metadata)

    def get(self, name: str, version: int | str) -> ModelVersion:
        """One version; ``version`` may also be ``"latest"``."""
        validate_name(name)
        if isinstance(version, str) and version.strip().lower() == "latest":
            return self.latest(name)
        v = parse_version(version)
        known = self._version_dirs(name)
        if not known:
            raise RegistryError(self._unknown_model_msg(name))
        if v not in known:
            raise RegistryError(
                f"model {name!r} has no version {v}; available versions: {', '.join(map(str, known))}"
            )
        return self._load(name, v)

    def latest(self, name: str) -> ModelVersion:
        validate_name(name)
        known = self._version_dirs(name)
        if not known:
            raise RegistryError(self._unknown_model_msg(name))
        return self._load(name, known[-1])

    def next_version(self, name: str) -> int:
        validate_name(name)
        model_dir = self.root / name
        # Count any numeric directory (even an incomplete one) so a number is never reused.
        used = [int(c.name) for c in model_dir.iterdir() if c.name.isdigit()] if model_dir.is_dir() else []
        return max(used, default=0) + 1

    def _unknown_model_msg(self, name: str) -> str:
        names = self.model_names()
        known = ", ".join(repr(n) for n in names) if names else "none"
        return f"unknown model {name!r} in registry {self.root} (known models: {known})"

    # ----------------------------------------------------------------- writes
    def publish(
        self,
        name: str,
        mojo_path: str | os.PathLike[str],
        metadata: dict[str, Any],
        report_dir: str | os.PathLike[str] | None = None,
        version: int | None = None,
    ) -> ModelVersion:
        """Write a new version atomically and return it.

        ``metadata`` gets ``name`` and ``version`` set. With ``version=None``
        the next free number is taken (retrying if a concurrent publisher wins
        the race); with an explicit ``version`` an existing one is refused.
        ``report_dir`` (if given) is copied to ``<version>/report/``.
        """
        validate_name(name)
        validate_mojo(mojo_path)
        if report_dir is not None and not Path(report_dir).is_dir():
            raise RegistryError(f"report directory not found: {report_dir}")
        if not isinstance(metadata, dict):
            raise RegistryError("metadata must be a dict")
        explicit = parse_version(version) if version is not None else None

        self.root.mkdir(parents=True, exist_ok=True)
        (self.root / name).mkdir(exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=_STAGING_PREFIX, dir=self.root))
        try:
            shutil.copyfile(mojo_path, staging / MOJO_FILE)
            if report_dir is not None:
                shutil.copytree(report_dir, staging / REPORT_DIR)
            for _attempt in range(100):
                v = explicit if explicit is not None else self.next_version(name)
                meta = dict(metadata, name=name, version=v)
                try:
                    text = json.dumps(meta, indent=2, sort_keys=False, allow_nan=False, default=str)
                except ValueError as exc:
                    raise RegistryError(f"metadata is not valid JSON (NaN or infinity?): {exc}") from exc
                tmp_meta = staging / (METADATA_FILE + ".tmp")
                with open(tmp_meta, "w", encoding="utf-8") as fh:
                    fh.write(text)
                    fh.flush()
                    os.fsync(fh.fileno())
                os.replace(tmp_meta, staging / METADATA_FILE)
                target = self.root / name / str(v)
                if target.exists():
                    if explicit is not None:
                        raise RegistryError(f"model {name!r} version {v} already exists in {self.root}")
                    continue
                try:
                    os.rename(staging, target)
                except OSError:
                    if explicit is not None or not target.exists():
                        raise
                    continue  # lost a race to another publisher: take the next number
                _fsync_dir(self.root / name)
                return ModelVersion(name=name, version=v, path=target, metadata=meta)
            raise RegistryError(f"could not allocate a version for model {name!r} (too many concurrent publishers)")
        finally:
            if staging.exists():
                shutil.rmtree(staging, ignore_errors=True)


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
