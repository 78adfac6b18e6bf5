"""The h2o-genmodel runtime inside this process: the jar, our batch helper, the JVM.

The runtime is ``h2o-genmodel.jar``, which ships *inside* the h2o wheel at
``www/3/h2o-genmodel.jar`` within ``h2o/backend/bin/h2o.jar``. It is extracted
once into the cache directory (named with the h2o version). Next to it sits
the compiled batch helper (``models/java/.../BatchScorer.java``, compiled
with ``javac`` at first use, into a directory named for the source's hash and
the h2o version). Both go on the classpath of the JVM that JPype starts inside
this process, once. Everything Java/JPype is here and in
:mod:`models.mojo_scorer`; callers of the scorer never see it.
"""
from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import tempfile
import threading
import zipfile
from pathlib import Path
from kafka_plumbing import settings

__all__ = ["Java", "batch_helper_classes", "ensure_jvm", "genmodel_jar", "jvm"]

_GENMODEL_ENTRY = "www/3/h2o-genmodel.jar"
_JVM_ARGS = ("-Xmx512m", "-Xss4m", "-Djava.awt.headless=true")
_HELPER_SOURCE = Path(__file__).resolve().parent / "java" / "featurestream" / "genmodel" / "BatchScorer.java"
_HELPER_CLASS = "featurestream.genmodel.BatchScorer"
_jvm_lock = threading.Lock()


def _default_cache_dir() -> Path:
    return settings.load().cache_dir / "h2o"


def _h2o_jar() -> Path:
    import h2o  # imported lazily: importing h2o is slow and starts nothing

    jar = Path(h2o.__file__).resolve().parent / "backend" / "bin" / "h2o.jar"
    if not jar.is_file():
        raise FileNotFoundError(f"h2o.jar not found in the h2o wheel at {jar}")
    return jar


def _h2o_version() -> str:
    import h2o

    return str(h2o.__version__)


# --------------------------------------------------------------------------- files


def genmodel_jar(cache_dir: Path | None = None) -> Path:
    """Return the path of h2o-genmodel.jar, extracting it from the wheel once.

    Written to ``<cache_dir>/h2o-genmodel-<h2o version>.jar`` (default cache
    dir: ``settings.cache_dir / "h2o"``) through a temporary file and an
    atomic rename, so concurrent processes never see a partial jar.
    """
    cache_dir = Path(cache_dir) if cache_dir is not None else _default_cache_dir()
    target = cache_dir / f"h2o-genmodel-{_h2o_version()}.jar"
    if target.is_file() and target.stat().st_size > 0:
        return target
    cache_dir.mkdir(parents=True, exist_ok=True)
    source = _h2o_jar()
    fd, tmp_name = tempfile.mkstemp(prefix=target.name + ".", suffix=".tmp", dir=cache_dir)
    try:
        with os.fdopen(fd, "wb") as out, zipfile.ZipFile(source) as outer:
            try:
                entry = outer.open(_GENMODEL_ENTRY)
            except KeyError as exc:
                raise FileNotFoundError(f"{_GENMODEL_ENTRY} not found inside {source}") from exc
            with entry:
                while chunk := entry.read(1 << 20):
                    out.write(chunk)
            out.flush()
            os.fsync(out.fileno())
        zipfile.ZipFile(tmp_name).close()  # sanity: a readable jar
        os.replace(tmp_name, target)
    except BaseException:
        try:
            os.unlink(tmp_name)
        except FileNotFoundError:
            pass
        raise
    return target


def batch_helper_classes(cache_dir: Path | None = None) -> Path:
    """Return the class directory of the compiled batch helper, compiling it once.

    The directory is named for the source's hash and the h2o version, so an
    edited helper or another genmodel is compiled afresh. It is compiled into a
    temporary directory and renamed into place; when two processes race, the
    first rename wins and the other's copy is discarded.
    """
    cache_dir = Path(cache_dir) if cache_dir is not None else _default_cache_dir()
    source = _HELPER_SOURCE.read_bytes()
    digest = hashlib.sha256(source).hexdigest()[:16]
    target = cache_dir / f"batch-scorer-{digest}-{_h2o_version()}"
    class_file = target / (_HELPER_CLASS.replace(".", "/") + ".class")
    if class_file.is_file():
        return target
    jar = genmodel_jar(cache_dir)
    javac = shutil.which("javac")
    if javac is None:
        raise FileNotFoundError(
            "javac not found on PATH: a JDK (8 or later) is needed once to compile the MOJO batch helper"
        )
    tmp = Path(tempfile.mkdtemp(prefix=target.name + ".", suffix=".tmp", dir=cache_dir))
    try:
        # --release 8: genmodel itself targets Java 8, so any JVM that runs it runs this
        done = subprocess.run(
            [javac, "--release", "8", "-nowarn", "-cp", str(jar), "-d", str(tmp), str(_HELPER_SOURCE)],
            capture_output=True, text=True,
        )
        if done.returncode != 0:
            raise RuntimeError(f"javac failed to compile {_HELPER_SOURCE}:\n{done.stderr.strip()}")
        try:
            os.rename(tmp, target)
        except OSError:
            if not class_file.is_file():
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target


# --------------------------------------------------------------------------- JVM


class Java:
    """Handles to the Java classes used, resolved once the JVM runs."""

    def __init__(self) -> None:
        import jpype

        self.JString = jpype.JString
        self.JException = jpype.JException
        self.double_array = jpype.JArray(jpype.JDouble)
        self.int_array = jpype.JArray(jpype.JInt)
        self.string_array = jpype.JArray(jpype.JString)
        self.string_matrix = jpype.JArray(jpype.JString, 2)
        self.MojoModel = jpype.JClass("hex.genmodel.MojoModel")
        self.Wrapper = jpype.JClass("hex.genmodel.easy.EasyPredictModelWrapper")
        self.Config = jpype.JClass("hex.genmodel.easy.EasyPredictModelWrapper$Config")
        self.BatchScorer = jpype.JClass(_HELPER_CLASS)


class _Runtime:
    """The one Java handle set of this process (a JVM cannot restart in-process)."""

    java: Java | None = None


def ensure_jvm(cache_dir: Path | None = None) -> None:
    """Start JPype's JVM (once per process) with h2o-genmodel and the batch helper on the classpath.

    Idempotent and guarded by a lock. If a JVM is already running (started by
    other code in this process), the jar and the helper are added to JPype's
    dynamic class loader with ``jpype.addClassPath``. Limitations of that
    case: the heap size and JVM options are whatever the other code chose; if
    the system classpath already holds another h2o-genmodel (or a full
    h2o.jar), those classes win over ours; and a JVM that was shut down cannot
    be restarted in the same process (a JPype/JNI restriction).
    """
    if _Runtime.java is not None:
        return
    with _jvm_lock:
        if _Runtime.java is not None:
            return
        import jpype

        jar = genmodel_jar(cache_dir)
        helper = batch_helper_classes(cache_dir)
        if not jpype.isJVMStarted():
            jpype.startJVM(*_JVM_ARGS, classpath=[str(jar), str(helper)], convertStrings=False)
        else:
            try:
                jpype.JClass("hex.genmodel.easy.EasyPredictModelWrapper")
            except Exception:  # not visible yet: add the jar dynamically
                jpype.addClassPath(str(jar))
            try:
                jpype.JClass(_HELPER_CLASS)
            except Exception:
                jpype.addClassPath(str(helper))
        _Runtime.java = Java()


def jvm() -> Java:
    """The Java handles, starting the JVM on first use."""
    # Threads other than the one that started the JVM are attached by JPype
    # automatically on their first Java call.
    ensure_jvm()
    assert _Runtime.java is not None
    return _Runtime.java
