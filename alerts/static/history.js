// Clinician history: charts from /api/history (downsampled by the store), CSV and FHIR export.
"use strict";
const $ = (id) => document.getElementById(id);
$("token").value = sessionStorage.getItem("ww_token") || "";
const params = new URLSearchParams(location.search);
if (params.get("patient")) $("patient").value = params.get("patient");

function range() {
  const end = $("end").value ? new Date($("end").value).getTime() : Date.now();
  return { start: end - Number($("range").value), stop: end };
}

async function get(kind) {
  const token = $("token").value.trim();
  sessionStorage.setItem("ww_token", token);
  const { start, stop } = range();
  const q = new URLSearchParams({ patient: $("patient").value.trim(), start, stop });
  const r = await fetch(`/api/history${kind}?${q}`, { headers: { Authorization: `Bearer ${token}` } });
  if (!r.ok) throw new Error(`${r.status}: ${(await r.text()).slice(0, 200)}`);
  return r;
}

function chart(title, points, color) {
  if (!points.length) return "";
  const t0 = points[0][0], t1 = points[points.length - 1][0] || t0 + 1;
  const vs = points.map((p) => p[1]), lo = Math.min(...vs), hi = Math.max(...vs);
  const d = points.map(([t, v]) => `${((t - t0) / (t1 - t0 || 1) * 600).toFixed(1)},${(150 - (v - lo) / (hi - lo || 1) * 140 - 5).toFixed(1)}`).join(" ");
  return `<div class="chart" data-testid="chart"><h3>${title} <span class="quiet">${lo.toFixed(1)}–${hi.toFixed(1)} · ${points.length} points</span></h3>
    <svg viewBox="0 0 600 150" preserveAspectRatio="none"><polyline fill="none" stroke="${color}" stroke-width="1.5" points="${d}"/></svg></div>`;
}

const esc = (s) => String(s ?? "").replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" }[c]));

$("q").addEventListener("submit", async (e) => {
  e.preventDefault();
  $("status").textContent = "Loading…";
  try {
    const h = await (await get("")).json();
    const colors = ["#4cc9f0", "#52b788", "#f4a261", "#e5383b", "#b5a8ff", "#ffd166"];
    $("charts").innerHTML = Object.entries(h.vitals).map(([m, p], i) => chart(m, p, colors[i % colors.length])).join("")
      + Object.entries(h.scores).map(([s, p]) => chart(`score: ${s}`, p, "#ffd166")).join("");
    document.querySelector("#alarms tbody").innerHTML = h.alarms.map((a) =>
      `<tr><td>${new Date(a.time).toLocaleString()}</td><td>${esc(a.event)}</td><td>${esc(a.condition)}</td><td>${esc(a.priority)}</td><td>${esc(a.message)}</td></tr>`).join("");
    $("status").textContent = `${h.every_ms ? "averaged per " + Math.round(h.every_ms / 1000) + " s" : "raw readings"}`;
  } catch (err) { $("status").textContent = `Could not load: ${err.message}`; }
});

async function download(kind, name) {
  try {
    const blob = await (await get(kind)).blob();
    const a = document.createElement("a"); a.href = URL.createObjectURL(blob); a.download = name; a.click();
  } catch (err) { $("status").textContent = `Could not export: ${err.message}`; }
}
$("csv").addEventListener("click", () => download(".csv", `${$("patient").value}-history.csv`));
$("fhir").addEventListener("click", () => download(".fhir", `${$("patient").value}-history.fhir.json`));
