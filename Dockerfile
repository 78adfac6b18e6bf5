# syntax=docker/dockerfile:1
# Worker image: one Faust worker with its RocksDB tables and web views.
# The broker is not inside: point FS_KAFKA_BOOTSTRAP at a cluster.
# docs/deploy.md explains the image; tests/test_dockerfile.py lints it and
# tests/test_dockerfile_install.py runs the build stage's install steps.

# Bookworm pinned: its default JDK/JRE is 17, the one the project is tested with.
ARG PYTHON_IMAGE=python:3.11-slim-bookworm

# ---------------------------------------------------------------- build stage
FROM ${PYTHON_IMAGE} AS build

# A full JDK only here: javac compiles the MOJO batch helper (models/java/) once.
# DL3008 (pin apt versions): default-j*-headless are meta packages that
# follow the release's JDK; pinning them would break with each point release.
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends default-jdk-headless \
 && rm -rf /var/lib/apt/lists/*

# VENV and FS_CACHE_DIR are variables so the install check can run these very
# RUN lines against a temporary venv and cache on a machine without Docker.
ENV VENV=/opt/venv \
    FS_CACHE_DIR=/opt/featurestream/cache
WORKDIR /src
COPY pyproject.toml README.md ./
COPY app ./app
COPY agents ./agents
COPY tables ./tables
COPY models ./models
COPY kafka_plumbing ./kafka_plumbing
COPY dev_tooling ./dev_tooling

RUN python -m venv "$VENV"
# A BuildKit cache mount instead of --no-cache-dir: rebuilds reuse the
# downloads (h2o alone is ~200 MB) and nothing of the cache lands in a layer.
RUN --mount=type=cache,target=/root/.cache/pip "$VENV/bin/pip" install .
# Extract h2o-genmodel.jar and compile the batch helper now, so the runtime
# needs a JRE only (no javac) and the first event is not slowed by it.
# -I: import the installed package, not ./models, so its packaged Java source is what is checked
# (and the console's page, script and style: app.web_console reads them from the package at import).
RUN "$VENV/bin/python" -I -c "from models.genmodel_runtime import batch_helper_classes; print(batch_helper_classes()); import app.web_console"

# -------------------------------------------------------------- runtime stage
FROM ${PYTHON_IMAGE} AS runtime

# A headless JRE: JPype starts the JVM in-process for h2o-genmodel (and
# `featurestream train` runs h2o.jar on it). DL3008: as in the build stage.
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends default-jre-headless \
 && rm -rf /var/lib/apt/lists/*

# A fixed uid so volume permissions (and k8s fsGroup) can be set ahead of time.
RUN groupadd --system --gid 10001 featurestream \
 && useradd --system --uid 10001 --gid featurestream --no-create-home \
      --home-dir /var/lib/featurestream --shell /usr/sbin/nologin featurestream \
 && mkdir -p /var/lib/featurestream/worker /var/lib/featurestream/registry \
 && chown -R featurestream:featurestream /var/lib/featurestream

COPY --from=build /opt/venv /opt/venv
# Writable by the worker: the flights Parquet cache is written here too.
COPY --from=build --chown=featurestream:featurestream /opt/featurestream/cache /opt/featurestream/cache

# Everything is configured by FS_* variables (docs/configuration.md). The
# worker's stores (FS_HOME/worker) and the model registry both live on the
# volume, so neither is lost with the container.
ENV PATH=/opt/venv/bin:$PATH \
    JAVA_HOME=/usr/lib/jvm/default-java \
    PYTHONUNBUFFERED=1 \
    FS_HOME=/var/lib/featurestream \
    FS_REGISTRY=/var/lib/featurestream/registry \
    FS_CACHE_DIR=/opt/featurestream/cache \
    FS_WEB_PORT=6066

# Numeric, so Kubernetes can check runAsNonRoot without resolving a name.
USER 10001:10001
WORKDIR /var/lib/featurestream
VOLUME ["/var/lib/featurestream"]
EXPOSE 6066

# /healthz answers 503 until the worker has its assignment and state, so the
# start period covers table recovery; urlopen raises on any non-2xx status.
HEALTHCHECK --interval=15s --timeout=5s --start-period=120s --retries=4 \
  CMD ["python", "-c", "import os, urllib.request as u; u.urlopen('http://127.0.0.1:%s/healthz' % os.environ.get('FS_WEB_PORT', '6066'), timeout=4)"]

# Each replica needs its own volume and a URL the others can reach:
# set FS_CANONICAL_URL (compose and k8s in deploy/ do). Other commands run
# with the same image: `docker run IMAGE produce flights --limit 20000`.
ENTRYPOINT ["featurestream"]
CMD ["worker", "--web-host", "0.0.0.0", "--loglevel", "INFO"]
