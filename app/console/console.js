// The live console: polls the worker's JSON routes and redraws; no library, no build step.
// Every value from the network goes into the page as text (textContent), never as HTML:
// a dead letter's record is hostile input by definition.
"use strict";

const EVERY_MS = Number(new URLSearchParams(location.search).get("every_ms")) || 2000;
const VIEWS_EVERY_MS = 10000;
const OUTCOMES = ["applied", "late", "duplicate", "invalid", "error"];
const QUALITY = ["auc", "log_loss", "accuracy", "ece"];

const $ = (id) => document.getElementById(id);

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null) continue;
    if (k === "class") node.className = v; else node.setAttribute(k, String(v));
  }
  for (const c of children) node.append(c instanceof Node ? c : document.createTextNode(c === null || c === undefined ? "" : String(c)));
  return node;
}

function count(n) { return n === null || n === undefined ? "–" : Math.round(n).toLocaleString("en-US"); }
function fixed(n, digits) { return n === null || n === undefined ? "–" : Number(n).toFixed(digits); }
function seconds(s) {
  if (s === null || s === undefined) return "–";
  return s < 1 ? (s * 1000).toFixed(s < 0.01 ? 1 : 0) + " ms" : s.toFixed(2) + " s";
}
function when(iso) { return iso ? iso.replace("T", " ").replace(/\.\d+/, "").replace(/(\+00:00|Z)$/, "Z") : "–"; }

function fill(tbody, rows) { tbody.replaceChildren(...rows); }

function authHeaders() {
  const token = sessionStorage.getItem("featurestream.token");
  return token ? { Authorization: "Bearer " + token } : {};
}

async function getJSON(path) {
  const response = await fetch(path, { headers: authHeaders(), cache: "no-store" });
  if (response.status === 401 || response.status === 403) { $("token-form").hidden = false; }
  const body = await response.json();
  if (!response.ok) throw new Error(body.error + ": " + body.detail);
  return body;
}

// --- charts: polylines in a 400x140 SVG with a y axis from 0 to the series' maximum ---

function chart(svg, history, series) {
  const W = 400, H = 140, left = 34, bottom = 14, top = 6;
  const points = history.filter((p) => series.some((s) => s.get(p) !== null));
  const values = points.flatMap((p) => series.map((s) => s.get(p)).filter((v) => v !== null));
  const max = Math.max(1e-9, ...values) * 1.1;
  const t0 = points.length ? points[0].at_ms : 0, t1 = points.length ? points[points.length - 1].at_ms : 1;
  const x = (t) => left + (W - left - 4) * (t1 > t0 ? (t - t0) / (t1 - t0) : 1);
  const y = (v) => H - bottom - (H - bottom - top) * (v / max);
  const ns = "http://www.w3.org/2000/svg";
  const make = (tag, attrs, text) => {
    const node = document.createElementNS(ns, tag);
    for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, String(v));
    if (text !== undefined) node.textContent = text;
    return node;
  };
  svg.dataset.max = values.length ? Math.max(...values) : 0;  // the chart's highest point, for a test to read
  const nodes = [];
  for (const f of [0, 0.5, 1]) {
    const v = (max / 1.1) * f;
    nodes.push(make("line", { class: "grid", x1: left, x2: W, y1: y(v), y2: y(v) }));
    nodes.push(make("text", { x: 2, y: y(v) + 3 }, series[0].format(v)));
  }
  if (points.length) {
    const span = Math.round((t1 - t0) / 1000);
    nodes.push(make("text", { x: left, y: H - 2 }, `last ${span} s`));
  }
  series.forEach((s, i) => {
    const coords = points.filter((p) => s.get(p) !== null).map((p) => `${x(p.at_ms).toFixed(1)},${y(s.get(p)).toFixed(1)}`);
    if (coords.length) nodes.push(make("polyline", { class: "s" + i, points: coords.join(" ") }));
  });
  svg.replaceChildren(...nodes);
}

// --- the figures ---

function drawSources(data) {
  let applied = 0, lag = 0, dead = 0;
  const rows = data.sources.map((s) => {
    applied += s.events.applied || 0; lag += s.lag;
    dead += Object.values(s.dlq).reduce((a, b) => a + b, 0);
    return el("tr", {}, el("td", {}, s.source),
      ...OUTCOMES.map((o) => el("td", { class: "num", "data-source": s.source, "data-outcome": o, "data-value": s.events[o] || 0 }, count(s.events[o] || 0))),
      el("td", { class: "num", "data-source": s.source, "data-lag": "", "data-value": s.lag }, count(s.lag)));
  });
  fill($("sources").tBodies[0], rows);
  $("applied-total").textContent = count(applied);
  $("applied-total").dataset.value = applied;
  $("lag").textContent = count(lag);
  $("dlq-total").textContent = count(dead);
  $("dlq-total").dataset.value = dead;

  const dlq = data.sources.flatMap((s) => Object.entries(s.dlq).map(([reason, n]) =>
    el("tr", {}, el("td", {}, s.source), el("td", {}, reason),
       el("td", { class: "num", "data-source": s.source, "data-reason": reason, "data-value": n }, count(n)))));
  fill($("dlq").tBodies[0], dlq.length ? dlq : [el("tr", {}, el("td", { colspan: 3, class: "muted" }, "no dead letters"))]);
}

function drawHistory(data) {
  const h = data.history;
  const last = h.length ? h[h.length - 1] : null;
  $("rate").textContent = last ? fixed(last.events_per_s, 0) : "–";
  const latest = h.filter((p) => p.e2p_p99_s !== null);  // an interval without predictions has no quantile
  $("p99").textContent = latest.length ? seconds(latest[latest.length - 1].e2p_p99_s) : "–";
  const n = (v) => fixed(v, 0);
  chart($("chart-rate"), h, [{ get: (p) => p.events_per_s, format: n }, { get: (p) => p.applied_per_s, format: n }]);
  chart($("chart-lag"), h, [{ get: (p) => p.lag, format: n }]);
  const s = (v) => (v < 1 ? (v * 1000).toFixed(0) + "ms" : v.toFixed(1) + "s");
  chart($("chart-latency"), h, [{ get: (p) => p.e2p_p50_s, format: s }, { get: (p) => p.e2p_p99_s, format: s }]);
}

function drawModels(data) {
  const rows = data.models.map((m) => el("tr", { "data-model": m.model, "data-version": m.version, "data-role": m.role },
    el("td", {}, m.model), el("td", { class: "model-version" }, "v" + m.version),
    el("td", {}, m.deployed ? m.role : m.role + " (retired)"),
    ...QUALITY.map((q) => el("td", { class: "num", "data-quality": q }, fixed(m.quality[q], 3))),
    el("td", { class: "num" }, count(m.quality.labelled))));
  fill($("models").tBodies[0], rows.length ? rows : [el("tr", {}, el("td", { colspan: 8, class: "muted" }, "no model deployed"))]);
  const anyQuality = data.models.some((m) => Object.keys(m.quality).length);
  $("models-note").textContent = data.models.length && !anyQuality
    ? "Live quality needs labels and the monitor (featurestream monitor, or FS_MONITOR=1 on one worker)." : "";

  const groups = new Map();
  for (const d of data.decisions) {
    const key = `${d.model} v${d.version} ${d.role}`;
    if (!groups.has(key)) groups.set(key, []);
    groups.get(key).push(d);
  }
  const blocks = [];
  for (const [key, ds] of groups) {
    const sum = ds.reduce((a, d) => a + d.count, 0);
    blocks.push(el("h3", { class: "label" }, `${key}: ${count(sum)} decisions`));
    for (const d of ds) {
      const share = sum ? d.count / sum : 0;
      blocks.push(el("div", { class: "bar" }, el("span", { class: "name" }, "class " + d.predicted),
        el("span", { class: "fill", style: `width:${(share * 60).toFixed(1)}%` }),
        el("span", { class: "value", "data-decision": `${d.model}:${d.version}:${d.role}:${d.predicted}`, "data-value": d.count },
           `${count(d.count)} (${(share * 100).toFixed(1)}%)`)));
    }
  }
  $("decisions").replaceChildren(...(blocks.length ? blocks : [el("p", { class: "muted" }, "no decisions yet")]));
}

function drawDrift(data) {
  const max = Math.max(0.25, ...data.drift.map((d) => d.psi));
  const bars = data.drift.map((d) => el("div", { class: "bar" + (d.alert ? " hot" : "") },
    el("span", { class: "name", title: `${d.feature} (${d.model} v${d.version})` }, d.feature),
    el("span", { class: "fill", style: `width:${((d.psi / max) * 40).toFixed(1)}%` }),
    el("span", { class: "value" }, fixed(d.psi, 3) + (d.alert ? " alert" : ""))));
  $("drift").replaceChildren(...(bars.length ? bars : [el("p", { class: "muted" }, "no judged window yet (featurestream monitor or FS_MONITOR=1, a model with baselines)")]));
}

function alertRow({ key, alert: a }, first) {
  // what: the record's key (kind:model:version:feature for drift), less the kind it starts with
  const what = key.startsWith(a.kind + ":") ? key.slice(a.kind.length + 1) : key;
  return el("tr", { class: a.recovered ? "recovered" : "alert", "data-key": key, title: `written ${when(a.at)} by ${a.worker || "?"}` },
    el("td", {}, first),
    el("td", { class: "what" }, what + (a.metric ? ` (${a.metric})` : ""), ...(a.detail ? [el("div", { class: "muted" }, a.detail)] : [])),
    el("td", { class: "num" }, fixed(a.value, 3)), el("td", { class: "num" }, fixed(a.threshold, 3)),
    el("td", {}, when(a.since)));
}

function drawAlerts(data) {
  $("alerts-active").textContent = data.active_alerts.length;
  $("alerts-active").dataset.value = data.active_alerts.length;
  const none = (text) => [el("tr", {}, el("td", { colspan: 5, class: "muted" }, data.feed ? text : "not read (FS_CONSOLE_RECENT=0)"))];
  const active = data.active_alerts.map((a) => alertRow(a, a.alert.kind));
  fill($("active-alerts").tBodies[0], active.length ? active : none("none: all clear"));
  const rows = data.alerts.map((a) => alertRow(a, a.alert.recovered ? "recovered" : "ALERT"));
  fill($("alerts").tBodies[0], rows.length ? rows : none("no alerts"));

  const rejected = data.dead_letters.map(({ letter: d, preview }) => el("tr", {},
    el("td", {}, d.reason), el("td", {}, `${d.topic} [${d.partition}] @${d.offset}`), el("td", {}, d.detail),
    el("td", {}, el("code", { class: "record", title: preview }, preview + ((d.original_bytes || 0) > preview.length ? "…" : "")))));
  fill($("rejected").tBodies[0], rejected.length ? rejected : [el("tr", {}, el("td", { colspan: 4, class: "muted" }, data.feed ? "none" : "not read"))]);
}

async function refresh() {
  try {
    const data = await getJSON("/console/data");
    $("worker").textContent = data.worker;
    drawSources(data); drawHistory(data); drawModels(data); drawDrift(data); drawAlerts(data);
    $("updated").textContent = new Date(data.taken_at_ms).toLocaleTimeString();
    $("updated").dataset.ms = data.taken_at_ms;
    $("status").textContent = "live"; $("status").className = "badge ok";
  } catch (e) {
    $("status").textContent = "offline: " + e.message; $("status").className = "badge bad";
  }
}

async function refreshViews() {
  try {
    const body = await getJSON("/views");
    const rows = body.views.map((v) => el("tr", { "data-view": v.ref },
      el("td", {}, v.name), el("td", {}, "v" + v.version), el("td", {}, v.serving ? "serving" : "–"),
      el("td", {}, v.filled ? "yes" : "filling"), el("td", {}, v.source), el("td", {}, v.entity),
      el("td", {}, v.features.map((f) => f.name).join(", "))));
    fill($("views").tBodies[0], rows);
    const select = $("lookup-view");
    const chosen = select.value;
    select.replaceChildren(...body.views.map((v) => el("option", { value: v.ref }, v.ref)));
    if (chosen) select.value = chosen;
  } catch (e) { /* the status badge already says the worker is unreachable */ }
}

async function lookup(event) {
  event.preventDefault();
  const view = $("lookup-view").value, entity = $("lookup-entity").value.trim();
  const out = $("lookup-result");
  try {
    const response = await fetch(`/features/${encodeURIComponent(view)}/${encodeURIComponent(entity)}`, { headers: authHeaders() });
    const body = await response.json();
    if (!response.ok) { out.replaceChildren(el("p", { class: "badge bad" }, `${response.status} ${body.error}: ${body.detail}`)); return; }
    const values = body.features || body.values || body;
    const rows = Object.entries(values).map(([k, v]) => el("tr", {}, el("td", {}, k), el("td", { class: "num" }, typeof v === "string" ? v : JSON.stringify(v))));
    out.replaceChildren(el("table", { id: "lookup-table" }, el("thead", {}, el("tr", {}, el("th", {}, `${view} / ${entity}`), el("th", {}, "value"))), el("tbody", {}, ...rows)));
  } catch (e) { out.replaceChildren(el("p", { class: "badge bad" }, String(e))); }
}

$("lookup").addEventListener("submit", lookup);
$("token-form").addEventListener("submit", (e) => {
  e.preventDefault();
  sessionStorage.setItem("featurestream.token", $("token").value);
  $("token-form").hidden = true;
  refresh(); refreshViews();
});
refresh(); refreshViews();
setInterval(refresh, EVERY_MS);
setInterval(refreshViews, VIEWS_EVERY_MS);
