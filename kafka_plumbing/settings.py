"""Runtime settings, read once from environment variables.

Every knob a deployment needs is an ``FS_*`` variable so a container can be
configured without flags; CLI flags override them per command.
"""
from __future__ import annotations

import getpass
import os
from dataclasses import dataclass, field
from pathlib import Path

from kafka_plumbing.catalogue import Topics


def _env(name: str, default: str) -> str:
    value = os.environ.get(name)
    return value if value not in (None, "") else default


def _path_env(name: str) -> Path | None:
    value = os.environ.get(name)
    return Path(value).resolve() if value else None


def _flag_env(name: str) -> bool:
    return _env(name, "0").lower() in ("1", "true", "yes", "on")


def _os_user() -> str:
    try:
        return getpass.getuser()
    except (OSError, KeyError):  # a container user without a name
        return "admin"


SECURITY_PROTOCOLS = ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL")
PROCESSING_GUARANTEES = ("at_least_once", "exactly_once")
# Up to this many workers share a deployment's load (one partition of each source log is one worker's).
DEFAULT_PARTITIONS = 12


@dataclass(frozen=True)
class Settings:
    topic_prefix: str = field(default_factory=lambda: _env("FS_TOPIC_PREFIX", "fs"))
    # Set to use an existing cluster; empty means the local broker started by
    # `featurestream kafka start`.
    kafka_bootstrap: str = field(default_factory=lambda: _env("FS_KAFKA_BOOTSTRAP", ""))
    kafka_port: int = field(default_factory=lambda: int(_env("FS_KAFKA_PORT", "9092")))
    # Working state of this checkout: broker data, worker stores, registry.
    home: Path = field(default_factory=lambda: Path(_env("FS_HOME", ".featurestream")).resolve())
    # Downloaded Kafka jars are shared by every checkout on the machine.
    cache_dir: Path = field(
        default_factory=lambda: Path(
            _env("FS_CACHE_DIR", str(Path.home() / ".cache" / "featurestream"))
        )
    )
    # Under FS_HOME unless set: one volume holds a worker's stores and the models it serves.
    registry_dir: Path = field(default_factory=lambda: Path(
        _env("FS_REGISTRY", str(Path(_env("FS_HOME", ".featurestream")) / "registry"))).resolve())
    # One bearer token with every scope, named ``admin`` (kept from before scoped tokens).
    admin_token: str = field(default_factory=lambda: _env("FS_ADMIN_TOKEN", ""))
    # Scoped bearer tokens ``name:scope[,scope]:token;...`` and/or a file of them
    # (JSON, or one ``name:scopes:token`` a line); see app/tokens.py.
    tokens: str = field(default_factory=lambda: _env("FS_TOKENS", ""))
    tokens_file: Path | None = field(default_factory=lambda: _path_env("FS_TOKENS_FILE"))
    # Reads (GET /features, /views, /models, /stats) need a ``read`` token; POST /score a ``score`` one.
    require_read_token: bool = field(default_factory=lambda: _flag_env("FS_REQUIRE_READ_TOKEN"))
    require_score_token: bool = field(default_factory=lambda: _flag_env("FS_REQUIRE_SCORE_TOKEN"))
    # Tenants ``tenant:name[,name];...``: each owns sources, views and models (by name; a source
    # brings its views, re-keyed logs and models).  With tenants, reads and scoring need tokens.
    tenants: str = field(default_factory=lambda: _env("FS_TENANTS", ""))
    # The HMAC key that signs control records (kafka_plumbing/signing.py): held by
    # admins and workers; the file is read when the variable is empty.
    control_key: str = field(default_factory=lambda: _env("FS_CONTROL_KEY", ""))
    control_key_file: Path | None = field(default_factory=lambda: _path_env("FS_CONTROL_KEY_FILE"))
    # Who the command line signs commands as.
    admin_name: str = field(default_factory=lambda: _env("FS_ADMIN_NAME", _os_user()))
    # A signed command older than this (or this far in the future) is refused as stale:
    # a command copied off the control topic cannot be replayed later.
    control_max_age_s: float = field(default_factory=lambda: float(_env("FS_CONTROL_MAX_AGE_S", "300")))
    web_port: int = field(default_factory=lambda: int(_env("FS_WEB_PORT", "6066")))
    features_module: str = field(default_factory=lambda: _env("FS_FEATURES", "tables.flights"))
    app_id: str = field(default_factory=lambda: _env("FS_APP_ID", "featurestream"))
    # Partitions of the keyed topics a new deployment creates; where the topics
    # exist, their count wins (kafka_plumbing.partition_count: adopted when
    # FS_PARTITIONS is unset, refused when it is set to another count).
    partitions: int = field(default_factory=lambda: int(_env("FS_PARTITIONS", str(DEFAULT_PARTITIONS))))
    # Where the count came from, not part of it (so not compared): a child
    # process gets FS_PARTITIONS from as_env and maps by exactly that count.
    partitions_set: bool = field(default_factory=lambda: _env("FS_PARTITIONS", "") != "", compare=False)
    replication: int = field(default_factory=lambda: int(_env("FS_REPLICATION", "1")))
    # Retention of the topics where it is a choice, in ms (-1: forever), given
    # to new topics; the logs that are the source of truth always keep everything.
    predictions_retention_ms: int = field(
        default_factory=lambda: int(_env("FS_PREDICTIONS_RETENTION_MS", str(7 * 24 * 3600 * 1000))))
    audit_retention_ms: int = field(default_factory=lambda: int(_env("FS_AUDIT_RETENTION_MS", "-1")))
    # URL other workers use to reach this one (routing of web requests).
    canonical_url: str = field(default_factory=lambda: _env("FS_CANONICAL_URL", ""))
    max_payload_bytes: int = field(
        default_factory=lambda: int(_env("FS_MAX_PAYLOAD_BYTES", str(64 * 1024)))
    )
    # The worker's HTTP server: the largest request body it reads (larger is
    # a 413 before a view runs); how long a connection may sit without a whole
    # request head (from connect, or from its last response: slow or idle
    # clients are closed, so they cannot hold the server's connections); and
    # how long a request's body may take to arrive (then 408). Keep the idle
    # timeout above the 15 s keep-alive of the clients that reuse connections
    # (workers forwarding requests to each other), or a reused connection can
    # be closed under a request.
    http_max_body_bytes: int = field(
        default_factory=lambda: int(_env("FS_HTTP_MAX_BODY_BYTES", str(1024 * 1024)))
    )
    http_idle_timeout_s: float = field(default_factory=lambda: float(_env("FS_HTTP_IDLE_TIMEOUT", "30")))
    http_body_timeout_s: float = field(default_factory=lambda: float(_env("FS_HTTP_BODY_TIMEOUT", "15")))
    # POST /features: the most entity rows and views one request may ask for
    # (413 beyond): a request's reads are rows x views, each a store lookup
    # or a share of a forwarded request, answered while the request waits.
    http_batch_max_rows: int = field(default_factory=lambda: int(_env("FS_HTTP_BATCH_MAX_ROWS", "1000")))
    http_batch_max_views: int = field(default_factory=lambda: int(_env("FS_HTTP_BATCH_MAX_VIEWS", "20")))
    # A batch of events is flushed (outputs, state, offsets) when it holds this
    # many events, or this many milliseconds after its first: the bound on
    # the latency a batch adds and on the size of one state flush.
    flush_events: int = field(default_factory=lambda: int(_env("FS_FLUSH_EVENTS", "1000")))
    flush_ms: float = field(default_factory=lambda: float(_env("FS_FLUSH_MS", "10")))
    # An event whose model reads views of other logs (ModelSpec.inputs) is held
    # until those logs' watermarks pass its time; after this many seconds it is
    # scored with what is known, its prediction marked complete=false.
    xsource_max_wait_s: float = field(default_factory=lambda: float(_env("FS_XSOURCE_MAX_WAIT_S", "30")))
    # at_least_once: a kill can send a flush's outputs twice (never its state);
    # exactly_once: outputs, state and offsets in one Kafka transaction per flush.
    processing_guarantee: str = field(
        default_factory=lambda: _env("FS_PROCESSING_GUARANTEE", "at_least_once").lower()
    )
    # Every this many seconds a worker publishes its metrics to fs.metrics
    # (agents.metrics_publisher); 0 publishes none.  Table key counts in
    # /metrics are refreshed at most this often too.
    metrics_interval_s: float = field(default_factory=lambda: float(_env("FS_METRICS_INTERVAL_S", "10")))
    # Live model quality and drift (agents.quality_monitor): a task in the worker's process, so
    # it shares the worker's CPU (docs/BENCHMARKS.md measures it); one worker of a group runs it.
    monitor: bool = field(default_factory=lambda: _env("FS_MONITOR", "0") not in ("0", "false", "no"))
    # On start the monitor reads the predictions and label logs from this far back (wall time of the records).
    monitor_lookback_s: float = field(default_factory=lambda: float(_env("FS_MONITOR_LOOKBACK_S", "3600")))
    # The console (GET /) shows this many of the newest alerts (fs.alerts) and dead letters (fs.dlq),
    # read by a consumer of the worker's (agents.console_feed); 0 reads neither.
    console_recent: int = field(default_factory=lambda: int(_env("FS_CONSOLE_RECENT", "20")))
    # Rolling quality: the pairs whose label time is within this of the newest label time (event time).
    quality_window_s: float = field(default_factory=lambda: float(_env("FS_QUALITY_WINDOW_S", "86400")))
    # A label counts for a prediction if its event time is at most this after the scored event's.
    quality_horizon_s: float = field(default_factory=lambda: float(_env("FS_QUALITY_HORIZON_S", "86400")))
    # Drift: tumbling event-time windows of this length; PSI above the threshold raises an alert;
    # windows with fewer scored events are not judged (PSI of a handful of events is noise).
    drift_window_s: float = field(default_factory=lambda: float(_env("FS_DRIFT_WINDOW_S", "3600")))
    drift_psi_threshold: float = field(default_factory=lambda: float(_env("FS_DRIFT_PSI_THRESHOLD", "0.2")))
    drift_min_events: int = field(default_factory=lambda: int(_env("FS_DRIFT_MIN_EVENTS", "100")))
    # Champion/challenger (featurestream retrain --decide): the challenger is promoted when it beats
    # the champion by more than the margin on the metric (auc or log_loss), over at least this many
    # labelled events both scored; retired otherwise.
    retrain_metric: str = field(default_factory=lambda: _env("FS_RETRAIN_METRIC", "auc"))
    retrain_margin: float = field(default_factory=lambda: float(_env("FS_RETRAIN_MARGIN", "0.005")))
    retrain_min_labelled: int = field(default_factory=lambda: int(_env("FS_RETRAIN_MIN_LABELLED", "500")))
    # Health alerts on fs.alerts (agents.health_rules), judged on each fs.metrics snapshot (so
    # off with FS_METRICS_INTERVAL_S=0): error rate and latency over the last FS_ALERT_WINDOW_S,
    # lag now.  A threshold of 0 turns its rule off.
    alerts: bool = field(default_factory=lambda: _env("FS_ALERTS", "1") not in ("0", "false", "no"))
    alert_window_s: float = field(default_factory=lambda: float(_env("FS_ALERT_WINDOW_S", "60")))
    # The error rate's denominator is at least this many records: a handful cannot alert, a quiet window clears.
    alert_min_events: int = field(default_factory=lambda: int(_env("FS_ALERT_MIN_EVENTS", "100")))
    alert_error_rate: float = field(default_factory=lambda: float(_env("FS_ALERT_ERROR_RATE", "0.05")))
    alert_lag: float = field(default_factory=lambda: float(_env("FS_ALERT_LAG", "50000")))
    alert_latency_p99_s: float = field(default_factory=lambda: float(_env("FS_ALERT_LATENCY_P99_S", "5")))
    alert_http_p99_s: float = field(default_factory=lambda: float(_env("FS_ALERT_HTTP_P99_S", "1")))
    # The skew audit (``featurestream skew-audit``, a process of its own): every this many seconds
    # (0: one audit and exit), the newest this many records per partition of each feature log and
    # of fs.predictions, recomputed from the log.
    skew_audit_interval_s: float = field(default_factory=lambda: float(_env("FS_SKEW_AUDIT_INTERVAL_S", "0")))
    skew_audit_sample: int = field(default_factory=lambda: int(_env("FS_SKEW_AUDIT_SAMPLE", "20")))
    # GET /features served by a read process of the worker's own (app.reader),
    # so reads never wait behind ingest; 0 serves them in the worker's loop.
    read_process: bool = field(default_factory=lambda: _env("FS_READ_PROCESS", "1") not in ("0", "false", "no"))
    # How every Kafka client (and the Faust app) talks to the brokers; built
    # into client arguments by kafka_plumbing.clients.
    kafka_security_protocol: str = field(
        default_factory=lambda: _env("FS_KAFKA_SECURITY_PROTOCOL", "PLAINTEXT").upper()
    )
    kafka_sasl_mechanism: str = field(default_factory=lambda: _env("FS_KAFKA_SASL_MECHANISM", "PLAIN").upper())
    kafka_sasl_username: str = field(default_factory=lambda: _env("FS_KAFKA_SASL_USERNAME", ""))
    kafka_sasl_password: str = field(default_factory=lambda: _env("FS_KAFKA_SASL_PASSWORD", ""))
    # CA bundle that signs the brokers' certificates; unset trusts the system CAs.
    kafka_ssl_cafile: Path | None = field(default_factory=lambda: _path_env("FS_KAFKA_SSL_CAFILE"))
    # Client certificate and key, for brokers that require mutual TLS.
    kafka_ssl_certfile: Path | None = field(default_factory=lambda: _path_env("FS_KAFKA_SSL_CERTFILE"))
    kafka_ssl_keyfile: Path | None = field(default_factory=lambda: _path_env("FS_KAFKA_SSL_KEYFILE"))
    kafka_ssl_key_password: str = field(default_factory=lambda: _env("FS_KAFKA_SSL_KEY_PASSWORD", ""))

    def __post_init__(self) -> None:
        if self.partitions < 1:
            raise ValueError(f"FS_PARTITIONS={self.partitions}: a topic needs at least one partition")
        for name, ms in (("FS_PREDICTIONS_RETENTION_MS", self.predictions_retention_ms),
                         ("FS_AUDIT_RETENTION_MS", self.audit_retention_ms)):
            if ms == 0 or ms < -1:
                raise ValueError(f"{name}={ms}: a retention in milliseconds, or -1 to keep everything")
        if self.processing_guarantee not in PROCESSING_GUARANTEES:
            raise ValueError(
                f"FS_PROCESSING_GUARANTEE={self.processing_guarantee!r} is not one of "
                + ", ".join(PROCESSING_GUARANTEES)
            )
        if self.kafka_security_protocol not in SECURITY_PROTOCOLS:
            raise ValueError(
                f"FS_KAFKA_SECURITY_PROTOCOL={self.kafka_security_protocol!r} is not one of "
                + ", ".join(SECURITY_PROTOCOLS)
            )

    @property
    def exactly_once(self) -> bool:
        return self.processing_guarantee == "exactly_once"

    @property
    def bootstrap(self) -> str:
        return self.kafka_bootstrap or f"127.0.0.1:{self.kafka_port}"

    @property
    def topics(self) -> Topics:
        return Topics(self.topic_prefix)

    def as_env(self) -> dict[str, str]:
        """The variables that give a child process (a worker) these settings."""
        env = {
            "FS_TOPIC_PREFIX": self.topic_prefix,
            "FS_APP_ID": self.app_id,
            "FS_HOME": str(self.home),
            "FS_PARTITIONS": str(self.partitions),
            "FS_REGISTRY": str(self.registry_dir),
            "FS_FEATURES": self.features_module,
            "FS_FLUSH_EVENTS": str(self.flush_events),
            "FS_FLUSH_MS": str(self.flush_ms),
            "FS_XSOURCE_MAX_WAIT_S": str(self.xsource_max_wait_s),
            "FS_READ_PROCESS": "1" if self.read_process else "0",
            "FS_PROCESSING_GUARANTEE": self.processing_guarantee,
            "FS_METRICS_INTERVAL_S": str(self.metrics_interval_s),
            "FS_MONITOR": "1" if self.monitor else "0",
            "FS_MONITOR_LOOKBACK_S": str(self.monitor_lookback_s),
            "FS_CONSOLE_RECENT": str(self.console_recent),
            "FS_QUALITY_WINDOW_S": str(self.quality_window_s),
            "FS_QUALITY_HORIZON_S": str(self.quality_horizon_s),
            "FS_DRIFT_WINDOW_S": str(self.drift_window_s),
            "FS_DRIFT_PSI_THRESHOLD": str(self.drift_psi_threshold),
            "FS_DRIFT_MIN_EVENTS": str(self.drift_min_events),
            "FS_RETRAIN_METRIC": self.retrain_metric,
            "FS_RETRAIN_MARGIN": str(self.retrain_margin),
            "FS_RETRAIN_MIN_LABELLED": str(self.retrain_min_labelled),
            "FS_ALERTS": "1" if self.alerts else "0",
            "FS_ALERT_WINDOW_S": str(self.alert_window_s),
            "FS_ALERT_MIN_EVENTS": str(self.alert_min_events),
            "FS_ALERT_ERROR_RATE": str(self.alert_error_rate),
            "FS_ALERT_LAG": str(self.alert_lag),
            "FS_ALERT_LATENCY_P99_S": str(self.alert_latency_p99_s),
            "FS_ALERT_HTTP_P99_S": str(self.alert_http_p99_s),
        }
        env.update(self.auth_env())
        if self.kafka_bootstrap:
            env["FS_KAFKA_BOOTSTRAP"] = self.kafka_bootstrap
        else:
            env["FS_KAFKA_PORT"] = str(self.kafka_port)
        return {**env, **self.security_env()}

    def auth_env(self) -> dict[str, str]:
        """The control-key and token variables of these settings that are set."""
        values: dict[str, str | Path | None] = {
            "FS_CONTROL_KEY": self.control_key,
            "FS_CONTROL_KEY_FILE": self.control_key_file,
            "FS_ADMIN_TOKEN": self.admin_token,
            "FS_TOKENS": self.tokens,
            "FS_TOKENS_FILE": self.tokens_file,
            "FS_REQUIRE_READ_TOKEN": "1" if self.require_read_token else "",
            "FS_REQUIRE_SCORE_TOKEN": "1" if self.require_score_token else "",
            "FS_TENANTS": self.tenants,
            "FS_CONTROL_MAX_AGE_S": str(self.control_max_age_s),
        }
        return _set_only(values)

    def security_env(self) -> dict[str, str]:
        """The FS_KAFKA_* security variables of these settings that are set."""
        values: dict[str, str | Path | None] = {
            "FS_KAFKA_SECURITY_PROTOCOL": self.kafka_security_protocol,
            "FS_KAFKA_SASL_MECHANISM": self.kafka_sasl_mechanism,
            "FS_KAFKA_SASL_USERNAME": self.kafka_sasl_username,
            "FS_KAFKA_SASL_PASSWORD": self.kafka_sasl_password,
            "FS_KAFKA_SSL_CAFILE": self.kafka_ssl_cafile,
            "FS_KAFKA_SSL_CERTFILE": self.kafka_ssl_certfile,
            "FS_KAFKA_SSL_KEYFILE": self.kafka_ssl_keyfile,
            "FS_KAFKA_SSL_KEY_PASSWORD": self.kafka_ssl_key_password,
        }
        return _set_only(values)


def _set_only(values: dict[str, str | Path | None]) -> dict[str, str]:
    """Variables with a value, as text (an unset one is left to its default)."""
    return {name: str(value) for name, value in values.items() if value}


def load() -> Settings:
    return Settings()
