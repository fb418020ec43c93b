// One alert: what it is about, its evidence, every parameter around it, acknowledge and resolve.
"use strict";

const WORDS = {
  en: { back: "← Alert inbox", alert: "Alert", around: "Every parameter around the event", reading: "reading",
    qc_suspect: "QC suspect (3)", qc_fail: "QC fail (4)", limit: "limit of the station's profile", event: "alert open",
    notes: "Notes", note: "Note", note_hint: "What did you find or do? (required)", acknowledge: "Acknowledge",
    resolve: "Resolve", severity: "Severity", subject: "Subject", opened: "Opened", cleared: "Cleared", state: "State",
    evidence: "Evidence", need_note: "Write a note first.", saved: "Saved.", no_readings: "No readings in this window.",
    not_water: "Not a water station: no readings to draw.", ack_by: "Acknowledged by", res_by: "Resolved by",
    ph: "pH", turbidity_ntu: "Turbidity (NTU)", free_chlorine_mgl: "Free chlorine (mg/L)", conductivity_uscm: "Conductivity (µS/cm)",
    temperature_c: "Temperature (°C)", orp_mv: "ORP (mV)", pressure_bar: "Pressure (bar)", flow_m3h: "Flow (m³/h)", no_role: "Your role cannot change this alert.",
    subject_station: "station", subject_vehicle: "bus", subject_route: "route" },
  vi: { back: "← Hộp cảnh báo", alert: "Cảnh báo", around: "Mọi thông số quanh sự kiện", reading: "giá trị đo",
    qc_suspect: "QC nghi ngờ (3)", qc_fail: "QC lỗi (4)", limit: "giới hạn theo loại trạm", event: "thời gian cảnh báo",
    notes: "Ghi chú", note: "Ghi chú", note_hint: "Anh/chị đã phát hiện hay làm gì? (bắt buộc)", acknowledge: "Tiếp nhận",
    resolve: "Đã xử lý", severity: "Mức độ", subject: "Đối tượng", opened: "Bắt đầu", cleared: "Kết thúc", state: "Trạng thái",
    evidence: "Bằng chứng", need_note: "Hãy viết ghi chú trước.", saved: "Đã lưu.", no_readings: "Không có số liệu trong khoảng này.",
    not_water: "Không phải trạm nước: không có số liệu để vẽ.", ack_by: "Tiếp nhận bởi", res_by: "Xử lý bởi",
    ph: "pH", turbidity_ntu: "Độ đục (NTU)", free_chlorine_mgl: "Clo dư (mg/L)", conductivity_uscm: "Độ dẫn điện (µS/cm)",
    temperature_c: "Nhiệt độ (°C)", orp_mv: "ORP (mV)", pressure_bar: "Áp suất (bar)", flow_m3h: "Lưu lượng (m³/h)", no_role: "Vai trò của anh/chị không được thay đổi cảnh báo này.",
    subject_station: "trạm", subject_vehicle: "xe", subject_route: "tuyến" },
};
const PARAMS = ["ph", "turbidity_ntu", "free_chlorine_mgl", "conductivity_uscm", "temperature_c", "orp_mv", "pressure_bar", "flow_m3h"];
const ROLE_FOR = { station: "water_staff", vehicle: "transport_planner", route: "transport_planner" };
const alertId = Number(location.pathname.split("/").pop());
const $ = (id) => document.getElementById(id);
let alert = null, series = null, station = null;

function summary() {
  const a = alert;
  $("alert-id").textContent = "#" + a.alert_id;
  $("kind").textContent = CSAlerts.kind(a.kind);
  $("kind").dataset.kind = a.kind;
  $("explain").textContent = CSAlerts.summary(a);
  $("back").href = a.subject_kind === "station" ? "/water" : "/transit/alerts";
  const line = (key, value, cls) => CS.el("div", {}, CS.el("strong", {}, CS.t(key) + ": "), CS.el("span", { class: cls || "" }, value));
  const rows = [line("state", CS.t("state_" + a.state), "state-" + a.state), line("severity", CSAlerts.severity(a.severity), a.severity),
    line("subject", a.subject_kind === "station" ? stationLink(a) : `${CS.t("subject_" + a.subject_kind)} ${a.subject_id}`), line("opened", CS.time(a.opened_at)), line("cleared", CS.time(a.cleared_at))];
  if (a.acknowledged_by) rows.push(line("ack_by", `${a.acknowledged_by}, ${CS.time(a.acknowledged_at)}`));
  if (a.resolved_by) rows.push(line("res_by", `${a.resolved_by}, ${CS.time(a.resolved_at)}`));
  rows.push(CSAlerts.details(a));
  $("summary").replaceChildren(...rows);
  $("notes").replaceChildren(...a.notes.map(n => CS.el("li", {}, CS.el("strong", {}, `${n.by} · ${CS.time(n.at)} · ${CS.t(n.action)}: `), n.text)));
  const me = CS.me();
  const allowed = me && (me.role === "admin" || me.role === ROLE_FOR[a.subject_kind]);
  $("acknowledge").disabled = !allowed || a.state !== "open";
  $("resolve").disabled = !allowed || a.state === "resolved";
  if (me && !allowed) $("action-message").textContent = CS.t("no_role");
}

// The station's page over the hours around the alert.
function stationLink(a) {
  const opened = Date.parse(a.opened_at);
  const end = Math.min(Date.now(), (a.cleared_at ? Date.parse(a.cleared_at) : Date.now()) + 3 * 3600e3);
  const q = new URLSearchParams({ start: new Date(opened - 3 * 3600e3).toISOString(), end: new Date(Math.max(end, opened + 3600e3)).toISOString() });
  return CS.el("span", {}, `${CS.t("subject_station")} `,
    CS.el("a", { id: "station-link", href: `/water/stations/${encodeURIComponent(a.subject_id)}?${q}` }, a.subject_id));
}

function chart(param, rows, limits, w0, w1) {
  const W = 900, H = 150, L = 60, R = 10, T = 10, B = 22;
  const pts = rows.filter(r => r[param] !== null && r[param] !== undefined).map(r => [Date.parse(r.time), r[param], r[param + "_qc"]]);
  if (!pts.length) return null;
  const t0 = Date.parse(series.start), t1 = Date.parse(series.end);
  const lim = limits[param] || {};
  const vals = pts.map(p => p[1]).concat([lim.min, lim.max].filter(v => v !== null && v !== undefined));
  let v0 = Math.min(...vals), v1 = Math.max(...vals);
  if (v1 - v0 < 1e-9) { v0 -= 1; v1 += 1; }
  const pad = (v1 - v0) * 0.08; v0 -= pad; v1 += pad;
  const x = t => L + (t - t0) / (t1 - t0) * (W - L - R);
  const y = v => T + (v1 - v) / (v1 - v0) * (H - T - B);
  const svg = CSMap.svg("svg", { viewBox: `0 0 ${W} ${H}`, class: "chart", "data-param": param, role: "img" });
  svg.append(CSMap.svg("rect", { x: x(w0), y: T, width: Math.max(2, x(w1) - x(w0)), height: H - T - B, fill: "#ffe9b3" }));
  // Out-of-limit bands, shaded.
  if (lim.max !== null && lim.max !== undefined) svg.append(CSMap.svg("rect", { x: L, y: T, width: W - L - R, height: Math.max(0, y(lim.max) - T), fill: "#e8a39e", opacity: 0.35, class: "limit" }));
  if (lim.min !== null && lim.min !== undefined) svg.append(CSMap.svg("rect", { x: L, y: y(lim.min), width: W - L - R, height: Math.max(0, H - B - y(lim.min)), fill: "#e8a39e", opacity: 0.35, class: "limit" }));
  for (const v of [v0 + pad, (v0 + v1) / 2, v1 - pad]) {
    svg.append(CSMap.svg("line", { x1: L, x2: W - R, y1: y(v), y2: y(v), stroke: "#e3e8ed" }));
    const label = CSMap.svg("text", { x: L - 6, y: y(v) + 4, "text-anchor": "end" }); label.textContent = CS.num(v, 2); svg.append(label);
  }
  for (let i = 0; i <= 4; i++) {
    const t = t0 + (t1 - t0) * i / 4;
    const label = CSMap.svg("text", { x: x(t), y: H - 6, "text-anchor": "middle" }); label.textContent = CS.clock(t); svg.append(label);
  }
  let d = "", gap = true, last = null;
  for (const [t, v] of pts) {
    gap = gap || (last !== null && t - last > 10 * 60 * 1000);
    d += `${gap ? "M" : "L"}${x(t).toFixed(1)},${y(v).toFixed(1)}`; gap = false; last = t;
  }
  svg.append(CSMap.svg("path", { d, fill: "none", stroke: "#0b5cad", "stroke-width": 1.5 }));
  for (const [t, v, qc] of pts) {
    if (qc === 3 || qc === 4) svg.append(CSMap.svg("circle", { cx: x(t), cy: y(v), r: 3, fill: qc === 4 ? "#b3261e" : "#b26a00", class: "qc-" + qc }));
  }
  const title = CSMap.svg("text", { x: L + 4, y: T + 12, class: "chart-title" }); title.textContent = CS.t(param); svg.append(title);
  return svg;
}

function charts() {
  const box = $("charts");
  if (alert.subject_kind !== "station") { box.replaceChildren(CS.el("p", { class: "muted" }, CS.t("not_water"))); return; }
  if (!series) return;
  const w0 = Date.parse(alert.opened_at), w1 = alert.cleared_at ? Date.parse(alert.cleared_at) : Date.parse(series.end);
  const limits = (station && station.profile && station.profile.limits) || CS.config().water_limits || {};
  const drawn = PARAMS.map(p => chart(p, series.readings, limits, w0, w1)).filter(Boolean);
  box.replaceChildren(...(drawn.length ? drawn : [CS.el("p", { class: "muted" }, CS.t("no_readings"))]));
}

async function load() {
  alert = await CS.api(`/api/v1/alerts/${alertId}`);
  summary();
  if (alert.subject_kind === "station" && !series) {
    const opened = Date.parse(alert.opened_at);
    const end = Math.min(Date.now(), (alert.cleared_at ? Date.parse(alert.cleared_at) : opened) + 3 * 3600e3);
    const start = opened - 3 * 3600e3;
    const q = new URLSearchParams({ start: new Date(start).toISOString(), end: new Date(Math.max(end, opened + 60e3)).toISOString() });
    series = await CS.api(`/api/v1/water/stations/${encodeURIComponent(alert.subject_id)}/readings?${q}`).catch(() => null);
    // The limits drawn are the station's own (its rule profile).
    const all = await CS.api("/api/v1/water/stations", { redirect: false }).catch(() => ({ stations: [] }));
    station = all.stations.find((s) => s.device_id === alert.subject_id) || null;
  }
  charts();
}

async function act(action) {
  const note = $("note").value.trim();
  if (!note) { $("action-message").textContent = CS.t("need_note"); return; }
  try {
    alert = await CS.api(`/api/v1/alerts/${alertId}/${action}`, { method: "POST", body: { note } });
    $("note").value = "";
    $("action-message").textContent = CS.t("saved");
    summary();
  } catch (err) {
    $("action-message").textContent = `${CS.t("error")}: ${err.message}`;
  }
}
$("acknowledge").addEventListener("click", () => act("acknowledge"));
$("resolve").addEventListener("click", () => act("resolve"));
const domain = location.pathname.startsWith("/transit/") ? "transit_alerts" : "water";
CS.init({ page: domain, words: WORDS }).then(load);
CS.onLang(() => { if (alert) { summary(); charts(); } });
