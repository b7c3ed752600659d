// The Sluice console: reads this process's API every 2 s and draws it. No framework, no CDN:
// the binary serves this file. Every value from the API is written with textContent, never
// as markup: device ids, rule names and alert keys come from payloads and config.
"use strict";

const REFRESH_MS = 2000;
const $ = (id) => document.getElementById(id);
let token = sessionStorage.getItem("sluice-token") || "";
let previous = null; // the last /metrics sample: { at, counters }

// --- API ------------------------------------------------------------------------------------

async function api(path, options = {}) {
  const headers = Object.assign({}, options.headers || {});
  if (token) headers["Authorization"] = "Bearer " + token;
  const response = await fetch(path, Object.assign({}, options, { headers, cache: "no-store" }));
  const text = await response.text();
  let body = text;
  if ((response.headers.get("content-type") || "").includes("json")) {
    try { body = JSON.parse(text); } catch (_) { /* keep the text */ }
  }
  return { status: response.status, body };
}

/** Why a section has no data, in words; null when it has. */
function problem(r) {
  if (r.status === 200) return null;
  if (r.status === 401) return "needs a token (enter one above)";
  if (r.status === 403) return "this token's role cannot read it";
  if (r.status === 404) return "not running in this process";
  return "error " + r.status + ": " + String(r.body).slice(0, 200);
}

// --- Prometheus text --------------------------------------------------------------------------

/** name → [{ labels, value }] from the Prometheus text format. */
function parseMetrics(text) {
  const out = new Map();
  for (const line of text.split("\n")) {
    if (!line || line.startsWith("#")) continue;
    const m = line.match(/^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})?\s+(\S+)$/);
    if (!m) continue;
    const labels = {};
    for (const l of (m[3] || "").matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)) {
      labels[l[1]] = l[2].replace(/\\(.)/g, "$1");
    }
    if (!out.has(m[1])) out.set(m[1], []);
    out.get(m[1]).push({ labels, value: Number(m[4]) });
  }
  return out;
}

/** Sum of a metric's series whose labels match `where`; null when it has none. */
function sum(metrics, name, where = {}) {
  const series = (metrics.get(name) || []).filter((s) =>
    Object.entries(where).every(([k, v]) => s.labels[k] === v));
  return series.length ? series.reduce((a, s) => a + s.value, 0) : null;
}

/** Per-second rate of a counter since the previous sample; null before the second sample. */
function rate(key, now) {
  if (!previous || now.counters[key] == null || previous.counters[key] == null) return null;
  const dt = (now.at - previous.at) / 1000;
  return dt > 0 ? Math.max(0, (now.counters[key] - previous.counters[key]) / dt) : null;
}

// --- drawing ----------------------------------------------------------------------------------

const fmt = (n, digits = 0) => n == null || Number.isNaN(n) ? "-" :
  Number(n).toLocaleString("en-US", { maximumFractionDigits: digits, minimumFractionDigits: digits });

function cell(text, cls) {
  const td = document.createElement("td");
  td.textContent = text;
  if (cls) td.className = cls;
  return td;
}

/** Replaces a table's rows; `rows` are [key, [cells…]] with cells as td elements. Rows that
 *  did not change are left as they are, so a button does not move under the user's pointer. */
function fill(tableId, rows, empty) {
  const table = $(tableId);
  const signature = JSON.stringify([empty, rows.map(([k, cells]) => [k, cells.map((c) => c.textContent)])]);
  if (table.dataset.signature === signature) return;
  table.dataset.signature = signature;
  const body = table.querySelector("tbody");
  body.replaceChildren();
  for (const [key, cells] of rows) {
    const tr = document.createElement("tr");
    tr.dataset.key = key;
    tr.append(...cells);
    body.append(tr);
  }
  if (!rows.length) {
    const tr = document.createElement("tr");
    tr.className = "empty";
    const td = cell(empty);
    td.colSpan = $(tableId).querySelectorAll("th").length;
    tr.append(td);
    body.append(tr);
  }
}

function stage(id, r, total) {
  $(id).querySelector(".rate").textContent = r == null ? "-" : fmt(r, r < 10 ? 1 : 0) + "/s";
  $(id).querySelector(".total").textContent = total == null ? "not in this process" : fmt(total) + " total";
  $(id).dataset.total = total == null ? "" : String(total);
}

function drawMetrics(r) {
  if (r.status !== 200) { return; }
  const m = parseMetrics(r.body);
  const now = { at: Date.now(), counters: {} };
  const c = now.counters;
  c.mqtt = sum(m, "sluice_ingest_messages_in_total");
  c.kafka = sum(m, "sluice_ingest_produced_total");
  c.routed = sum(m, "sluice_router_consumed_total");
  c.sinks = sum(m, "sluice_rule_action_rows_total");
  // Dead letters are counted by stage and reason, so the series appear with the first one:
  // a process that runs a stage has 0 until then, not "not in this process".
  c.dlq = sum(m, "sluice_dlq_total") ?? (c.mqtt != null || c.routed != null ? 0 : null);
  for (const s of m.get("sluice_rule_rows_total") || []) c["rule:" + s.labels.rule] = s.value;
  stage("stage-mqtt", rate("mqtt", now), c.mqtt);
  stage("stage-kafka", rate("kafka", now), c.kafka);
  stage("stage-routed", rate("routed", now), c.routed);
  stage("stage-sinks", rate("sinks", now), c.sinks);
  stage("stage-dlq", rate("dlq", now), c.dlq);
  // Red only when something was dead-lettered: a red 0 reads as a fault.
  $("stage-dlq").classList.toggle("bad", c.dlq > 0);
  const reasons = (m.get("sluice_dlq_total") || []).filter((s) => s.labels.reason).map((s) =>
    [s.labels.stage + "/" + s.labels.reason,
      [cell(s.labels.stage || "-"), cell(s.labels.reason || "-"), cell(fmt(s.value), "num")]]);
  fill("dlq-reasons", reasons, "no dead letters");
  drawRuleRates(m, now);
  previous = now;
}

let rulesStatus = null;

function drawRuleRates(m, now) {
  if (!rulesStatus) return;
  const rows = rulesStatus.rules.map((rule) => {
    const rows = sum(m, "sluice_rule_rows_total", { rule: rule.name });
    const errors = (sum(m, "sluice_rule_failures_total", { rule: rule.name }) || 0) +
      (sum(m, "sluice_rule_action_failures_total", { rule: rule.name }) || 0);
    const per = rate("rule:" + rule.name, now);
    return [rule.name, [cell(rule.name), cell(rule.actions.join(", "), "opt"),
      cell(per == null ? "-" : fmt(per, 1), "num"), cell(fmt(rows ?? 0), "num"),
      cell(fmt(errors), errors > 0 ? "num warn" : "num")]];
  });
  fill("rules", rows, "no rules");
}

function drawRules(r) {
  const why = problem(r);
  rulesStatus = why ? null : r.body;
  if (why) { fill("rules", [], "Rules: " + why); $("reload").textContent = ""; return; }
  $("rules-version").textContent = "version " + r.body.version;
  const last = r.body.last_reload;
  const reload = $("reload");
  if (!last) { reload.textContent = "No reload since start."; reload.className = "muted"; }
  else if (last.ok) {
    reload.textContent = "Last reload " + new Date(last.at_ms).toLocaleTimeString() + ": ok";
    reload.className = "ok";
  } else {
    reload.textContent = "Last reload " + new Date(last.at_ms).toLocaleTimeString() +
      " failed (the previous rules stay active): " + last.errors.join("; ");
    reload.className = "warn";
  }
}

function drawScaling(r) {
  const why = problem(r);
  if (why) { fill("lag", [], "Lag: " + why); return; }
  const rt = r.body.router;
  $("lag-total").textContent = fmt(rt.lag_total);
  $("lag-seconds").textContent = rt.lag_seconds == null ? "nothing consumed yet" : fmt(rt.lag_seconds, 1) + " s behind";
  $("replicas-now").textContent = rt.current_replicas == null ? "unknown" : String(rt.current_replicas);
  $("replicas-advice").textContent = String(rt.desired_replicas);
  const warning = $("scaling-warning");
  warning.hidden = !rt.warning;
  warning.textContent = rt.warning || "";
  const rows = Object.entries(rt.lag_per_partition).map(([p, lag]) =>
    [p, [cell(p), cell(fmt(lag), "num")]]);
  fill("lag", rows, "no partitions");
}

function drawAlerts(r) {
  const why = problem(r);
  if (why) { fill("alerts", [], "Alerts: " + why); $("alerts-count").textContent = "-"; return; }
  $("alerts-count").textContent = String(r.body.firing.length);
  $("alerts-undelivered").textContent = String(r.body.undelivered);
  const rows = r.body.firing.map((a) => {
    const action = document.createElement("td");
    if (a.acknowledged) {
      action.textContent = "acknowledged";
      action.className = "ok";
    } else {
      const b = document.createElement("button");
      b.textContent = "Acknowledge";
      b.className = "ack secondary";
      b.addEventListener("click", () => acknowledge(a.key));
      action.append(b);
    }
    return [a.key, [cell(a.key), cell(a.severity, "opt"), cell(fmt(a.count), "num"),
      cell(new Date(a.first_seen_ms).toLocaleTimeString(), "opt"), action]];
  });
  fill("alerts", rows, "nothing firing");
}

function drawCompliance(r) {
  const why = problem(r);
  if (why) { fill("compliance", [], "Compliance: " + why); fill("failed", [], ""); return; }
  const c = r.body;
  // "100.0% of 0 devices" says nothing: no percent until a device reported.
  $("fleet-percent").textContent =
    c.total.devices > 0 ? fmt(c.total.compliance_percent, 1) + "%" : "-";
  $("fleet-devices").textContent = fmt(c.total.devices);
  const rows = Object.entries(c.groups).map(([g, n]) => [g, [cell(g), cell(fmt(n.devices), "num"),
    cell(fmt(n.on_latest_update), "num"), cell(fmt(n.update_in_progress), "num"),
    cell(fmt(n.new_updates_available), "num"), cell(fmt(n.compliance_percent, 1) + "%", "num")]]);
  fill("compliance", rows, "no devices reported yet");
  const failed = c.failed.map((f) => [f.deployment + "/" + f.group,
    [cell(f.deployment), cell(f.group), cell(fmt(f.devices), "num")]]);
  fill("failed", failed, "no failed deployments");
}

// --- actions ----------------------------------------------------------------------------------

function notice(text) {
  $("notice").textContent = text;
  $("notice").hidden = !text;
}

async function acknowledge(key) {
  const r = await api("/alerts/ack", {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ key }),
  });
  if (r.status === 204) notice("Acknowledged " + key + ".");
  else if (r.status === 401) notice("Acknowledging needs an operator token: enter one above.");
  else if (r.status === 403) notice("This token cannot acknowledge alerts: that needs the operator role.");
  else notice("Acknowledging " + key + " failed: " + r.status + " " + String(r.body));
  refresh();
}

$("token-form").addEventListener("submit", (e) => {
  e.preventDefault();
  token = $("token").value.trim();
  $("token").value = "";
  if (token) sessionStorage.setItem("sluice-token", token);
  else sessionStorage.removeItem("sluice-token");
  notice("");
  refresh();
});

// --- the loop ---------------------------------------------------------------------------------

let timer = null;

async function refresh() {
  clearTimeout(timer);
  $("whoami").textContent = token ? "token in use" : "no token";
  try {
    const [rules, metrics, scaling, alerts, compliance] = await Promise.all([
      api("/rules"), api("/metrics"), api("/scaling"), api("/alerts"), api("/compliance?devices=false"),
    ]);
    drawRules(rules);
    drawMetrics(metrics);
    drawScaling(scaling);
    drawAlerts(alerts);
    drawCompliance(compliance);
    $("updated").textContent = "updated " + new Date().toLocaleTimeString();
    document.body.dataset.refreshed = String(Number(document.body.dataset.refreshed || 0) + 1);
  } catch (e) {
    $("updated").textContent = "cannot reach Sluice: " + e.message;
  }
  timer = setTimeout(refresh, REFRESH_MS);
}

refresh();
