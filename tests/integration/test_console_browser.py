"""The live console (``GET /``) in headless Chromium, on a real worker fed
real flights: the figures the page shows equal ``/metrics`` read at the
same moment, an alert published on ``fs.alerts`` appears without a reload,
the last rejected records show with their reasons, the lookup box reads a
view, and the page fits a laptop screen.  A screenshot is kept in
``tests/artifacts/console.png``.

Chromium is required, not optional: without it the test fails and says how
to install it (``.ci/run`` installs Debian's ``chromium``)."""
from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any, Iterator
from urllib.request import urlopen

import msgspec
import pytest
from prometheus_client.parser import text_string_to_metric_families

from agents.control_records import now_iso
from dev_tooling import flights_data
from kafka_plumbing.producer import encode, produce_raw
from kafka_plumbing.settings import Settings
from models.alerts import Alert
from models.drift import AlertBook, WindowReport
from tables.definitions import load as load_definitions
from tables.validation import parse_time_ms
from tests.integration.conftest import Worker, running_worker
from tests.integration.flights_stream import deploy_model, produce_flights
from tests.integration.headless_chromium import Chromium, Page, chromium_path

ARTIFACT = Path(__file__).resolve().parents[1] / "artifacts" / "console.png"
HISTORY, LIVE = 1200, 300
OUTCOMES = ("applied", "late", "duplicate", "invalid", "error")

# Every figure the page shows as a number, keyed like ``figures_from_metrics`` keys /metrics:
# the value the page holds (data-value) and the text a person reads (thousands separators removed).
PAGE_FIGURES = """(() => {
  const out = {}, shown = {};
  const put = (key, node) => { out[key] = Number(node.dataset.value);
                               shown[key] = node.textContent.split(' ')[0].replaceAll(',', ''); };
  for (const n of document.querySelectorAll('[data-outcome]')) put(`events:${n.dataset.source}:${n.dataset.outcome}`, n);
  for (const n of document.querySelectorAll('[data-reason]')) put(`dlq:${n.dataset.source}:${n.dataset.reason}`, n);
  for (const n of document.querySelectorAll('[data-decision]')) put(`predictions:${n.dataset.decision}`, n);
  for (const n of document.querySelectorAll('#models tr[data-model]'))
    out[`model_info:${n.dataset.model}:${n.dataset.version}:${n.dataset.role}`] = 1;
  return {values: out, shown: shown, updated: Number(document.getElementById('updated').dataset.ms || 0)};
})()"""


@pytest.fixture(scope="module")
def console_worker(isolated: Settings, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Worker]:
    from kafka_plumbing.topics import ensure_topics_sync

    chromium_path()  # fail first, and say how to install it, before a broker's worth of set-up
    ensure_topics_sync(isolated, list(load_definitions(isolated.features_module).sources))
    yield from running_worker(isolated, tmp_path_factory.mktemp("worker"), env={"FS_METRICS_INTERVAL_S": "1"})


def figures_from_metrics(worker: Worker) -> dict[str, float]:
    with urlopen(worker.url + "/metrics", timeout=10) as response:
        text = response.read().decode()
    out: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            ls = s.labels
            if s.name == "featurestream_events_total" and ls["outcome"] in OUTCOMES:
                out[f"events:{ls['source']}:{ls['outcome']}"] = s.value
            elif s.name == "featurestream_dlq_total":
                out[f"dlq:{ls['source']}:{ls['reason']}"] = s.value
            elif s.name == "featurestream_predictions_total":
                out[f"predictions:{ls['model']}:{ls['version']}:{ls['role']}:{ls['predicted']}"] = s.value
            elif s.name == "featurestream_model_info" and s.value == 1:
                out[f"model_info:{ls['model']}:{ls['version']}:{ls['role']}"] = 1
    return out


def publish_rejects(settings: Settings) -> int:
    """Two late departures (the first flight of the year, again) and two records that are not events:
    four dead letters, three reasons."""
    first = flights_data.load_events(limit=1, progress=False, sources=("departures",))["departures"][0]
    late = [{**first, "event_id": f"console-late-{i}"} for i in range(2)]
    raw = [(e["origin"].encode(), encode(e)) for e in late] + [(b"JFK", b"{not json <script>alert(1)</script>"),
                                                               (b"JFK", b"[]")]
    asyncio.run(produce_raw(settings, settings.topics.events("departures"), raw))
    return len(raw)


async def raise_alert(settings: Settings, version: int, recovered: bool = False) -> Alert:
    """A drift alert on an input (or its recovery), as the quality monitor writes them (models.drift.AlertBook)."""
    book = AlertBook("flight_delay", version, threshold=0.2)
    if recovered:
        book.ledger.since[book.series("console_test_input")] = "2013-01-03T12:00:00.000+00:00"
    start = parse_time_ms("2013-01-03T12:00:00.000Z") + (6 * 3600_000 if recovered else 0)
    report = WindowReport(start_ms=start, end_ms=start + 6 * 3600_000, events=212,
                          psi={"console_test_input": 0.05 if recovered else 0.93})
    [alert] = book.judge(report, now_iso(), worker="the test")
    await produce_raw(settings, settings.topics.alerts, [(alert.key(), msgspec.json.encode(alert))])
    return alert


async def settled_figures(page: Page, worker: Worker, timeout: float = 60) -> tuple[dict[str, Any], dict[str, float]]:
    """The page's figures and /metrics' once they agree (outputs trail ingest a little; the page
    polls every 0.5 s): the last pair read if they never do, for the assertion to show."""
    deadline = time.monotonic() + timeout
    while True:
        before = (await page.evaluate(PAGE_FIGURES))["updated"]
        await page.wait_for(f"Number(document.getElementById('updated').dataset.ms) > {before}")
        shown = await page.evaluate(PAGE_FIGURES)
        scraped = await asyncio.to_thread(figures_from_metrics, worker)
        if shown["values"] == scraped or time.monotonic() > deadline:
            return shown, scraped
        await asyncio.sleep(0.5)


def test_console_shows_what_metrics_says_and_live_alerts(console_worker: Worker, tmp_path: Path) -> None:
    worker, settings = console_worker, console_worker.settings
    sent = produce_flights(settings, limit=HISTORY)
    worker.wait_for("departures", sent["departures"])
    version = deploy_model(worker)
    asyncio.run(drive(worker, settings, version, sent["departures"], tmp_path))


async def drive(worker: Worker, settings: Settings, version: int, history: int, tmp_path: Path) -> None:
    async with Chromium(tmp_path / "chromium") as page:
        await page.goto(worker.url + "/?every_ms=500")
        await page.evaluate("window.loadedOnce = true")  # gone if the page ever reloads
        await page.wait_for("document.getElementById('status').textContent === 'live'")

        # The live slice is scored while the page watches: its charts draw it.
        live = await asyncio.to_thread(produce_flights, settings, LIVE, HISTORY, 300.0)
        rejects = await asyncio.to_thread(publish_rejects, settings)
        await asyncio.to_thread(worker.wait_for, "departures", history + live["departures"] + rejects)
        shown, scraped = await settled_figures(page, worker)
        assert shown["values"] == scraped
        assert {k: float(v) for k, v in shown["shown"].items()} == {k: v for k, v in scraped.items()
                                                                     if not k.startswith("model_info:")}
        assert scraped["events:departures:applied"] >= HISTORY + LIVE - 10  # the odd duplicate flight
        assert scraped["dlq:departures:late"] == 2 and scraped["dlq:departures:invalid_json"] == 1
        assert f"model_info:flight_delay:{version}:primary" in scraped
        assert any(k.startswith(f"predictions:flight_delay:{version}:primary:") for k in scraped)
        applied = sum(v for k, v in scraped.items() if k.startswith("events:") and k.endswith(":applied"))
        assert await page.evaluate("Number(document.getElementById('applied-total').dataset.value)") == applied

        # The last rejected records, with their reasons, shown as text (the script tag stays text).
        rejected = await page.wait_for("""(() => { const t = document.querySelector('#rejected tbody').innerText;
            return t.includes('late') && t.includes('invalid_json') && t; })()""")
        assert "<script>alert(1)</script>" in rejected
        assert await page.evaluate("document.querySelectorAll('#rejected script').length") == 0

        # An alert raised now appears without a reload, as an active alert.
        alert = await raise_alert(settings, version)
        key = alert.key().decode()
        row = await page.wait_for(f"(() => {{ const r = document.querySelector('#alerts tr[data-key=\"{key}\"]');"
                                  " return r && r.innerText; })()", timeout=30)
        assert "ALERT" in row and "0.930" in row
        in_force = f"document.querySelectorAll('#active-alerts tr[data-key=\"{key}\"]').length"
        assert await page.evaluate(in_force) == 1
        assert await page.evaluate("document.getElementById('alerts-active').textContent") == "1"
        # Its recovery clears it: out of the alerts in force, a second record in the recent ones.
        await raise_alert(settings, version, recovered=True)
        await page.wait_for(f"{in_force} === 0", timeout=30)
        assert await page.evaluate("document.getElementById('alerts-active').textContent") == "0"
        assert await page.evaluate(f"document.querySelectorAll('#alerts tr[data-key=\"{key}\"]').length") == 2

        # Charts drawn from the points polled while the live slice flowed; still the page first loaded.
        assert await page.evaluate("Number(document.getElementById('chart-rate').dataset.max)") > 0
        assert await page.evaluate("Number(document.getElementById('chart-latency').dataset.max)") > 0
        assert await page.evaluate("document.querySelectorAll('#chart-rate polyline').length") == 2
        assert await page.evaluate("window.loadedOnce") is True

        # The lookup box reads one entity's features, the values GET /features serves.
        _, expected = worker.get("/features/origin_traffic/JFK")
        await page.evaluate("""(() => { document.getElementById('lookup-view').value = 'origin_traffic';
            document.getElementById('lookup-entity').value = 'JFK';
            document.getElementById('lookup').requestSubmit(); })()""")
        cells = await page.wait_for("""(() => { const t = document.getElementById('lookup-table');
            return t && Object.fromEntries([...t.tBodies[0].rows].map(r => [r.cells[0].textContent, r.cells[1].textContent])); })()""")
        assert set(cells) == set(expected["features"])
        for name, value in expected["features"].items():  # text as shown: strings as they are, the rest as JSON
            assert (cells[name] if isinstance(value, str) else json.loads(cells[name])) == value, name

        # A laptop screen: nothing wider than the window.
        assert await page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
        print(f"console screenshot: {await page.screenshot(ARTIFACT)}")
