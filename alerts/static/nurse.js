// WardWatch nurse station: one screen for a ward. No framework, no build step, nothing from a CDN.
"use strict";

const PRIORITY = { high: 3, medium: 2, low: 1 };
const SHAPE = { high: "▲", medium: "◆", low: "●" };  // priority told by shape as well as colour
const FEED_STALE_MS = 12000;       // no message (heartbeats come every 5 s) for this long = feed down
const EXPIRY_WARN_MS = 24 * 3600_000; // a token expiring sooner is announced on the page
const PATIENT_STALE_MS = 60000;    // a patient's newest vitals older than this = the monitor went silent
const SEEN_MS = 1500;              // an alarm shown for less than this when the nurse clicked was not seen
const SHOWN = [["heart_rate", "HR", "/min"], ["spo2", "SpO₂", "%"], ["resp_rate", "RR", "/min"],
               ["sbp", "SBP", "mmHg"], ["temperature", "Temp", "°C"], ["pulse_rate", "Pulse", "/min"]];

const state = {
  token: sessionStorage.getItem("ww_token"), wards: sessionStorage.getItem("ww_wards") || "",
  ws: null, lastSeq: null, lastMessage: 0, serverOffset: 0, backoff: 1000, everConnected: false,
  alarms: new Map(), vitals: new Map(), patients: new Map(), audio: null, connected: false, sound: true,
  monitoring: { ok: true, reason: "" }, shownAt: new Map(), texts: null,
};

const $ = (id) => document.getElementById(id);
const now = () => Date.now() + state.serverOffset;
fetch("/alarm-texts.json").then((r) => r.json()).then((t) => { state.texts = t; $("banner-text").textContent = t.page.feed_down; render(); })
  .catch(() => { $("banner-text").textContent = "FEED DOWN: alarms and values may be missing. Check patients directly."; });

function showLogin(message) {
  $("login").classList.remove("hidden"); $("station").classList.add("hidden"); $("logout").classList.add("hidden");
  $("login-error").textContent = message || "";
}

function audio() {
  // Browsers start audio only after a user gesture: the sign-in click, or any click on the page.
  if (!state.audio) state.audio = new (window.AudioContext || window.webkitAudioContext)();
  if (state.audio.state === "suspended") state.audio.resume();
}
document.addEventListener("click", audio, { once: false, capture: true });

$("login-form").addEventListener("submit", (e) => {
  e.preventDefault();
  state.token = $("token").value.trim(); state.wards = $("wards").value.trim();
  sessionStorage.setItem("ww_token", state.token); sessionStorage.setItem("ww_wards", state.wards);
  audio(); state.lastSeq = null; connect();
});
$("logout").addEventListener("click", () => { sessionStorage.clear(); state.token = null; if (state.ws) state.ws.close(); showLogin(); });
$("sound").addEventListener("click", () => {
  state.sound = !state.sound; $("sound").textContent = state.sound ? "Sound on" : "Sound off (this screen)";
  $("sound").setAttribute("aria-pressed", String(state.sound));
});

function connect() {
  if (!state.token) { showLogin(); return; }
  const ws = new WebSocket((location.protocol === "https:" ? "wss://" : "ws://") + location.host + "/ws");
  state.ws = ws;
  ws.onopen = () => ws.send(JSON.stringify({ type: "auth", token: state.token }));
  ws.onmessage = (m) => { state.lastMessage = Date.now(); handle(JSON.parse(m.data)); };
  ws.onclose = (e) => {
    state.connected = false; render();
    if (e.code === 4401 || e.code === 4403) { sessionStorage.removeItem("ww_token"); state.token = null;
      showLogin(e.code === 4403 ? "That token may not open the ward feed." : e.reason.startsWith("token expired")
        ? "That token has expired: ask for a new one." : "That token is not valid."); return; }
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
      state.connected = true; state.everConnected = true; state.backoff = 1000; state.serverOffset = msg.server_time - Date.now();
      $("login").classList.add("hidden"); $("station").classList.remove("hidden");
      $("logout").classList.remove("hidden"); $("sound").classList.remove("hidden");
      $("user").textContent = `${msg.user} (${msg.role})`;
      $("ward-label").textContent = state.wards ? `Ward ${state.wards}` : "All wards";
      if (msg.monitoring) state.monitoring = msg.monitoring;
      state.expiresAt = msg.expires_at ?? null;
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

function ackBed(ids) {
  // Acknowledge what the nurse saw: the alarms the button was drawn with, and only those shown
  // long enough to have been read; one raised since stays unacknowledged.
  const t = Date.now();
  for (const id of ids) {
    const a = state.alarms.get(id), seen = state.shownAt.get(id);
    if (a && a.state !== "acknowledged" && seen !== undefined && t - seen >= SEEN_MS) act("ack", id);
  }
}

function age(ms) {
  const s = Math.max(0, Math.round((now() - ms) / 1000));
  return s < 90 ? `${s} s` : s < 5400 ? `${Math.round(s / 60)} min` : `${Math.round(s / 3600)} h`;
}

function sparkline(points, lo, hi) {
  if (!points || points.length < 2) return "";
  const min = Math.min(lo, ...points), max = Math.max(hi, ...points), n = points.length;
  const d = points.map((v, i) => `${(i / (n - 1) * 100).toFixed(1)},${(30 - (v - min) / (max - min || 1) * 28).toFixed(1)}`).join(" ");
  return `<polyline fill="none" stroke="currentColor" stroke-width="1.5" points="${d}"/>`;
}

function esc(s) { return String(s ?? "").replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" }[c])); }
const bedOf = (pid) => state.patients.get(pid)?.bed;
const isTechnical = (a) => a.kind === "technical";
const open = (a) => a.state !== "acknowledged";

function feedDown() { return !state.connected || Date.now() - state.lastMessage > FEED_STALE_MS; }

function render() {
  const down = feedDown() && !!state.token && state.everConnected;
  $("banner").classList.toggle("hidden", !down);
  $("banner-age").textContent = down && state.lastMessage ? `Last data ${age(state.lastMessage + state.serverOffset)} ago.` : "";
  document.body.classList.toggle("feed-down", down);
  // Detectors stopped: as loud as the worst alarm, since every alarm is now missing.
  const stopped = state.connected && state.monitoring && state.monitoring.ok === false;
  $("monitoring-banner").classList.toggle("hidden", !stopped);
  $("monitoring-reason").textContent = stopped ? `(${state.monitoring.reason})` : "";
  // Delayed (the detectors far behind) is as loud: an alarm raised now reaches this page late.
  $("monitoring-title").textContent = stopped && state.monitoring.state === "delayed"
    ? "MONITORING DELAYED: alarms reach this page late." : "MONITORING STOPPED: no alarms are being raised.";
  // A token that expires within a day: said ahead, since an expired one closes the feed.
  const left = state.expiresAt == null ? Infinity : state.expiresAt - now();
  $("expiry-banner").classList.toggle("hidden", !(left < EXPIRY_WARN_MS));
  if (left < EXPIRY_WARN_MS) {
    const h = Math.floor(Math.max(0, left) / 3600_000), m = Math.floor((Math.max(0, left) % 3600_000) / 60_000);
    $("expiry-banner").textContent = `This screen's token expires in ${h} h ${m} min (${new Date(state.expiresAt - state.serverOffset).toLocaleString()}): `
      + "ask for a new one before then, or this screen stops showing alarms.";
  }
  // The monitors' own alarms (kind "device") are kept apart: their own list, no sound, no tile colour.
  const all = [...state.alarms.values()];
  const alarms = all.filter((a) => a.kind !== "device");
  const deviceAlarms = all.filter((a) => a.kind === "device").sort((a, b) => (PRIORITY[b.priority] - PRIORITY[a.priority]) || (a.raised_at - b.raised_at));
  renderAlarms(alarms);
  renderCounts(alarms);
  $("device-alarms").classList.toggle("hidden", deviceAlarms.length === 0);
  $("device-alarm-count").textContent = deviceAlarms.length;
  $("device-alarm-list").innerHTML = deviceAlarms.map(deviceAlarm).join("");

  const worst = new Map();
  for (const a of alarms) if (open(a) && !isTechnical(a)) worst.set(a.patient, Math.max(worst.get(a.patient) || 0, PRIORITY[a.priority]));
  const ids = new Set([...state.patients.keys(), ...state.vitals.keys()]);
  $("tiles").innerHTML = [...ids].sort((a, b) => String(bedOf(a) ?? a).localeCompare(String(bedOf(b) ?? b), undefined, { numeric: true }))
    .map((pid) => tile(pid, state.vitals.get(pid), state.patients.get(pid), worst.get(pid) || 0, down)).join("");
  sound(alarms, down);
}

function renderCounts(alarms) {
  const c = { high: 0, medium: 0, low: 0 }; let technical = 0;
  for (const a of alarms) if (open(a)) { if (isTechnical(a)) technical++; else c[a.priority]++; }
  $("counts").innerHTML = ["high", "medium", "low"].map((p) =>
    `<span class="pc ${p}${c[p] ? "" : " zero"}" data-testid="count-${p}" aria-label="${c[p]} ${p} priority">${SHAPE[p]} ${c[p]}<span class="w"> ${p}</span></span>`).join("")
    + `<span class="pc technical${technical ? "" : " zero"}" data-testid="count-technical" aria-label="${technical} technical">⚙ ${technical}<span class="w"> technical</span></span>`;
}

function renderAlarms(alarms) {
  // One group per bed: the bed's most urgent open alarm first (technical ones count: an
  // unmonitored patient must fail loud), then the oldest.
  const groups = new Map();
  for (const a of alarms) { if (!groups.has(a.patient)) groups.set(a.patient, []); groups.get(a.patient).push(a); }
  const t = Date.now();
  for (const a of alarms) if (!state.shownAt.has(a.id)) state.shownAt.set(a.id, t);
  for (const id of [...state.shownAt.keys()]) if (!state.alarms.has(id)) state.shownAt.delete(id);
  const rank = (list) => Math.max(0, ...list.filter(open).map((a) => PRIORITY[a.priority]));
  const sorted = [...groups.entries()].map(([pid, list]) => {
    list.sort((a, b) => (open(b) - open(a)) || (PRIORITY[b.priority] - PRIORITY[a.priority]) || (a.raised_at - b.raised_at));
    return { pid, list, rank: rank(list), oldest: Math.min(...list.map((a) => a.raised_at)) };
  }).sort((a, b) => (b.rank - a.rank) || (a.oldest - b.oldest));
  $("alarm-count").textContent = alarms.filter(open).length;
  $("no-alarms").classList.toggle("hidden", alarms.length > 0);
  $("alarm-list").innerHTML = sorted.map(({ pid, list, rank: r }) => {
    const bed = bedOf(pid), top = ["", "low", "medium", "high"][r];
    const unacked = list.filter(open).map((a) => a.id);
    return `<li class="bed-group ${top}" data-testid="bed-group" data-patient="${esc(pid)}" data-rank="${r}">
      <div class="bed-head"><a class="who" href="/history?patient=${encodeURIComponent(pid)}" aria-label="Chart of ${bed ? "bed " + esc(bed) : esc(pid)}">${bed ? "Bed " + esc(bed) : esc(pid)}</a>
        <span class="pid">${esc(pid)}</span>
        ${unacked.length ? `<button data-act="ack-bed" data-ids="${esc(unacked.join(" "))}" data-testid="ack-bed" aria-label="Acknowledge ${unacked.length} alarm(s) of ${bed ? "bed " + esc(bed) : esc(pid)}">Acknowledge ${unacked.length > 1 ? unacked.length : ""}</button>` : ""}</div>
      <ol class="bed-alarms">${list.map(alarmRow).join("")}</ol></li>`;
  }).join("");
}

function alarmRow(a) {
  const paused = a.audio_paused_until && a.audio_paused_until > now();
  const tech = isTechnical(a);
  const stateText = a.state === "acknowledged" ? `acknowledged by ${esc(a.acknowledged_by)}`
    : a.state === "cleared" ? "ended, latched until acknowledged" : "active";
  return `<li class="alarm ${a.priority} ${a.state} ${tech ? "technical" : "physiological"}" data-testid="alarm" data-alert-id="${esc(a.id)}" data-state="${esc(a.state)}" data-kind="${esc(a.kind)}">
    <span class="prio" aria-label="${tech ? "technical alarm, " : ""}${esc(a.priority)} priority">${tech ? "⚙" : SHAPE[a.priority] || ""} ${tech ? "TECH " : ""}${esc(a.priority)}${a.escalation_level ? " ↑" + a.escalation_level : ""}</span>
    <span class="msg" data-testid="alarm-text">${esc(a.message)}</span>
    <span class="meta"><span class="age">${age(a.raised_at)}</span> · <span class="state" data-testid="alarm-state">${stateText}${paused ? " · audio paused" : ""}</span></span>
    <span class="actions">
      ${!paused && a.state !== "acknowledged" ? `<button data-act="pause" data-id="${esc(a.id)}" class="ghost small">Pause audio 2 min</button>` : ""}
      <button data-act="resolve" data-id="${esc(a.id)}" class="ghost small">Resolve</button>
    </span></li>`;
}

function deviceAlarm(a) {
  const m = a.monitor || {};
  const bed = bedOf(a.patient) || m.location?.bed;
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

function value(k, label, unit, v, down) {
  // Sensor off: no number (the last one would look current). Older than the metric's expected
  // interval: greyed, with its age. Feed down: every value is as old as the feed.
  const off = v.stale_metrics?.includes(k);
  const at = v.value_ts?.[k] ?? v.ts;
  const limit = (state.texts?.expected_interval_s?.[k] ?? 120) * 1000;
  const old = !off && (down || now() - at > limit);
  const shown = off ? "—" : String(Math.round(v.values[k] * 10) / 10);
  const note = off ? "sensor off" : old ? age(at) + " old" : "";
  return `<div class="val${off ? " off" : ""}${old ? " old" : ""}" data-testid="val-${k}" data-state="${off ? "sensor-off" : old ? "old" : "current"}">
    <span class="v" data-testid="v-${k}" aria-label="${label} ${off ? "sensor off" : shown + " " + unit + (old ? ", " + note : "")}">${shown}</span>
    <span class="u">${label} ${unit}${note ? ` · <b>${note}</b>` : ""}</span></div>`;
}

function tile(pid, v, p, worst, down) {
  const silent = !down && (!v || now() - v.ts > PATIENT_STALE_MS);
  const news = v?.news2;
  const newsCls = news == null ? "" : news >= 7 ? "h" : news >= 5 ? "m" : "";
  const vals = v ? SHOWN.filter(([k]) => v.values?.[k] !== undefined).slice(0, 6).map(([k, label, unit]) => value(k, label, unit, v, down)).join("") : "";
  const bed = p?.bed ? "Bed " + esc(p.bed) : esc(pid);
  const flag = down ? `<div class="staleflag feed" data-testid="patient-feed-down">Feed down: ${v ? "values from " + age(v.ts) + " ago" : "no values yet"}</div>`
    : silent ? `<div class="staleflag" data-testid="patient-stale">${esc(state.texts?.page?.device_silent || "No data from the monitor")} ${v ? "for " + age(v.ts) : "yet"}</div>` : "";
  return `<article role="listitem" class="tile ${worst === 3 ? "alarm-high" : worst === 2 ? "alarm-medium" : ""} ${silent ? "stale" : ""} ${down ? "feed-down" : ""}" data-testid="tile" data-patient="${esc(pid)}" aria-label="${bed}">
    <div class="head"><a class="bed" href="/history?patient=${encodeURIComponent(pid)}" data-testid="tile-chart" aria-label="Chart of ${bed}">${bed}</a>
      <span class="pid">${esc(pid)}</span>
      ${news != null ? `<span class="news ${newsCls}" title="NEWS2 (partial: no consciousness or O₂ flag)">NEWS2 ${news}</span>` : ""}</div>
    ${flag}
    <div class="vals">${vals}</div>
    <svg viewBox="0 0 100 32" preserveAspectRatio="none" class="spark" aria-hidden="true"><g class="spark-hr">${sparkline(v?.trend?.heart_rate, 50, 110)}</g><g class="spark-spo2">${sparkline(v?.trend?.spo2, 90, 100)}</g></svg>
  </article>`;
}

// ------------------------------------------------------------------ sound (IEC 60601-1-8 bursts)
// High: a 10-pulse burst (3 + 2, pause, 3 + 2) every 5 s; medium: 3 pulses every 10 s; low: 2
// pulses every 30 s; the feed dropping: a falling two-tone every 10 s (it is a technical alarm of
// WardWatch itself). Pulses of ~150 ms with harmonics (a triangle wave) at 523 Hz (C5).
const BURSTS = {
  high: { every: 5000, at: [0, 0.25, 0.5, 1.0, 1.25, 2.0, 2.25, 2.5, 3.0, 3.25], hz: [523, 523, 523, 523, 523, 523, 523, 523, 523, 523] },
  medium: { every: 10000, at: [0, 0.3, 0.6], hz: [523, 523, 523] },
  low: { every: 30000, at: [0, 0.35], hz: [440, 440] },
  feed: { every: 10000, at: [0, 0.4], hz: [660, 440] },
};
const lastBurst = {};
function playBurst(kind) {
  const b = BURSTS[kind], ctx = state.audio;
  if (Date.now() - (lastBurst[kind] || 0) < b.every) return;
  lastBurst[kind] = Date.now();
  window.wwLastSound = kind;  // for the browser tests
  if (!ctx || !state.sound) return;
  const t = ctx.currentTime;
  b.at.forEach((dt, i) => {
    const o = ctx.createOscillator(), g = ctx.createGain();
    o.type = "triangle"; o.frequency.value = b.hz[i]; o.connect(g); g.connect(ctx.destination);
    g.gain.setValueAtTime(0.0001, t + dt); g.gain.exponentialRampToValueAtTime(0.2, t + dt + 0.02);
    g.gain.setValueAtTime(0.2, t + dt + 0.13); g.gain.exponentialRampToValueAtTime(0.0001, t + dt + 0.16);
    o.start(t + dt); o.stop(t + dt + 0.17);
  });
}

function sound(alarms, down) {
  if (down) { playBurst("feed"); return; }
  if (state.connected && state.monitoring && state.monitoring.ok === false) { playBurst("high"); return; }
  const ringing = alarms.filter((a) => a.state === "active" && !(a.audio_paused_until > now()));
  const top = Math.max(0, ...ringing.map((a) => PRIORITY[a.priority]));
  if (top) playBurst(["", "low", "medium", "high"][top]);
}

$("alarm-list").addEventListener("click", (e) => {
  const b = e.target.closest("button[data-act]"); if (!b) return;
  if (b.dataset.act === "ack-bed") ackBed(b.dataset.ids.split(" ")); else act(b.dataset.act, b.dataset.id);
});
$("device-alarm-list").addEventListener("click", (e) => { const b = e.target.closest("button[data-act]"); if (b) act(b.dataset.act, b.dataset.id); });
setInterval(render, 1000);  // ages, staleness and the banner move even when nothing arrives
if (state.token) connect(); else showLogin();
