"""``featurestream backfill``: follow a view version's fill until it is live on
every partition, with a progress bar; optionally cut over to it.

The workers do the filling (``agents.backfill``): each one replays the log of
the partitions it owns for the views its feature module defines and has not
filled yet.  This command reads their progress from the control plane."""
from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from agents.control_records import FAILED, LIVE, FillStatus
from agents.control_client import control_state
from kafka_plumbing.log_reader import topic_size
from kafka_plumbing.settings import Settings
from tables.definitions import Definitions
from tables.dsl import FeatureView


@dataclass
class FillOutcome:
    filled: bool
    detail: str
    seconds: float


def _progress(status: dict[int, FillStatus]) -> tuple[int, int]:
    """(records replayed, records to replay) over the partitions."""
    done = total = 0
    for fill in status.values():
        end = fill.end or 0
        total += end
        if fill.status == LIVE:
            done += end
        elif fill.through is not None:
            done += min(fill.through + 1, end)
    return done, total


async def watch_fill(settings: Settings, definitions: Definitions, view: FeatureView, console: Console,
                     stall_seconds: float = 120.0) -> FillOutcome:
    started = last_change = time.monotonic()
    seen: object = None
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=console, transient=False) as bar:
        task = bar.add_task(f"filling {view.name} v{view.version} from the log", total=None)
        while True:
            state = await control_state(settings, definitions)
            status = state.fill_status(view)
            done, total = _progress(status)
            bar.update(task, completed=done, total=total or None)
            failed = {p: f.detail for p, f in status.items() if f.status == FAILED}
            if failed:
                return FillOutcome(False, f"the fill failed: {failed}", time.monotonic() - started)
            if status and all(f.status == LIVE for f in status.values()):
                bar.update(task, completed=total, total=total or 1)
                partitions = ", ".join(f"{p} from offset {f.live_from}" for p, f in status.items())
                return FillOutcome(True, f"live on every partition: {partitions}", time.monotonic() - started)
            if not status and not any(end > first for first, end in (await topic_size(
                    settings, settings.topics.events(view.source.name))).values()):
                return FillOutcome(True, f"{view.source.name} has no events yet: every view starts with the first one",
                                   time.monotonic() - started)
            snapshot = sorted((p, f.status, f.through) for p, f in status.items())
            if snapshot != seen:
                seen, last_change = snapshot, time.monotonic()
            elif time.monotonic() - last_change > stall_seconds:
                return FillOutcome(False, (
                    f"no progress for {stall_seconds:.0f}s: is a worker running with a feature module "
                    f"that defines {view.name} v{view.version} (--features / FS_FEATURES)?"
                ), time.monotonic() - started)
            await asyncio.sleep(1.0)
