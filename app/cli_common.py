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
