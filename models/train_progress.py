"""Progress of a training run: one bar per step on stderr (stdout stays clean for the CLI)."""
from __future__ import annotations

import contextlib
from typing import Any, Callable, Iterator

__all__ = ["Steps"]


class Steps:
    """Rich progress on stderr (stdout stays clean for the CLI), or nothing."""

    def __init__(self, enabled: bool, steps: list[str]) -> None:
        self.enabled = enabled
        self.steps = steps
        self._progress: Any = None  # rich.progress.Progress, imported only when shown
        self._overall: Any = None

    def __enter__(self) -> "Steps":
        if self.enabled:
            from rich.console import Console
            from rich.progress import BarColumn, Progress, SpinnerColumn, TaskProgressColumn, TextColumn, TimeElapsedColumn

            self._progress = Progress(
                SpinnerColumn(),
                TextColumn("[bold]{task.description}"),
                BarColumn(),
                TaskProgressColumn(),
                TimeElapsedColumn(),
                console=Console(stderr=True),
                transient=False,
            )
            self._progress.__enter__()
            self._overall = self._progress.add_task("train", total=len(self.steps))
        return self

    def __exit__(self, *exc: Any) -> None:
        if self._progress is not None:
            if exc[0] is None:
                self._progress.update(self._overall, description="train: done")
            self._progress.__exit__(*exc)

    @contextlib.contextmanager
    def step(self, name: str, total: float | None = 1.0) -> Iterator[Callable[[float], None]]:
        if self._progress is None:
            yield lambda fraction: None
            return
        self._progress.update(self._overall, description=f"train: {name}")
        task = self._progress.add_task(f"  {name}", total=total)

        def update(fraction: float) -> None:
            self._progress.update(task, completed=fraction * (total or 1.0))

        yield update
        self._progress.update(task, completed=total or 1.0, total=total or 1.0)
        self._progress.advance(self._overall)
