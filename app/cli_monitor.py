"""Monitoring commands: ``featurestream monitor``, ``featurestream skew-audit``."""
from __future__ import annotations

import argparse
import asyncio
import logging
import time

from app.cli_common import console, deployment_settings, feature_definitions, tables_console


def cmd_monitor(args: argparse.Namespace) -> int:
    from app.monitor_service import serve

    logging.basicConfig(level=logging.INFO, format="[%(asctime)s] [monitor] %(levelname)s %(message)s")
    asyncio.run(serve(deployment_settings(args), feature_definitions(args), args.host, args.port))
    return 0


def cmd_skew_audit(args: argparse.Namespace) -> int:
    """One audit, or one every ``--every`` seconds until interrupted. Exit status 1 when the last audit
    found a mismatch (for a cron job or CI), 0 otherwise."""
    from rich.table import Table

    from agents.skew_auditor import SkewAuditor

    definitions = feature_definitions(args)
    for name in args.source or []:
        definitions.source(name)  # an unknown source is an error before anything is read
    settings = deployment_settings(args)
    sample = settings.skew_audit_sample if args.sample is None else args.sample
    if sample < 1:
        console.print(f"[red]--sample / FS_SKEW_AUDIT_SAMPLE must be at least 1, not {sample}", highlight=False)
        return 2
    every = settings.skew_audit_interval_s if args.every is None else args.every
    auditor = SkewAuditor(settings, definitions, sample, every, args.source)
    auditor.resume()
    while True:
        reports, alerts, snapshot = auditor.round()
        auditor.publish(alerts, snapshot)
        table = Table(title=f"skew audit {snapshot.taken_at}")
        for column in ("source", "feature-log records", "predictions", "mismatched", "rate"):
            table.add_column(column)
        for r in reports:
            table.add_row(r.source, str(r.checked["feature_log"]), str(r.checked["prediction"]),
                          str(sum(r.mismatched.values())), f"{r.rate:.4f}")
        tables_console().print(table)
        for alert in alerts:
            state = "[green]recovered[/]" if alert.recovered else "[red]SKEW[/]"
            console.print(f"{state} {alert.where['source']} {alert.where['view']}.{alert.where['feature']}"
                          f" {alert.where['event']}: {alert.detail}", highlight=False)
        if every <= 0:
            return 1 if any(r.mismatches for r in reports) else 0
        time.sleep(every)
