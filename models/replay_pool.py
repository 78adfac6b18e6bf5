"""Where partition replays run: this process, a pool of local processes, or a
Dask cluster; all three behind ``concurrent.futures.Executor``, so the
partition driver (``models.parallel_replay``) has one code path."""
from __future__ import annotations

import multiprocessing
from concurrent.futures import Executor, ProcessPoolExecutor
from contextlib import contextmanager
from typing import Iterator

__all__ = ["describe", "replay_pool"]


@contextmanager
def replay_pool(workers: int = 1, dask: str | None = None) -> Iterator[Executor | None]:
    """``dask``: a ``dask.distributed`` scheduler address; else ``workers`` local
    processes; None (replay in this process, as before) for one worker."""
    if workers < 1:
        raise ValueError(f"--workers must be at least 1, not {workers}")
    if dask:
        from distributed import Client

        with Client(dask) as client:
            # pure=False: a job reads Kafka, so Dask must not reuse an earlier run's result by its arguments.
            with client.get_executor(pure=False) as pool:
                yield pool
        return
    if workers == 1:
        yield None
        return
    # spawn, not fork: the caller has threads (the progress bar, the log reader's), and a
    # forked child can inherit a lock one of them held.
    with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn")) as pool:
        yield pool


def describe(workers: int, dask: str | None) -> str:
    if dask:
        return f"Dask at {dask}"
    return f"{workers} processes" if workers > 1 else "this process"
