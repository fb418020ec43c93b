// One water station: trend charts of its parameters for a period, bucketed by the server to the
// charts' width, with QC flags, alerts and maintenance windows drawn on them; drag to zoom.
// Beside them: its state, kind and instruments, open alerts, recent notes, maintenance windows.
"use strict";

const WORDS = {
  en: { back: "← Water stations", day: "Day", week: "Week", month: "Month", from: "From", to: "To", custom: "Show this period",
    reset_zoom: "Reset zoom", bucket: "averaged per", drag: "drag across a chart to zoom in", mean: "mean", band: "min–max",
    qc_suspect: "QC suspect (3)", qc_fail: "QC fail (4)", limit: "outside the profile's limits", alert_span: "alert",
    window_span: "maintenance window", status: "Status", open_alerts: "Open alerts", notes: "Recent notes",
    maintenance_windows: "Maintenance (ongoing and upcoming)", kind: "Kind", instruments: "Instruments", site: "Site",
    last: "Last reading", standard: "Standard", no_readings: "No readings in this period.", no_open: "No open alerts.",
    no_notes: "No notes.", no_windows: "None.", login_for_more: "Log in to see alerts, notes and maintenance.",
    raw: "reading", bad_period: "The end must be after the start.", truncated: "Not every flagged reading is marked: zoom in.",
    unknown_station: "No such water station.", kind_maintenance: "maintenance", kind_calibration: "calibration",
    w_upcoming: "upcoming", w_ongoing: "ongoing", min: "min", h: "h", d: "days",
    kind_distribution_point: "distribution point", kind_reservoir: "reservoir", kind_treatment_plant_outlet: "plant outlet",
    ph: "pH", turbidity_ntu: "Turbidity (NTU)", free_chlorine_mgl: "Free chlorine (mg/L)", conductivity_uscm: "Conductivity (µS/cm)",
    temperature_c: "Temperature (°C)", orp_mv: "ORP (mV)", pressure_bar: "Pressure (bar)", flow_m3h: "Flow (m³/h)" },
  vi: { back: "← Trạm quan trắc nước", day: "Ngày", week: "Tuần", month: "Tháng", from: "Từ", to: "Đến", custom: "Xem khoảng này",
    reset_zoom: "Bỏ phóng to", bucket: "trung bình mỗi", drag: "kéo chuột trên biểu đồ để phóng to", mean: "trung bình", band: "nhỏ nhất–lớn nhất",
    qc_suspect: "QC nghi ngờ (3)", qc_fail: "QC lỗi (4)", limit: "ngoài giới hạn theo loại trạm", alert_span: "cảnh báo",
    window_span: "thời gian bảo trì", status: "Trạng thái", open_alerts: "Cảnh báo chưa xử lý", notes: "Ghi chú gần đây",
    maintenance_windows: "Bảo trì (đang và sắp diễn ra)", kind: "Loại trạm", instruments: "Thiết bị đo", site: "Địa điểm",
    last: "Lần đo cuối", standard: "Quy chuẩn", no_readings: "Không có số liệu trong khoảng này.", no_open: "Không có cảnh báo nào chưa xử lý.",
    no_notes: "Chưa có ghi chú.", no_windows: "Không có.", login_for_more: "Đăng nhập để xem cảnh báo, ghi chú và bảo trì.",
    raw: "số đo", bad_period: "Thời điểm kết thúc phải sau thời điểm bắt đầu.", truncated: "Chưa đánh dấu hết các số đo bị gắn cờ: hãy phóng to.",
    unknown_station: "Không có trạm nước này.", kind_maintenance: "bảo trì", kind_calibration: "hiệu chuẩn",
    w_upcoming: "sắp tới", w_ongoing: "đang diễn ra", min: "phút", h: "giờ", d: "ngày",
    kind_distribution_point: "điểm cấp nước", kind_reservoir: "bể chứa", kind_treatment_plant_outlet: "đầu ra nhà máy",
    ph: "pH", turbidity_ntu: "Độ đục (NTU)", free_chlorine_mgl: "Clo dư (mg/L)", conductivity_uscm: "Độ dẫn điện (µS/cm)",
    temperature_c: "Nhiệt độ (°C)", orp_mv: "ORP (mV)", pressure_bar: "Áp suất (bar)", flow_m3h: "Lưu lượng (m³/h)" },
};
const PARAMS = ["ph", "turbidity_ntu", "free_chlorine_mgl", "conductivity_uscm", "temperature_c", "orp_mv", "pressure_bar", "flow_m3h"];
const PERIODS = { day: 86400e3, week: 7 * 86400e3, month: 30 * 86400e3 };
// Alert spans by kind; other kinds take the last.
const SPAN_FILL = { water_quality_event: "#f4c7c3", compliance_breach: "#ffe0b2", sensor_fault: "#e3d7f2", other: "#ffe9b3" };
const H = 170, L = 64, R = 12, T = 16, B = 24;
const $ = (id) => document.getElementById(id);
const stationId = decodeURIComponent(location.pathname.split("/").pop());
const api = `/api/v1/water/stations/${encodeURIComponent(stationId)}`;
// The period chosen (day, week, month or custom) and its range; the range shown, narrower once zoomed.
let period = "day", base = null, shown = null;
let station = null, series = null, marks = null, loading = 0;

function unitMs(bucket) {
  const m = /^(\d+)([mhd])$/.exec(bucket || "");
  return m ? Number(m[1]) * { m: 60e3, h: 3600e3, d: 86400e3 }[m[2]] : 0;
}
function bucketText(bucket) {
  const m = /^(\d+)([mhd])$/.exec(bucket || "");
  return m ? `${CS.num(Number(m[1]), 0)} ${CS.t(m[2] === "m" ? "min" : m[2])}` : CS.t("raw");
}
// Axis labels: the clock within two days, day/month beyond.
function tick(t, span) {
  const opts = span > 2 * 86400e3 ? { day: "2-digit", month: "2-digit" } : { hour: "2-digit", minute: "2-digit", hourCycle: "h23" };
  return new Date(t).toLocaleString(CS.locale(), { timeZone: CS.tz(), ...opts });
}

function chart(param, width) {
  const W = width, plot = W - L - R, t0 = shown.start, t1 = shown.end, step = unitMs(series.bucket);
  const rows = series.readings.filter((r) => r[param] !== null && r[param] !== undefined)
    .map((r) => ({ t: Date.parse(r.time) + step / 2, mean: r[param], lo: r[param + "_min"] ?? r[param], hi: r[param + "_max"] ?? r[param] }));
  const flagged = marks.flagged.filter((f) => f.parameters[param] && f.parameters[param].value !== null)
    .map((f) => ({ t: Date.parse(f.time), v: f.parameters[param].value, flag: f.parameters[param].flag }));
  if (!rows.length && !flagged.length) return null;
  const lim = ((station && station.profile.limits) || {})[param] || {};
  const vals = [...rows.flatMap((r) => [r.lo, r.hi]), ...flagged.map((f) => f.v), lim.min, lim.max].filter((v) => v !== null && v !== undefined);
  let v0 = Math.min(...vals), v1 = Math.max(...vals);
  if (v1 - v0 < 1e-9) { v0 -= 1; v1 += 1; }
  const pad = (v1 - v0) * 0.08; v0 -= pad; v1 += pad;
  const x = (t) => L + (t - t0) / (t1 - t0) * plot;
  const y = (v) => T + (v1 - v) / (v1 - v0) * (H - T - B);
  const clampX = (t) => Math.min(L + plot, Math.max(L, x(t)));
  const svg = CSMap.svg("svg", { viewBox: `0 0 ${W} ${H}`, width: W, height: H, class: "chart zoomable", "data-param": param,
    "data-bucket": series.bucket || "", "data-points": rows.length, "data-plot-width": plot, "data-left": L,
    "data-start": t0, "data-end": t1, role: "img" });
  // Maintenance windows and alerts first, under the data.
  for (const w of marks.windows || []) {
    const a = clampX(Date.parse(w.starts_at)), b = clampX(Date.parse(w.ends_at));
    const r = CSMap.svg("rect", { x: a, y: T, width: Math.max(1, b - a), height: H - T - B, fill: "#cfdcec",
      class: "window-span", "data-window": w.window_id });
    const title = CSMap.svg("title"); title.textContent = `${CS.t("kind_" + w.kind)}: ${CS.time(w.starts_at, { timeStyle: "short" })} – ${CS.time(w.ends_at, { timeStyle: "short" })}${w.note ? " · " + w.note : ""}`;
    r.append(title); svg.append(r);
  }
  for (const al of marks.alerts || []) {
    const a = clampX(Date.parse(al.opened_at)), b = clampX(al.cleared_at ? Date.parse(al.cleared_at) : t1);
    const g = CSMap.svg("g", { class: "alert-span", "data-alert": al.alert_id, "data-kind": al.kind });
    g.append(CSMap.svg("rect", { x: a, y: T, width: Math.max(1, b - a), height: H - T - B, fill: SPAN_FILL[al.kind] || SPAN_FILL.other, opacity: 0.8 }));
    const label = CSMap.svg("text", { x: a + 3, y: H - B - 4, class: "span-label" }); label.textContent = CSAlerts.kind(al.kind);
    const title = CSMap.svg("title"); title.textContent = `#${al.alert_id} ${CSAlerts.kind(al.kind)}: ${CS.time(al.opened_at, { timeStyle: "short" })} – ${CS.time(al.cleared_at, { timeStyle: "short" })}`;
    g.append(label, title); svg.append(g);
  }
  if (lim.max !== null && lim.max !== undefined && y(lim.max) > T) svg.append(CSMap.svg("rect", { x: L, y: T, width: plot, height: y(lim.max) - T, fill: "#e8a39e", opacity: 0.3, class: "limit" }));
  if (lim.min !== null && lim.min !== undefined && y(lim.min) < H - B) svg.append(CSMap.svg("rect", { x: L, y: y(lim.min), width: plot, height: H - B - y(lim.min), fill: "#e8a39e", opacity: 0.3, class: "limit" }));
  for (const v of [v0 + pad, (v0 + v1) / 2, v1 - pad]) {
    svg.append(CSMap.svg("line", { x1: L, x2: W - R, y1: y(v), y2: y(v), stroke: "#e3e8ed" }));
    const label = CSMap.svg("text", { x: L - 6, y: y(v) + 4, "text-anchor": "end" }); label.textContent = CS.num(v, 2); svg.append(label);
  }
  const ticks = Math.max(2, Math.min(8, Math.floor(plot / 110)));
  for (let i = 0; i <= ticks; i++) {
    const t = t0 + (t1 - t0) * i / ticks;
    const label = CSMap.svg("text", { x: x(t), y: H - 6, "text-anchor": i === 0 ? "start" : i === ticks ? "end" : "middle" });
    label.textContent = tick(t, t1 - t0); svg.append(label);
  }
  // Runs of consecutive buckets: a missing bucket (or, raw, a silence of ten minutes) breaks the line.
  const gap = step ? 1.5 * step : 10 * 60e3;
  const runs = [];
  for (const r of rows) {
    const run = runs[runs.length - 1];
    if (run && r.t - run[run.length - 1].t <= gap) run.push(r); else runs.push([r]);
  }
  const xy = (t, v) => `${x(t).toFixed(1)},${y(v).toFixed(1)}`;
  for (const run of runs) {
    const top = run.map((r) => xy(r.t, r.hi)), bottom = run.map((r) => xy(r.t, r.lo)).reverse();
    if (step) svg.append(CSMap.svg("path", { d: `M${top.join("L")}L${bottom.join("L")}Z`, fill: "#cfe0f3", class: "band" }));
    svg.append(CSMap.svg("path", { d: "M" + run.map((r) => xy(r.t, r.mean)).join("L"), fill: "none", stroke: "#0b5cad", "stroke-width": 1.5, class: "mean" }));
  }
  for (const f of flagged) {
    if (f.t < t0 || f.t >= t1) continue;
    svg.append(CSMap.svg("circle", { cx: x(f.t), cy: y(f.v), r: 3, fill: f.flag === 4 ? "#b3261e" : "#b26a00", class: "qc-" + f.flag }));
  }
  const title = CSMap.svg("text", { x: L + 4, y: T - 4, class: "chart-title" }); title.textContent = CS.t(param); svg.append(title);
  draggable(svg, W, plot);
  return svg;
}

// Dragging across a chart selects a span of time; letting go shows that span, bucketed anew.
function draggable(svg, W, plot) {
  let from = null, sel = null;
  const at = (event) => {
    const box = svg.getBoundingClientRect();
    return Math.min(L + plot, Math.max(L, (event.clientX - box.left) * W / box.width));
  };
  svg.addEventListener("pointerdown", (event) => {
    from = at(event);
    sel = CSMap.svg("rect", { x: from, y: T, width: 0, height: H - T - B, class: "selection" });
    svg.append(sel);
    svg.setPointerCapture(event.pointerId);
  });
  svg.addEventListener("pointermove", (event) => {
    if (from === null) return;
    const to = at(event);
    sel.setAttribute("x", Math.min(from, to)); sel.setAttribute("width", Math.abs(to - from));
  });
  svg.addEventListener("pointerup", (event) => {
    if (from === null) return;
    const to = at(event), a = Math.min(from, to), b = Math.max(from, to);
    from = null; sel.remove();
    if (b - a < 4) return;
    const t = (px) => shown.start + (px - L) / plot * (shown.end - shown.start);
    let start = t(a), end = t(b);
    if (end - start < 10 * 60e3) { const mid = (start + end) / 2; start = mid - 5 * 60e3; end = mid + 5 * 60e3; }
    show({ start: Math.round(start), end: Math.round(end) });
  });
}

function charts() {
  const box = $("charts");
  if (!series || !marks) return;
  const width = Math.max(320, Math.floor(box.clientWidth));
  const drawn = PARAMS.map((p) => chart(p, width)).filter(Boolean);
  box.replaceChildren(...(drawn.length ? drawn : [CS.el("p", { class: "muted" }, CS.t("no_readings"))]));
  $("range").textContent = `${CS.time(shown.start, { timeStyle: "short" })} – ${CS.time(shown.end, { timeStyle: "short" })}`;
  $("bucket").textContent = bucketText(series.bucket);
  $("reset-zoom").hidden = shown.start === base.start && shown.end === base.end;
  if (marks.flagged_truncated) $("message").textContent = CS.t("truncated");
  for (const b of document.querySelectorAll(".periods button")) b.classList.toggle("active", b.dataset.period === period);
  $("from").value = CS.toLocal(shown.start);
  $("to").value = CS.toLocal(shown.end);
}

function side() {
  if (!station) return;
  const s = station;
  $("station-id").textContent = s.device_id;
  $("station-name").textContent = s.name || "";
  $("state").textContent = CSAlerts.stateName(s.state);
  $("state").className = "st-" + s.state;
  $("state").dataset.state = s.state;
  $("why").textContent = CSAlerts.why(s);
  const fact = (key, value) => [CS.el("dt", {}, CS.t(key)), CS.el("dd", { id: "fact-" + key }, value)];
  $("facts").replaceChildren(...fact("kind", CS.t("kind_" + s.profile.kind)), ...fact("standard", s.profile.standard || "–"),
    ...fact("instruments", s.instruments.map((p) => CSAlerts.param(p)).join(", ") || "–"), ...fact("site", s.site || "–"),
    ...fact("last", CS.time(s.latest && s.latest.time)));
  const empty = (key) => CS.el("li", { class: "muted" }, CS.t(s.alerts === null ? "login_for_more" : key));
  const alerts = (s.alerts || []).map((a) => CS.el("li", { "data-alert": a.alert_id },
    CS.el("a", { href: `/water/alerts/${a.alert_id}` }, `#${a.alert_id} ${CSAlerts.kind(a.kind)}`), " ",
    CS.el("span", { class: a.severity }, CSAlerts.severity(a.severity)), " · ", CS.el("span", { class: "state-" + a.state }, CS.t("state_" + a.state)),
    CS.el("div", { class: "muted" }, `${CS.time(a.opened_at, { timeStyle: "short" })}: ${CSAlerts.summary(a)}`)));
  $("open-alerts").replaceChildren(...(alerts.length ? alerts : [empty("no_open")]));
  const notes = (s.notes || []).map((n) => CS.el("li", { "data-alert": n.alert_id },
    CS.el("div", { class: "muted" }, `${n.by} · ${CS.time(n.at, { timeStyle: "short" })} · `, CS.el("a", { href: `/water/alerts/${n.alert_id}` }, `#${n.alert_id}`)),
    CS.el("div", { class: "note-text" }, n.text)));
  $("notes").replaceChildren(...(notes.length ? notes : [empty("no_notes")]));
  const windows = (s.maintenance || []).map((w) => CS.el("li", { "data-window": w.window_id },
    `${CS.t("kind_" + w.kind)} (${CS.t("w_" + w.state)}): ${CS.time(w.starts_at, { timeStyle: "short" })} – ${CS.time(w.ends_at, { timeStyle: "short" })}`,
    w.note ? CS.el("div", { class: "muted" }, w.note) : ""));
  $("windows").replaceChildren(...(windows.length ? windows : [empty("no_windows")]));
}

// Shows `range` ({start, end} in ms): the readings bucketed to the charts' width, and their marks.
async function show(range) {
  shown = range;
  const query = new URLSearchParams({ start: new Date(range.start).toISOString(), end: new Date(range.end).toISOString() });
  const url = new URLSearchParams(period === "custom" || range !== base ? query : { period });
  history.replaceState(null, "", `${location.pathname}?${url}`);
  const width = Math.max(320, Math.floor($("charts").clientWidth));
  const points = Math.max(10, width - L - R);
  const mine = ++loading;
  $("message").textContent = CS.t("loading");
  try {
    const [s, m] = await Promise.all([CS.api(`${api}/readings?${query}&points=${points}`), CS.api(`${api}/marks?${query}`)]);
    if (mine !== loading) return; // a newer range was asked for meanwhile
    series = s; marks = m;
    $("message").textContent = "";
    charts();
  } catch (err) {
    if (mine === loading) $("message").textContent = `${CS.t("error")}: ${err.message}`;
  }
}

function choose(name) {
  period = name;
  const end = Date.now();
  base = { start: end - PERIODS[name], end };
  show(base);
}

async function start() {
  try {
    station = await CS.api(api);
  } catch (err) {
    $("message").textContent = err.status === 404 ? CS.t("unknown_station") : `${CS.t("error")}: ${err.message}`;
    return;
  }
  side();
  const params = new URLSearchParams(location.search);
  const s = Date.parse(params.get("start") || ""), e = Date.parse(params.get("end") || "");
  if (Number.isFinite(s) && Number.isFinite(e) && e > s) {
    period = "custom"; base = { start: s, end: e }; show(base);
  } else {
    choose(PERIODS[params.get("period")] ? params.get("period") : "day");
  }
}

for (const b of document.querySelectorAll(".periods button")) b.addEventListener("click", () => choose(b.dataset.period));
$("custom").addEventListener("click", () => {
  const s = CS.fromLocal($("from").value), e = CS.fromLocal($("to").value);
  if (!s || !e || Date.parse(e) <= Date.parse(s)) { $("message").textContent = CS.t("bad_period"); return; }
  period = "custom"; base = { start: Date.parse(s), end: Date.parse(e) }; show(base);
});
$("reset-zoom").addEventListener("click", () => show(base));
let resized = null;
window.addEventListener("resize", () => { clearTimeout(resized); resized = setTimeout(() => { if (shown) show(shown); }, 300); });
CS.init({ page: "stations", words: WORDS }).then(start);
CS.onLang(() => { side(); charts(); });
