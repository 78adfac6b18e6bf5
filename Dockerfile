# Worker image: one Faust worker with its RocksDB tables and web views.
# The broker is not inside: point FS_KAFKA_BOOTSTRAP at a cluster.
FROM python:3.11-slim

# A JDK for the in-process H2O MOJO scorer (JPype loads h2o-genmodel; javac
# compiles the batch helper, models/java/, once into the cache on first use).
RUN apt-get update \
 && apt-get install -y --no-install-recommends default-jdk-headless \
 && rm -rf /var/lib/apt/lists/*

WORKDIR /srv/featurestream
COPY pyproject.toml README.md ./
COPY app ./app
COPY agents ./agents
COPY tables ./tables
COPY models ./models
COPY kafka_plumbing ./kafka_plumbing
COPY dev_tooling ./dev_tooling
RUN pip install --no-cache-dir .

ENV FS_HOME=/var/lib/featurestream \
    FS_WEB_PORT=6066
VOLUME /var/lib/featurestream
EXPOSE 6066

# Each replica needs its own data dir (the volume) and a reachable URL:
# set FS_CANONICAL_URL=http://<pod-ip>:6066 per replica.
ENTRYPOINT ["featurestream"]
CMD ["worker", "--web-host", "0.0.0.0", "--data-dir", "/var/lib/featurestream/worker", "--loglevel", "INFO"]
HEALTHCHECK --interval=15s --timeout=3s CMD python -c "import urllib.request,sys; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:6066/healthz').status==200 else 1)"
