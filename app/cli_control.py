"""Commands that change what workers serve: models, view cut-overs, backfill."""
from __future__ import annotations

import argparse
import asyncio
import functools
from typing import Callable

from app.cli_common import console, deployment_settings, feature_definitions, print_verdict, tables_console
from kafka_plumbing import settings as settings_mod


def _needs_key(command: Callable[[argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
    """Control commands sign what they send and check what they read: without
    the control key they stop with what to set, not a traceback."""
    @functools.wraps(command)
    def run(args: argparse.Namespace) -> int:
        from kafka_plumbing.signing import ControlKeyError

        try:
            return command(args)
        except ControlKeyError as exc:
            console.print(f"[red]{exc}")
            return 2
    return run


@_needs_key
def cmd_models(args: argparse.Namespace) -> int:
    from rich.table import Table

    from agents.control_plane import CommandError
    from agents.control_client import issue_sync, states_sync
    from models.registry import Registry, RegistryError

    settings = settings_mod.load()
    registry = Registry(settings.registry_dir)
    if args.action == "list":
        states = states_sync(settings)
        table = Table(title=f"models in {settings.registry_dir}")
        for column in ("model", "version", "created", "holdout AUC", "rows", "serving"):
            table.add_column(column)
        for name, versions in registry.list_models().items():
            state = states.get(name)
            for mv in versions:
                held = mv.metadata.get("metrics", {}).get("holdout") or mv.metadata.get("metrics", {}).get("xval") or {}
                role = ("" if state is None else "primary" if state.primary == mv.version
                        else "shadow" if state.shadow == mv.version else "")
                table.add_row(name, str(mv.version), str(mv.metadata.get("created_at", ""))[:19],
                              f"{held.get('auc', float('nan')):.4f}", str(mv.metadata.get("row_counts", {}).get("total", "")), role)
        tables_console().print(table)
        return 0
    if not args.name:
        console.print(f"[red]models {args.action} needs a model name")
        return 2
    version = None
    if args.action in ("deploy", "shadow"):
        if args.version is None:
            console.print(f"[red]models {args.action} needs NAME VERSION")
            return 2
        try:
            version = registry.get(args.name, args.version).version
        except RegistryError as exc:
            console.print(f"[red]{exc}")
            return 2
    try:
        verdict = issue_sync(settings, args.name, args.action, version, by=settings.admin_name)
    except CommandError as exc:
        console.print(f"[red]{exc}")
        return 2
    command = verdict.command or {}
    return print_verdict(verdict, f"{args.name} primary v{command.get('primary')}"
                          + (f", shadow v{command['shadow']}" if command.get("shadow") else ""))


@_needs_key
def cmd_views(args: argparse.Namespace) -> int:
    from rich.table import Table

    from agents.control_client import control_state, issue_cutover
    from agents.control_records import LIVE

    settings = settings_mod.load()
    definitions = feature_definitions(args)
    if args.action == "list":
        state = asyncio.run(control_state(settings, definitions))
        table = Table(title=f"feature views in {definitions.module}")
        for column in ("view", "version", "ref", "source", "serving", "filled partitions"):
            table.add_column(column)
        for view in definitions.views.values():
            fills = state.fill_status(view)
            live = sum(f.status == LIVE for f in fills.values())
            table.add_row(view.name, str(view.version), view.ref, view.source.name,
                          "yes" if state.serving(view.name).version == view.version else "",
                          f"{live}/{len(fills)}")
        tables_console().print(table)
        return 0
    if not args.name or args.version is None:
        console.print("[red]views cutover needs NAME VERSION")
        return 2
    definitions.version(args.name, args.version)  # a clear error before asking the workers
    verdict = asyncio.run(issue_cutover(settings, args.name, args.version, by=settings.admin_name))
    return print_verdict(verdict, f"{args.name} now serves version {args.version}")


@_needs_key
def cmd_backfill(args: argparse.Namespace) -> int:
    from app.backfill_watch import watch_fill
    from agents.control_client import issue_cutover

    settings = deployment_settings(args)
    definitions = feature_definitions(args)
    versions = definitions.versions(args.view)
    version = args.version if args.version is not None else max(versions)
    view = definitions.version(args.view, version)
    if view.source.parent is not None:  # a view on a re-keyed log: the log needs its history first
        from agents.rekey_history import rekey_history

        done, detail = asyncio.run(rekey_history(settings, definitions, view.source, console, args.stall_seconds))
        console.print(detail if done else f"[red]{detail}")
        if not done:
            return 1
    outcome = asyncio.run(watch_fill(settings, definitions, view, console, args.stall_seconds))
    if not outcome.filled:
        console.print(f"[red]{view.name} v{view.version} is not filled[/]: {outcome.detail}")
        return 1
    console.print(f"[green]{view.name} v{view.version} is filled[/] ({outcome.seconds:.1f}s): {outcome.detail}")
    if not args.cutover:
        console.print(f"it serves as `{view.ref}` and with ?version={view.version}; make it the default with "
                      f"`featurestream views cutover {view.name} {view.version}` (or backfill --cutover)")
        return 0
    verdict = asyncio.run(issue_cutover(settings, view.name, view.version, by=settings.admin_name))
    return print_verdict(verdict, f"{view.name} now serves version {view.version}")


@_needs_key
def cmd_retrain(args: argparse.Namespace) -> int:
    from agents.retrain import RetrainError, challenge, challenger_of, decide
    from models.challenge import WAIT, ChallengeRule, RuleError
    from models.pipeline import UnknownModel
    from models.train import TrainError

    settings = deployment_settings(args)
    definitions = feature_definitions(args)
    try:
        if not (args.decide or (args.auto and challenger_of(settings, args.name) is not None)):
            done = challenge(settings, definitions, args.name, args.ntrees, args.max_depth)
            held = done.version.metadata.get("metrics", {}).get("holdout") or {}
            console.print(f"[green]{args.name} v{done.version.version}[/] trained "
                          f"(holdout AUC {held.get('auc', float('nan')):.4f}) -> {done.version.path}")
            return print_verdict(done.shadow, f"{args.name} v{done.version.version} is the challenger (shadow)")
        rule = ChallengeRule(args.metric or settings.retrain_metric,
                             settings.retrain_margin if args.margin is None else args.margin,
                             settings.retrain_min_labelled if args.min_labelled is None else args.min_labelled)
        decision = decide(settings, definitions, args.name, rule)
    except (RetrainError, RuleError, UnknownModel, TrainError) as exc:
        console.print(f"[red]{exc}")
        return 2
    verdict = decision.verdict
    console.print(f"{verdict.outcome}: {verdict.reason}", highlight=False)
    if decision.command is None:
        return 0 if verdict.outcome == WAIT else 1
    what = (f"{args.name} v{decision.challenger} is primary, v{decision.champion} its rollback"
            if verdict.outcome == "promote" else f"{args.name} v{decision.challenger} retired, v{decision.champion} stays")
    return print_verdict(decision.command, what)
