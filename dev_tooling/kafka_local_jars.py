"""The Apache Kafka jars for the local broker: resolved once by Maven from the
packaged ``kafka/pom.xml`` into the shared cache (``FS_CACHE_DIR``), and the
``java`` that runs them."""
from __future__ import annotations

import shutil
import subprocess
import tempfile
import xml.etree.ElementTree as ET
from pathlib import Path

from rich.console import Console

from dev_tooling.kafka_local_process import tail_text
from kafka_plumbing.settings import Settings

POM_PATH = Path(__file__).parent / "kafka" / "pom.xml"

console = Console(stderr=True)


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
                + tail_text(proc.stdout + proc.stderr)
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


def java_path() -> str:
    java = shutil.which("java")
    if java is None:
        raise RuntimeError("Java 17+ ('java') is needed to run Kafka but is not on PATH")
    return java
