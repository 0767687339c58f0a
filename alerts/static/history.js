// The patient chart: uPlot charts of /api/history (downsampled by the store to the zoom), alarm
// episodes, limits and normal ranges, score reasons on hover; limits changed over the feed socket.
"use strict";
const $ = (id) => document.getElementById(id);
const token = sessionStorage.getItem("ww_token");
const wards = sessionStorage.getItem("ww_wards") || "";
const params = new URLSearchParams(location.search);
const PRIORITY_COLOUR = { high: "#ff5c5c", medium: "#f4a261", low: "#4cc9f0" };
const PRIORITY_SHAPE = { high: "▲", medium: "◆", low: "●" };
// Okabe-Ito colours: told apart by colour-blind readers too.
const COLOURS = ["#56b4e9", "#e69f00", "#009e73", "#f0e442", "#cc79a7", "#d55e00", "#0072b2", "#ffffff", "#999999"];
const SCORE_NAMES = { news2: "NEWS2 (points)", risk: "Early-warning risk score (0-1)", iforest: "Unusual for this patient (0-1)", trend: "Trend score" };
const state = { texts: null, patients: new Map(), range: Number(params.get("range")) || 2 * 3600_000,
  stop: Number(params.get("stop")) || Date.now(), history: null, charts: [], ws: null, role: null, loading: null };

const esc = (s) => String(s ?? "").replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" }[c]));
const fmtTime = (ms) => new Date(ms).toLocaleString([], { dateStyle: "short", timeStyle: "medium" });
const metricName = (m) => state.texts?.metrics?.[m] || m;
const unitOf = (m) => state.texts?.units?.[m] || "";
const title = (c) => state.texts?.titles?.[c]?.title || (c && c.startsWith("sensor_off_") ? `${state.texts?.probes?.[c.slice(11)] || "Sensor"} off`
  : c && c.startsWith("signal_lost_") ? `${state.texts?.probes?.[c.slice(12)] || "Sensor"}: signal lost`
  : c && c.startsWith("clock_ahead_") ? `${metricName(c.slice(12))}: device clock ahead`
  : c && c.startsWith("device:") ? state.texts?.titles?.device?.title || c : c);  // the monitors' own alarms

function status(text) { $("status").textContent = text; }

// ------------------------------------------------------------------ login and the ward list (feed socket)

function openSocket() {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket((location.protocol === "https:" ? "wss://" : "ws://") + location.host + "/ws");
    state.ws = ws;
    ws.onopen = () => ws.send(JSON.stringify({ type: "auth", token }));
    ws.onclose = (e) => { if (e.code === 4401 || e.code === 4403) { sessionStorage.removeItem("ww_token"); showSignin(); } reject(e); };
    ws.onmessage = (m) => {
      const msg = JSON.parse(m.data);
      if (msg.type === "hello") {
        state.role = msg.role; $("user").textContent = `${msg.user} (${msg.role})`;
        const w = wards ? wards.split(",").map((x) => x.trim()).filter(Boolean) : ["*"];
        ws.send(JSON.stringify({ type: "subscribe", wards: w, since: null }));
      } else if (msg.type === "snapshot") {
        for (const p of msg.patients || []) state.patients.set(p.patient, p);
        resolve(ws);
      } else if (msg.type === "limits_set") {
        // Said once the page shows the new limit: a chart load already in flight was read before the change.
        load().then(() => { $("limit-status").textContent = "Limit changed and recorded in the audit log."; });
      } else if (msg.type === "error") {
        $("limit-status").textContent = `Refused: ${msg.message}`;
      }
    };
  });
}

function showSignin() { $("signin").classList.remove("hidden"); $("q").classList.add("hidden"); }

function fillPatients() {
  const sorted = [...state.patients.values()].sort((a, b) => String(a.bed ?? a.patient).localeCompare(String(b.bed ?? b.patient), undefined, { numeric: true }));
  $("patient").innerHTML = sorted.map((p) => `<option value="${esc(p.patient)}">${p.bed ? "Bed " + esc(p.bed) + " · " : ""}${esc(p.patient)} · ward ${esc(p.ward)}</option>`).join("");
  const want = params.get("patient");
  if (want && state.patients.has(want)) $("patient").value = want;
}

// ------------------------------------------------------------------ the history API

async function get(kind, every) {
  const q = new URLSearchParams({ patient: $("patient").value, start: Math.round(state.stop - state.range), stop: Math.round(state.stop) });
  if (every) q.set("every", every);
  const r = await fetch(`/api/history${kind}?${q}`, { headers: { Authorization: `Bearer ${token}` } });
  if (!r.ok) throw new Error(`${r.status}: ${(await r.text()).slice(0, 200)}`);
  return r;
}

async function load() {
  if (!$("patient").value) { status("No patient on your wards."); return; }
  const width = Math.max(300, $("charts").clientWidth || 800);
  const every = Math.max(1000, Math.round(state.range / width));  // about one point per pixel: resolution follows the zoom
  status("Loading…");
  const mine = state.loading = Symbol();
  try {
    const h = await (await get("", every)).json();
    if (state.loading !== mine) return;  // a newer zoom asked meanwhile
    state.history = h;
    history.replaceState(null, "", `?patient=${encodeURIComponent(h.patient)}&range=${state.range}&stop=${Math.round(state.stop)}`);
    render(h);
    const res = h.every_ms ? `averaged per ${h.every_ms >= 60000 ? Math.round(h.every_ms / 60000) + " min" : Math.round(h.every_ms / 1000) + " s"}` : "every reading (raw resolution)";
    $("status").dataset.every = h.every_ms ?? 0;
    status(`${fmtTime(h.start)} – ${fmtTime(h.stop)} · ${res}`);
  } catch (err) { status(`Could not load: ${err.message}`); }
}

// ------------------------------------------------------------------ charts

function aligned(clean, marks, every) {
  // x in seconds; a gap (null) wherever the readings stop for longer than three of their steps.
  const rows = clean.map(([t, v]) => [t, v, null]).concat(marks.map(([t, v]) => [t, null, v])).sort((a, b) => a[0] - b[0]);
  const steps = clean.slice(1).map((p, i) => p[0] - clean[i][0]).sort((a, b) => a - b);
  const step = Math.max(every || 0, steps.length ? steps[steps.length >> 1] : 60000);
  const xs = [], ys = [], ms = [];
  for (let i = 0; i < rows.length; i++) {
    if (i && rows[i][0] - rows[i - 1][0] > 3 * step) { xs.push((rows[i - 1][0] + step) / 1000); ys.push(null); ms.push(null); }
    xs.push(rows[i][0] / 1000); ys.push(rows[i][1]); ms.push(rows[i][2]);
  }
  return [xs, ys, ms];
}

function relevant(ep, chart) {
  // A vital's chart shows the episodes about that vital (its limit alarms, its sensor), the score
  // charts the early warnings; alarms about the whole monitor or no vital in particular show on all.
  const c = ep.condition || "", rule = (state.history.limits || []).find((l) => l.condition === c);
  if (rule) return rule.metric === chart || (chart === "pulse_rate" && rule.metric === "heart_rate");
  if (c.startsWith("sensor_off_")) return c.slice(11) === chart;
  if (c.startsWith("signal_lost_")) return c.slice(12) === chart;
  if (c.startsWith("clock_ahead_")) return c.slice(12) === chart;
  if (c === "early_warning") return chart === "news2" || chart === "risk";
  if (c === "asystole" || c === "ecg_signal_poor") return chart === "heart_rate";
  return true;
}

function bandsPlugin(metric) {
  // Normal range shaded, limits dashed, alarm episodes as bands in their priority colour.
  return { hooks: { drawClear: [(u) => {
    const h = state.history, ctx = u.ctx, { left, top, width, height } = u.bbox;
    ctx.save(); ctx.beginPath(); ctx.rect(left, top, width, height); ctx.clip();
    const normal = h.normal?.[metric];
    if (normal) {
      const y1 = u.valToPos(normal[1], "y", true), y0 = u.valToPos(normal[0], "y", true);
      ctx.fillStyle = "rgba(82,183,136,0.13)"; ctx.fillRect(left, y1, width, y0 - y1);
    }
    for (const ep of (h.episodes || []).filter((e) => relevant(e, metric))) {
      const x0 = u.valToPos(ep.start / 1000, "x", true), x1 = u.valToPos((ep.end ?? h.stop) / 1000, "x", true);
      ctx.fillStyle = (PRIORITY_COLOUR[ep.priority] || "#999") + "33"; ctx.fillRect(x0, top, Math.max(2, x1 - x0), height);
      ctx.fillStyle = PRIORITY_COLOUR[ep.priority] || "#999"; ctx.fillRect(x0 - 1, top, 2, height);
    }
    ctx.restore();
  }], draw: [(u) => {
    const ctx = u.ctx, { left, top, width, height } = u.bbox;
    ctx.save(); ctx.beginPath(); ctx.rect(left, top, width, height); ctx.clip();
    ctx.setLineDash([6, 4]); ctx.lineWidth = 1.5;
    for (const l of (state.history.limits || []).filter((x) => x.metric === metric && x.value != null)) {
      const y = u.valToPos(l.value, "y", true);
      ctx.strokeStyle = PRIORITY_COLOUR[l.priority] || "#ccc"; ctx.beginPath(); ctx.moveTo(left, y); ctx.lineTo(left + width, y); ctx.stroke();
    }
    ctx.restore();
  }], ready: [(u) => markers(u, metric)], setSize: [(u) => markers(u, metric)],
  setScale: [(u, key) => { if (key === "x") { markers(u, metric); zoomed(u); } }] } };
}

function markers(u, chart) {
  // Alarm markers as elements on the chart's overlay: readable by a screen reader, clickable for the trail.
  u.over.querySelectorAll(".alarm-marker").forEach((n) => n.remove());
  for (const ep of (state.history?.episodes || []).filter((e) => relevant(e, chart))) {
    const x = u.valToPos(ep.start / 1000, "x");
    if (!(x >= 0 && x <= u.over.clientWidth)) continue;
    const b = document.createElement("button");
    b.className = `alarm-marker ${ep.priority}`; b.type = "button";
    b.dataset.testid = "alarm-marker"; b.dataset.time = ep.start; b.dataset.alertId = ep.alert_id; b.dataset.priority = ep.priority;
    b.textContent = PRIORITY_SHAPE[ep.priority] || "●";
    b.setAttribute("aria-label", `${ep.priority} priority alarm: ${ep.title} at ${fmtTime(ep.start)}`);
    b.title = `${ep.title} (${ep.priority}) ${fmtTime(ep.start)}${ep.end ? " – " + fmtTime(ep.end) : ", still open"}\n${ep.message}`;
    b.style.left = `${x}px`;  // CSSOM, which the page's CSP allows (no inline style attribute)
    b.addEventListener("click", () => showTrail(ep.alert_id));
    u.over.appendChild(b);
  }
}

let zoomTimer = null;
function zoomed(u) {
  // A zoom (drag) or pan: ask the store again for the visible range, at the resolution it deserves.
  if (state.rebuilding) return;
  const min = u.scales.x.min * 1000, max = u.scales.x.max * 1000;
  if (!(max > min) || (Math.abs(max - state.stop) < 1000 && Math.abs(max - min - state.range) < 1000)) return;
  clearTimeout(zoomTimer);
  zoomTimer = setTimeout(() => { state.stop = max; state.range = Math.max(60_000, max - min); load(); }, 250);
}

// A value axis's labels with as many decimals as its tick step needs: a risk from 0.0052 to 0.0058
// in steps of 0.0002 must not read "0.005, 0.005, 0.006" (uPlot's default rounds to three).
function stepDecimals(incr) {
  let d = 0;
  while (d < 8 && Math.abs(Math.round(incr * 10 ** d) - incr * 10 ** d) > 1e-6) d++;
  return d;
}
const valueLabels = (u, splits, axis, space, incr) => splits.map((v) => v == null ? "" : v.toFixed(stepDecimals(incr)));

function makeChart(el, titleText, yLabel, data, series, plugins, cursorHook) {
  const box = document.createElement("figure");
  box.className = "chart"; box.dataset.testid = "chart";
  box.innerHTML = `<figcaption>${esc(titleText)}</figcaption>`;
  el.appendChild(box);
  const opts = {
    width: Math.max(280, box.clientWidth - 16), height: 190, plugins,
    scales: { x: { time: true, min: (state.stop - state.range) / 1000, max: state.stop / 1000 } },
    axes: [{ stroke: "#c9d4de", grid: { stroke: "#263545" }, ticks: { stroke: "#263545" }, label: "Time", labelSize: 20 },
           { stroke: "#c9d4de", grid: { stroke: "#263545" }, ticks: { stroke: "#263545" }, label: yLabel, labelSize: 22, size: 64,
             values: valueLabels }],
    series: [{ label: "Time" }, ...series],
    cursor: { sync: { key: "ww" }, drag: { x: true, y: false } },
    hooks: cursorHook ? { setCursor: [cursorHook] } : {},
  };
  const u = new uPlot(opts, data, box);
  box.dataset.axisX = "Time"; box.dataset.axisY = yLabel;
  state.charts.push(u);
  return u;
}

function render(h) {
  state.rebuilding = true;
  state.charts.forEach((u) => u.destroy()); state.charts = [];
  const el = $("charts"); el.innerHTML = "";
  const order = Object.keys(state.texts?.units || {});  // the catalogue's order: heart rate first
  const metrics = Object.keys(h.clean).filter((m) => h.clean[m].length || h.marks[m].length)
    .sort((a, b) => (order.indexOf(a) + 99) % 99 - (order.indexOf(b) + 99) % 99);
  metrics.forEach((m, i) => {
    const u = unitOf(m), label = `${metricName(m)}${u ? " (" + u + ")" : ""}`;
    makeChart(el, label, u || metricName(m), aligned(h.clean[m], h.marks[m], h.every_ms), [
      { label: `${metricName(m)}`, stroke: COLOURS[i % COLOURS.length], width: 2, spanGaps: false, points: { show: false } },
      { label: "raw, not passed by the filters", stroke: "#ff5c5c", fill: "#ff5c5c", paths: () => null,
        points: { show: true, size: 7, stroke: "#ff5c5c", fill: "#ff5c5c" } },
    ], [bandsPlugin(m)]);
  });
  const scoreNames = Object.keys(h.scores).filter((s) => s === "news2" || s === "risk");
  for (const s of scoreNames) {
    const pts = h.scores[s], label = SCORE_NAMES[s] || s;
    makeChart(el, label, s === "news2" ? "points" : "score", [pts.map((p) => p[0] / 1000), pts.map((p) => p[1])], [
      { label, stroke: s === "news2" ? "#e69f00" : "#cc79a7", width: 2, spanGaps: false, points: { show: false } }],
    [bandsPlugin(s)], (u) => showReasons(s, u));
  }
  if (!metrics.length && !scoreNames.length) el.innerHTML = `<p class="quiet" data-testid="no-data">No readings for this patient in this range.</p>`;
  renderWithdrawn(h);
  renderLimits(h); renderAlarms(h);
  state.rebuilding = false;
}

// Readings their devices took back (HL7 OBX-11 D/W, FHIR entered-in-error) are left out of every
// chart and export; say which, so a clinician who remembers a value knows why it is gone.
function renderWithdrawn(h) {
  const el = $("withdrawn"), items = [];
  for (const [m, pts] of Object.entries(h.withdrawn || {}))
    for (const [t, why] of pts) items.push(`${metricName(m)} at ${fmtTime(t)} (${why})`);
  el.textContent = items.length
    ? `Left out: ${items.length} reading${items.length > 1 ? "s" : ""} withdrawn by the sender: ${items.slice(0, 10).join("; ")}${items.length > 10 ? "; …" : ""}.`
    : "";
  el.classList.toggle("hidden", !items.length);
}

function showReasons(score, u) {
  const i = u.cursor.idx; if (i == null) return;
  const t = u.data[0][i] * 1000, list = state.history.score_reasons?.[score] || [];
  let best = null;
  for (const r of list) if (r[0] <= t + 1000) best = r; else break;  // the reasons in force at that time
  const v = u.data[1][i];
  $("reasons").textContent = v == null ? "" : `${SCORE_NAMES[score]} ${score === "risk" ? Number(v).toFixed(2) : Math.round(v)} at ${fmtTime(t)}`
    + (best ? ` – ${best[1]}` : "");
}

// ------------------------------------------------------------------ limits, alarms, audit

function renderLimits(h) {
  const rows = h.limits || [];
  document.querySelector("#limits tbody").innerHTML = rows.map((l) => `<tr data-condition="${esc(l.condition)}">
    <td>${esc(l.title)}</td><td data-testid="limit-value">${l.disabled_until ? "switched off until " + fmtTime(l.disabled_until) : l.side === "low" ? "below " : "above "}${l.value != null ? esc(l.value) + " " + esc(unitOf(l.metric)) : ""}</td>
    <td>${esc(l.default)} ${esc(unitOf(l.metric))}</td><td>${esc(l.priority)}</td></tr>`).join("");
  const mayChange = state.role === "clinician" || state.role === "admin";
  $("limit-form").classList.toggle("hidden", !mayChange);
  $("limit-note").classList.toggle("hidden", mayChange);
  const cur = $("limit-cond").value;
  $("limit-cond").innerHTML = rows.filter((l) => l.condition !== "spo2_critical").map((l) =>
    `<option value="${esc(l.metric)}:${esc(l.side)}">${esc(l.title)} (${l.side} limit)</option>`).join("");
  if (cur) $("limit-cond").value = cur;
}

$("limit-form").addEventListener("submit", (e) => {
  e.preventDefault();
  const [metric, side] = $("limit-cond").value.split(":");
  const value = Number($("limit-value").value);
  $("limit-status").textContent = "Sending…";
  state.ws.send(JSON.stringify({ type: "set_limits", patient: $("patient").value, limits: { [metric]: { [side]: value } }, why: $("limit-why").value }));
});

function renderAlarms(h) {
  document.querySelector("#alarms tbody").innerHTML = h.alarms.map((a) =>
    `<tr data-alert-id="${esc(a.alert_id)}" tabindex="0"><td>${fmtTime(a.time)}</td><td>${esc(a.event)}</td><td>${esc(title(a.condition))}</td>
     <td class="prio-${esc(a.priority)}">${PRIORITY_SHAPE[a.priority] || ""} ${esc(a.priority)}</td><td>${esc(a.by)}</td><td>${esc(a.message)}</td></tr>`).join("");
  showTrail(null);
}

document.querySelector("#alarms tbody").addEventListener("click", (e) => { const tr = e.target.closest("tr[data-alert-id]"); if (tr) showTrail(tr.dataset.alertId); });
document.querySelector("#alarms tbody").addEventListener("keydown", (e) => { const tr = e.target.closest("tr[data-alert-id]"); if (tr && e.key === "Enter") showTrail(tr.dataset.alertId); });

async function showTrail(alertId) {
  // The alarm's life from the store (raised, escalated, acknowledged, cleared, resolved) and the
  // audit log's record of who did what to it and to this patient's limits.
  let audit = [];
  try {
    const r = await fetch(`/api/audit?patient=${encodeURIComponent($("patient").value)}`, { headers: { Authorization: `Bearer ${token}` } });
    if (r.ok) audit = await r.json();
  } catch (err) { /* the trail from the store still shows */ }
  const h = state.history;
  const events = alertId ? h.alarms.filter((a) => a.alert_id === alertId).map((a) => ({ t: a.time,
    text: `${a.event}${a.by ? " by " + a.by : ""} · ${title(a.condition)} (${a.priority})` })) : [];
  const rows = audit.filter((r) => (alertId && r.target === alertId) || r.action === "set_limits" || r.action === "disable_alarm")
    .map((r) => { const d = JSON.parse(r.detail || "{}");
      return { t: Math.round(r.at * 1000), text: `${r.action === "set_limits" ? "limits changed to " + JSON.stringify(d.limits) + " because: " + d.why
        : r.action === "disable_alarm" ? `alarm ${title(d.condition)} switched off because: ${d.why}` : r.action} by ${r.who} (${r.role})`, audit: true }; });
  const all = events.concat(rows).sort((a, b) => (a.t || 0) - (b.t || 0));
  $("audit").innerHTML = all.map((x) => `<li data-testid="audit-row" class="${x.audit ? "audited" : ""}">${x.t ? fmtTime(x.t) + " · " : ""}${esc(x.text)}</li>`).join("")
    || `<li class="quiet">Nothing recorded.</li>`;
}

// ------------------------------------------------------------------ range, pan, export

document.querySelectorAll("[data-range]").forEach((b) => b.addEventListener("click", () => { state.range = Number(b.dataset.range); state.stop = Date.now(); load(); }));
$("back").addEventListener("click", () => { state.stop -= state.range / 2; load(); });
$("fwd").addEventListener("click", () => { state.stop = Math.min(Date.now(), state.stop + state.range / 2); load(); });
$("zoom-out").addEventListener("click", () => { state.stop = Math.min(Date.now(), state.stop + state.range / 2); state.range *= 2; load(); });
$("patient").addEventListener("change", () => { params.set("patient", $("patient").value); load(); });

function save(blob, name) { const a = document.createElement("a"); a.href = URL.createObjectURL(blob); a.download = name; document.body.appendChild(a); a.click(); a.remove(); }
async function download(kind, name) {
  try { save(await (await get(kind, state.history?.every_ms)).blob(), name); } catch (err) { status(`Could not export: ${err.message}`); }
}
$("csv").addEventListener("click", () => download(".csv", `${$("patient").value}-chart.csv`));
$("fhir").addEventListener("click", () => download(".fhir", `${$("patient").value}-chart.fhir.json`));
$("png").addEventListener("click", () => {
  // The charts' own canvases, stacked under their titles, into one image.
  const pad = 28, w = Math.max(...state.charts.map((u) => u.ctx.canvas.width), 1);
  const out = document.createElement("canvas");
  out.width = w; out.height = state.charts.reduce((s, u) => s + u.ctx.canvas.height + pad, pad);
  const c = out.getContext("2d"); c.fillStyle = "#0f1720"; c.fillRect(0, 0, out.width, out.height);
  c.fillStyle = "#e8eef4"; c.font = "16px sans-serif";
  c.fillText(`${$("patient").selectedOptions[0]?.textContent || ""} · ${$("status").textContent}`, 8, 20);
  let y = pad;
  for (const u of state.charts) { c.fillText(u.root.parentElement.querySelector("figcaption").textContent, 8, y + 18); c.drawImage(u.ctx.canvas, 0, y + pad); y += u.ctx.canvas.height + pad; }
  out.toBlob((b) => save(b, `${$("patient").value}-chart.png`), "image/png");
});

async function start() {
  if (!token) { showSignin(); return; }
  try { state.texts = await (await fetch("/alarm-texts.json")).json(); } catch (err) { state.texts = null; }
  try { await openSocket(); } catch (err) { status("Could not reach WardWatch."); return; }
  fillPatients();
  await load();
}
start();
