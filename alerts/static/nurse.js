// WardWatch nurse station: one screen for a ward. No framework, no build step, nothing from a CDN.
"use strict";

const PRIORITY = { high: 3, medium: 2, low: 1 };
const FEED_STALE_MS = 12000;       // no message (heartbeats come every 5 s) for this long = feed stale
const PATIENT_STALE_MS = 60000;    // a patient's newest vitals older than this = device silent
const SHOWN = [["heart_rate", "HR", "/min"], ["spo2", "SpO₂", "%"], ["resp_rate", "RR", "/min"],
               ["sbp", "SBP", "mmHg"], ["temperature", "Temp", "°C"], ["pulse_rate", "Pulse", "/min"]];

const state = {
  token: sessionStorage.getItem("ww_token"), wards: sessionStorage.getItem("ww_wards") || "",
  ws: null, lastSeq: null, lastMessage: 0, serverOffset: 0, backoff: 1000,
  alarms: new Map(), vitals: new Map(), patients: new Map(), audio: null, connected: false,
  monitoring: { ok: true, reason: "" },
};

const $ = (id) => document.getElementById(id);
const now = () => Date.now() + state.serverOffset;

function showLogin(message) {
  $("login").classList.remove("hidden"); $("station").classList.add("hidden"); $("logout").classList.add("hidden");
  $("login-error").textContent = message || "";
}

$("login-form").addEventListener("submit", (e) => {
  e.preventDefault();
  state.token = $("token").value.trim(); state.wards = $("wards").value.trim();
  sessionStorage.setItem("ww_token", state.token); sessionStorage.setItem("ww_wards", state.wards);
  state.audio = state.audio || new (window.AudioContext || window.webkitAudioContext)();  // needs this click
  state.lastSeq = null; connect();
});
$("logout").addEventListener("click", () => { sessionStorage.clear(); state.token = null; if (state.ws) state.ws.close(); showLogin(); });

function connect() {
  if (!state.token) { showLogin(); return; }
  const ws = new WebSocket((location.protocol === "https:" ? "wss://" : "ws://") + location.host + "/ws");
  state.ws = ws;
  ws.onopen = () => ws.send(JSON.stringify({ type: "auth", token: state.token }));
  ws.onmessage = (m) => { state.lastMessage = Date.now(); handle(JSON.parse(m.data)); };
  ws.onclose = (e) => {
    state.connected = false; render();
    if (e.code === 4401 || e.code === 4403) { sessionStorage.removeItem("ww_token"); state.token = null;
      showLogin(e.code === 4401 ? "That token is not valid." : "That token may not open the ward feed."); return; }
    if (state.ws === ws && state.token) { setTimeout(connect, state.backoff); state.backoff = Math.min(state.backoff * 2, 10000); }
  };
}

function subscribe() {
  const wards = state.wards ? state.wards.split(",").map((w) => w.trim()).filter(Boolean) : ["*"];
  state.ws.send(JSON.stringify({ type: "subscribe", wards, since: state.lastSeq }));
}

function handle(msg) {
  switch (msg.type) {
    case "hello":
      state.connected = true; state.backoff = 1000; state.serverOffset = msg.server_time - Date.now();
      $("login").classList.add("hidden"); $("station").classList.remove("hidden"); $("logout").classList.remove("hidden");
      $("user").textContent = `${msg.user} (${msg.role})`;
      $("ward-label").textContent = state.wards ? `Ward ${state.wards}` : "All wards";
      if (msg.monitoring) state.monitoring = msg.monitoring;
      subscribe(); break;
    case "monitoring": state.monitoring = msg; break;
    case "snapshot":
      state.alarms.clear();
      for (const a of msg.alarms) state.alarms.set(a.id, a);
      for (const p of msg.patients || []) state.patients.set(p.patient, p);
      for (const v of msg.vitals || []) state.vitals.set(v.patient, v);
      state.lastSeq = msg.seq; break;
    case "replay": for (const e of msg.events) applyEvent(e); state.lastSeq = Math.max(state.lastSeq ?? 0, msg.seq); break;
    case "batch":
      for (const e of msg.events) applyEvent(e);
      for (const v of msg.vitals) state.vitals.set(v.patient, v); break;
    case "resync": subscribe(); break;
    case "heartbeat": state.serverOffset = msg.server_time - Date.now(); if (msg.monitoring) state.monitoring = msg.monitoring; break;
    case "error": console.warn("server:", msg.message); break;
  }
  render();
}

function applyEvent(e) {
  if (state.lastSeq !== null && e.seq <= state.lastSeq) return;   // already shown: never twice
  state.lastSeq = e.seq;
  const a = Object.assign({}, e.alert, { ward: e.ward });
  if (a.state === "resolved") state.alarms.delete(a.id); else state.alarms.set(a.id, a);
}

function act(type, id) { if (state.ws && state.connected) state.ws.send(JSON.stringify({ type, alert_id: id })); }

function age(ms) {
  const s = Math.max(0, Math.round((now() - ms) / 1000));
  return s < 90 ? `${s}s` : s < 5400 ? `${Math.round(s / 60)} min` : `${Math.round(s / 3600)} h`;
}

function sparkline(points, lo, hi) {
  if (!points || points.length < 2) return "";
  const min = Math.min(lo, ...points), max = Math.max(hi, ...points), n = points.length;
  const d = points.map((v, i) => `${(i / (n - 1) * 100).toFixed(1)},${(30 - (v - min) / (max - min || 1) * 28).toFixed(1)}`).join(" ");
  return `<polyline fill="none" stroke="currentColor" stroke-width="1.5" points="${d}"/>`;
}

function esc(s) { return String(s ?? "").replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" }[c])); }

function render() {
  const feedStale = !state.connected || Date.now() - state.lastMessage > FEED_STALE_MS;
  $("banner").classList.toggle("hidden", !feedStale || !state.token);
  // Detectors stopped: as loud as the worst alarm, since every alarm is now missing.
  const stopped = state.connected && state.monitoring && state.monitoring.ok === false;
  $("monitoring-banner").classList.toggle("hidden", !stopped);
  $("monitoring-reason").textContent = stopped ? `(${state.monitoring.reason})` : "";
  const sorted = [...state.alarms.values()].sort((a, b) =>
    (PRIORITY[b.priority] - PRIORITY[a.priority]) || (a.raised_at - b.raised_at));
  // The monitors' own alarms (kind "device") are kept apart: their own list, no sound, no tile colour.
  const alarms = sorted.filter((a) => a.kind !== "device");
  const deviceAlarms = sorted.filter((a) => a.kind === "device");
  $("alarm-count").textContent = alarms.length;
  $("no-alarms").classList.toggle("hidden", alarms.length > 0);
  $("alarm-list").innerHTML = alarms.map((a) => {
    const bed = state.patients.get(a.patient)?.bed;
    const paused = a.audio_paused_until && a.audio_paused_until > now();
    const stateText = a.state === "acknowledged" ? `acknowledged by ${esc(a.acknowledged_by)}`
      : a.state === "cleared" ? "condition ended, latched until acknowledged" : "active";
    return `<li class="alarm ${a.priority} ${a.state}" data-testid="alarm" data-alert-id="${esc(a.id)}" data-state="${esc(a.state)}">
      <div class="top"><span class="prio">${esc(a.priority)}${a.escalation_level ? " ↑" + a.escalation_level : ""}</span>
        <span class="who">${bed ? "Bed " + esc(bed) + " · " : ""}${esc(a.patient)}</span>
        <span class="age">${age(a.raised_at)}</span><span class="state" data-testid="alarm-state">${stateText}${paused ? " · audio paused" : ""}</span></div>
      <div class="msg">${a.kind === "technical" ? "⚙ " : ""}${esc(a.message)}</div>
      <div class="actions">
        ${a.state !== "acknowledged" ? `<button data-act="ack" data-id="${esc(a.id)}">Acknowledge</button>` : ""}
        ${!paused ? `<button data-act="pause" data-id="${esc(a.id)}" class="ghost">Pause audio 2 min</button>` : ""}
        <button data-act="resolve" data-id="${esc(a.id)}" class="ghost">Resolve</button>
      </div></li>`;
  }).join("");

  $("device-alarms").classList.toggle("hidden", deviceAlarms.length === 0);
  $("device-alarm-count").textContent = deviceAlarms.length;
  $("device-alarm-list").innerHTML = deviceAlarms.map(deviceAlarm).join("");

  const worst = new Map();
  for (const a of alarms) if (a.state !== "acknowledged") worst.set(a.patient, Math.max(worst.get(a.patient) || 0, PRIORITY[a.priority]));
  const ids = new Set([...state.patients.keys(), ...state.vitals.keys()]);
  $("tiles").innerHTML = [...ids].sort((a, b) => String(state.patients.get(a)?.bed ?? a).localeCompare(String(state.patients.get(b)?.bed ?? b), undefined, { numeric: true }))
    .map((pid) => tile(pid, state.vitals.get(pid), state.patients.get(pid), worst.get(pid) || 0)).join("");
  beep(alarms);
}

function deviceAlarm(a) {
  const m = a.monitor || {};
  const bed = state.patients.get(a.patient)?.bed || m.location?.bed;
  const atMonitor = m.state === "ended" ? "ended at the monitor"
    : m.inactivation === "alert-acknowledged" ? "acknowledged at the monitor"
    : ["audio-paused", "audio-off", "alarm-paused", "alarm-off"].includes(m.inactivation) ? `${esc(m.inactivation.replace("-", " "))} at the monitor`
    : "active at the monitor";
  const here = a.state === "acknowledged" || (a.state === "resolved" && a.acknowledged_by)
    ? ` · acknowledged in WardWatch by ${esc(a.acknowledged_by)}` : "";
  const source = [m.source, m.source_value != null ? `${m.source_value}${m.source_unit ? " " + m.source_unit : ""}` : "",
                  m.limits ? `limits ${m.limits}` : ""].filter(Boolean).map(esc).join(" · ");
  return `<li class="alarm device ${a.priority} ${a.state}" data-testid="device-alarm" data-alert-id="${esc(a.id)}" data-state="${esc(a.state)}" data-monitor-state="${esc(m.state)}">
    <div class="top"><span class="prio" title="the monitor's priority">monitor ${esc(m.device_priority || a.priority)}</span>
      <span class="who">${bed ? "Bed " + esc(bed) + " · " : ""}${esc(a.patient)}</span>
      <span class="age">${age(m.ts || a.raised_at)}</span><span class="state" data-testid="device-alarm-state">${atMonitor}${here}</span></div>
    <div class="msg" data-testid="device-alarm-text">${esc(m.text || m.event)}</div>
    <div class="src quiet">${esc(m.event)}${source ? " · " + source : ""} · ${esc(m.device)}</div>
    <div class="actions">
      ${a.state !== "acknowledged" ? `<button data-act="ack" data-id="${esc(a.id)}" title="Recorded in WardWatch; the monitor keeps alarming until it is handled at the bedside">Acknowledge in WardWatch</button>` : ""}
      <span class="quiet small" data-testid="device-alarm-warning">Does not silence the monitor at the bedside.</span>
    </div></li>`;
}

function tile(pid, v, p, worst) {
  const stale = !v || now() - v.ts > PATIENT_STALE_MS;
  const news = v?.news2;
  const newsCls = news == null ? "" : news >= 7 ? "h" : news >= 5 ? "m" : "";
  const vals = SHOWN.filter(([k]) => v?.values?.[k] !== undefined).slice(0, 6).map(([k, label, unit]) =>
    `<div><span class="v" data-testid="v-${k}">${Math.round(v.values[k] * 10) / 10}</span><span class="u">${label} ${unit}${v.stale_metrics?.includes(k) ? " · sensor off" : ""}</span></div>`).join("");
  return `<article class="tile ${worst === 3 ? "alarm-high" : worst === 2 ? "alarm-medium" : ""} ${stale ? "stale" : ""}" data-testid="tile" data-patient="${esc(pid)}">
    <div class="head"><span class="bed">${p?.bed ? "Bed " + esc(p.bed) : esc(pid)}</span>
      ${news != null ? `<span class="news ${newsCls}" title="NEWS2 (partial: no consciousness or O₂ flag)">NEWS2 ${news}</span>` : ""}</div>
    <div class="pid">${esc(pid)}</div>
    ${stale ? `<div class="staleflag" data-testid="patient-stale">NO DATA ${v ? age(v.ts) : ""}: check device</div>` : ""}
    <div class="vals">${vals}</div>
    <svg viewBox="0 0 100 32" preserveAspectRatio="none" class="spark-hr">${sparkline(v?.trend?.heart_rate, 50, 110)}</svg>
    <svg viewBox="0 0 100 32" preserveAspectRatio="none" class="spark-spo2">${sparkline(v?.trend?.spo2, 90, 100)}</svg>
  </article>`;
}

let lastBeep = 0;
function beep(alarms) {
  const ring = (state.connected && state.monitoring && state.monitoring.ok === false)
    || alarms.some((a) => a.priority === "high" && a.state === "active" && !(a.audio_paused_until > now()));
  if (!ring || !state.audio || Date.now() - lastBeep < 2000) return;
  lastBeep = Date.now();
  const ctx = state.audio, t = ctx.currentTime;
  for (let i = 0; i < 3; i++) {  // IEC 60601-1-8 style high-priority burst: three quick pulses
    const o = ctx.createOscillator(), g = ctx.createGain();
    o.frequency.value = 880; o.connect(g); g.connect(ctx.destination);
    g.gain.setValueAtTime(0.15, t + i * 0.2); g.gain.setValueAtTime(0, t + i * 0.2 + 0.12);
    o.start(t + i * 0.2); o.stop(t + i * 0.2 + 0.15);
  }
}

for (const list of ["alarm-list", "device-alarm-list"])
  $(list).addEventListener("click", (e) => { const b = e.target.closest("button[data-act]"); if (b) act(b.dataset.act, b.dataset.id); });
setInterval(render, 1000);  // ages, staleness and the banner move even when nothing arrives
if (state.token) connect(); else showLogin();
