"""What every ``featurestream`` command shares: consoles, the feature module, verdicts."""
from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING

from rich.console import Console

from kafka_plumbing import settings as settings_mod
from tables.definitions import Definitions, load

if TYPE_CHECKING:
    from agents.control_records import CommandAudit

console = Console(stderr=True)


def tables_console() -> Console:
    # Piped output gets a fixed width rather than rich's 80 columns, which truncates names.
    return Console() if sys.stdout.isatty() else Console(width=160)


def feature_definitions(args: argparse.Namespace) -> Definitions:
    return load(args.features or settings_mod.load().features_module)


def deployment_settings(args: argparse.Namespace, *, on_kafka: bool = True) -> settings_mod.Settings:
    """The settings, with the partition count of the deployment's existing topics
    (``kafka_plumbing.partition_count``): keys are mapped by the count the topics
    have.  ``on_kafka`` False (a command reading files): the settings as they are."""
    settings = settings_mod.load()
    if not on_kafka:
        return settings
    from kafka_plumbing.topics import resolve_partitions_sync

    return resolve_partitions_sync(settings, list(feature_definitions(args).sources))


def add_features_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--features",
        metavar="MODULE",
        help="Python module defining SOURCES and VIEWS (default: $FS_FEATURES or tables.flights)",
    )


def print_verdict(verdict: "CommandAudit", applied: str) -> int:
    if verdict.result == "applied":
        console.print(f"[green]applied[/]: {applied}")
        return 0
    console.print(f"[red]{verdict.result}[/]: {verdict.reason}" + (f" ({verdict.detail})" if verdict.detail else ""))
    return 1


def add_parallel_flags(parser: argparse.ArgumentParser) -> None:
    """``--workers`` / ``--dask``: where the offline engine replays a topic's partitions."""
    where = parser.add_mutually_exclusive_group()
    where.add_argument(
        "--workers", type=_at_least_one, default=1, metavar="N",
        help="replay the topic's partitions in N local processes, each partition whole and in order "
             "(default 1: in this process); the output is byte-identical, and at most one process per "
             "partition is busy",
    )
    where.add_argument(
        "--dask", metavar="SCHEDULER",
        help="replay the partitions on a dask.distributed cluster, e.g. tcp://10.0.0.5:8786; its workers "
             "need this package, the feature module and access to Kafka (the FS_* settings travel with the jobs)",
    )


def _at_least_one(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {value}")
    return value
