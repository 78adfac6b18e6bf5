"""A local H2O cluster for training, and frames uploaded to it.

Offline: H2O is started from the jar inside the pinned wheel (h2o==3.46.0.11,
the last open-source release that exports MOJOs), bound to 127.0.0.1, with a
unique cluster name (so we never attach to someone else's cluster on 54321),
``ignore_config=True`` (no ~/.h2oconfig redirect) and no proxy for localhost.
The bundled jar sends no telemetry; the client's "version is old" notice is a
local date check and is swallowed.
"""
from __future__ import annotations

import contextlib
import io
import os
import shutil
import tempfile
import uuid
from typing import Any, Iterator

import pandas as pd

from models.train_config import TrainError

__all__ = ["h2o_session", "upload_frame"]


@contextlib.contextmanager
def h2o_session(nthreads: int = 2, max_mem_size: str = "2G") -> Iterator[bool]:
    """Use the H2O cluster this process is already connected to, or start a
    private local one and shut it down on exit. Yields True if it started one.

    A cluster the caller started (``h2o.init`` / ``h2o.connect`` before this)
    is reused and left running.
    """
    import h2o

    conn = h2o.connection()
    if conn is not None and conn.connected and h2o.cluster() is not None and h2o.cluster().is_running():
        h2o.no_progress()
        yield False
        return

    ice_root = tempfile.mkdtemp(prefix="featurestream-h2o-")
    name = f"featurestream-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            h2o.init(
                nthreads=nthreads,
                max_mem_size=max_mem_size,
                name=name,
                ice_root=ice_root,
                bind_to_localhost=True,
                ignore_config=True,
                verbose=False,
            )
    except Exception as exc:
        shutil.rmtree(ice_root, ignore_errors=True)
        raise TrainError(f"could not start a local H2O server (Java 8-17 needed on PATH): {exc}") from exc
    h2o.no_progress()
    local = h2o.connection().local_server
    try:
        yield True
    finally:
        with contextlib.redirect_stdout(io.StringIO()):
            try:
                h2o.cluster().shutdown()
            except Exception:
                pass
            if local is not None:
                local.shutdown()
                if getattr(local, "_tempdir", None):
                    shutil.rmtree(local._tempdir, ignore_errors=True)
        shutil.rmtree(ice_root, ignore_errors=True)


def upload_frame(h2o: Any, df: pd.DataFrame, types: dict[str, str], key: str) -> Any:
    """CSV (float repr round-trips exactly) with explicit column types."""
    fd, path = tempfile.mkstemp(suffix=".csv", prefix="featurestream-train-")
    os.close(fd)
    try:
        df.to_csv(path, index=False, na_rep="")
        return h2o.upload_file(path, destination_frame=key, header=1, col_types=types)
    finally:
        os.remove(path)
