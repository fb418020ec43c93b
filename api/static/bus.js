// A bus's history: its track over a chosen period coloured by delay, the delay over time with its
// service states, the trips it ran and the spans of each service state (/api/v1/buses/ID/history).
"use strict";

const WORDS = {
  en: { title: "Bus history", vehicle: "Vehicle", period: "Period", p_2h: "last 2 hours", p_6h: "last 6 hours", p_24h: "last 24 hours",
    p_3d: "last 3 days", p_7d: "last 7 days", p_custom: "from … to …", from: "From", to: "To", show: "Show",
    delay_chart: "Delay over time", trips: "Trips", service: "Service", trip: "Trip", route: "Route", start: "Start", end: "End",
    duration: "Duration", on_time: "On time", early: "Early", late: "Late", mean_delay: "Mean delay", max_delay: "Max delay",
    end_delay: "Delay at the end", state: "State", fixes: "Fixes", min: "min",
    ask: "Type a vehicle id, or click a bus on the live map.", no_fixes: "No fixes of this vehicle in this period.",
    no_trips: "No trips in this period.", summary_fixes: "fixes", summary_points: "drawn as", summary_thinned: "points (thinned for the screen)",
    summary_trips: "trips", bad_period: "Choose a start before the end.",
    s_in_service: "in service", s_layover: "layover", s_out_of_service: "out of service", s_unmatched: "not matched yet", s_unknown: "state not stored",
    d_early: "early (> 1 min)", d_on_time: "on time", d_late: "late (> 5 min)", d_very_late: "very late (> 10 min)", d_none: "no delay (not on a trip)",
    window: "on-time window (−1 to +5 min)", range: "delay range within a slice", first_fix: "first fix", last_fix: "last fix" },
  vi: { title: "Lịch sử xe buýt", vehicle: "Xe", period: "Khoảng thời gian", p_2h: "2 giờ qua", p_6h: "6 giờ qua", p_24h: "24 giờ qua",
    p_3d: "3 ngày qua", p_7d: "7 ngày qua", p_custom: "từ … đến …", from: "Từ", to: "Đến", show: "Xem",
    delay_chart: "Độ trễ theo thời gian", trips: "Các chuyến", service: "Trạng thái phục vụ", trip: "Chuyến", route: "Tuyến", start: "Bắt đầu", end: "Kết thúc",
    duration: "Thời lượng", on_time: "Đúng giờ", early: "Sớm", late: "Trễ", mean_delay: "Trễ trung bình", max_delay: "Trễ lớn nhất",
    end_delay: "Trễ lúc kết thúc", state: "Trạng thái", fixes: "Số lần báo vị trí", min: "phút",
    ask: "Nhập mã xe, hoặc bấm vào một xe trên bản đồ trực tuyến.", no_fixes: "Xe không báo vị trí nào trong khoảng này.",
    no_trips: "Không có chuyến nào trong khoảng này.", summary_fixes: "lần báo vị trí", summary_points: "vẽ bằng", summary_thinned: "điểm (đã lược bớt cho vừa màn hình)",
    summary_trips: "chuyến", bad_period: "Hãy chọn thời điểm bắt đầu trước thời điểm kết thúc.",
    s_in_service: "đang phục vụ", s_layover: "chờ chuyến", s_out_of_service: "ngoài giờ phục vụ", s_unmatched: "chưa ghép chuyến", s_unknown: "chưa lưu trạng thái",
    d_early: "sớm (> 1 phút)", d_on_time: "đúng giờ", d_late: "trễ (> 5 phút)", d_very_late: "trễ nhiều (> 10 phút)", d_none: "không có độ trễ (không chạy chuyến)",
    window: "khung đúng giờ (−1 đến +5 phút)", range: "khoảng trễ trong mỗi đoạn", first_fix: "vị trí đầu", last_fix: "vị trí cuối" },
};
const $ = (id) => document.getElementById(id);
const SPANS = { "2h": 2 * 3600e3, "6h": 6 * 3600e3, "24h": 24 * 3600e3, "3d": 3 * 86400e3, "7d": 7 * 86400e3 };
// The live map's delay colours (transit.html), and one colour per service state.
const DELAY = { early: "#0b5cad", on_time: "#1e6b34", late: "#e08a00", very_late: "#b3261e", none: "#8a96a3" };
const STATES = { in_service: "#1e6b34", layover: "#e0b000", out_of_service: "#c9ced4", unmatched: "#eef1f4", unknown: "#dde3e8" };
let body = null, routes = new Map(), shapes = [];

function delayClass(p) {
  if (p.service_state !== "in_service" && p.service_state !== "layover") return "none";
  const d = p.delay_s;
  if (d === null || d === undefined) return "none";
  if (d < -60) return "early";
  if (d <= 300) return "on_time";
  if (d <= 600) return "late";
  return "very_late";
}
const mins = (s) => (s === null || s === undefined ? "–" : `${s > 0 ? "+" : ""}${CS.num(s / 60, 1)} ${CS.t("min")}`);
const pct = (v) => (v === null || v === undefined ? "–" : `${CS.num(v * 100, 0)} %`);
const vehicleOfPath = () => {
  const m = /^\/transit\/buses\/([^/]+)$/.exec(location.pathname);
  return m ? decodeURIComponent(m[1]) : "";
};

// The period asked for: ?period=24h (default), or ?start=…&end=… (RFC 3339).
function period() {
  const q = new URLSearchParams(location.search);
  if (q.get("start") && q.get("end")) return { key: "custom", start: q.get("start"), end: q.get("end") };
  const key = SPANS[q.get("period")] ? q.get("period") : "24h";
  const end = Date.now();
  return { key, start: new Date(end - SPANS[key]).toISOString(), end: new Date(end).toISOString() };
}

function fillForm(id, p) {
  $("vehicle").value = id;
  $("period").value = p.key;
  $("from").value = CS.toLocal(Date.parse(p.start));
  $("to").value = CS.toLocal(Date.parse(p.end));
  const custom = p.key === "custom";
  $("from").disabled = !custom; $("to").disabled = !custom;
}

function submit(event) {
  event.preventDefault();
  const id = $("vehicle").value.trim();
  if (!id) return;
  const q = new URLSearchParams();
  if ($("period").value === "custom") {
    const start = CS.fromLocal($("from").value), end = CS.fromLocal($("to").value);
    if (!start || !end || start >= end) { $("message").textContent = CS.t("bad_period"); return; }
    q.set("start", start); q.set("end", end);
  } else {
    q.set("period", $("period").value);
  }
  location.href = `/transit/buses/${encodeURIComponent(id)}?${q}`;
}

function legend() {
  const item = (colour, key, extra = {}) => {
    const swatch = CS.el("span", { class: "swatch" });
    Object.assign(swatch.style, { background: colour, ...extra });
    return CS.el("span", {}, swatch, CS.el("span", {}, CS.t(key)));
  };
  $("legend").replaceChildren(...Object.entries(DELAY).map(([k, c]) => item(c, "d_" + k)));
  $("chart-legend").replaceChildren(...Object.entries(STATES).map(([k, c]) => item(c, "s_" + k, { borderRadius: "2px" })),
    item("#e3f1e6", "window", { borderRadius: "2px" }), item("#9fb3c8", "range", { borderRadius: "2px" }));
}

function drawMap() {
  const W = 1000, H = 520, svg = $("map"), pts = body.track;
  const project = CSMap.projection(pts.map((p) => [p.lon, p.lat]), W, H, 40, Boolean(CS.config().tile_url));
  const base = CSMap.svg("g");
  CSMap.basemap(base, project, W, H);
  // The routes it ran, in their colours, under the track.
  const ran = new Set([...pts.map((p) => p.route_id), ...body.trips.map((t) => t.route_id)].filter(Boolean));
  for (const f of shapes.filter((f) => ran.has(f.properties.route_id))) {
    const style = routes.get(f.properties.route_id);
    for (const line of f.geometry.coordinates) {
      const path = CSMap.svg("path", { d: CSMap.line(line, project), class: "route", "data-route": f.properties.route_id,
        fill: "none", "stroke-width": 7, "stroke-linecap": "round", opacity: 0.35 });
      path.style.stroke = style.color;
      base.append(path);
    }
  }
  // The track: runs of the same delay colour as one path each, broken where the bus was silent.
  const track = CSMap.svg("g", { class: "track" });
  let run = null;
  const flush = () => {
    if (run && run.coords.length > 1) {
      const path = CSMap.svg("path", { d: CSMap.line(run.coords, project), class: "track", "data-status": run.cls, fill: "none",
        stroke: DELAY[run.cls], "stroke-width": 4, "stroke-linejoin": "round", "stroke-linecap": "round" });
      const title = CSMap.svg("title");
      title.textContent = `${CS.time(run.from, { timeStyle: "short" })} – ${CS.time(run.to, { timeStyle: "short" })}: ${CS.t("d_" + run.cls)}`;
      path.append(title);
      track.append(path);
    }
  };
  pts.forEach((p, i) => {
    const cls = delayClass(p);
    if (i === 0 || p.gap_before) { flush(); run = { cls, coords: [[p.lon, p.lat]], from: p.time, to: p.time }; return; }
    // A segment takes the colour of the fix it ends at.
    if (cls !== run.cls) { flush(); const prev = pts[i - 1]; run = { cls, coords: [[prev.lon, prev.lat]], from: prev.time, to: p.time }; }
    run.coords.push([p.lon, p.lat]); run.to = p.time;
  });
  flush();
  const marks = CSMap.svg("g", { class: "ends" }), labels = CSMap.svg("g"), texts = [], obstacles = [];
  if (pts.length) {
    for (const [p, key, fill] of [[pts[0], "first_fix", "#fff"], [pts[pts.length - 1], "last_fix", "#1b2a38"]]) {
      const [x, y] = project([p.lon, p.lat]);
      const dot = CSMap.svg("circle", { cx: x, cy: y, r: 6, fill, stroke: "#1b2a38", "stroke-width": 2, class: key });
      marks.append(dot);
      obstacles.push({ x: x - 6, y: y - 6, w: 12, h: 12 });
      const label = CSMap.svg("text", { class: "map-label" });
      label.textContent = `${CS.t(key)} ${CS.time(p.time, { timeStyle: "short" })}`;
      labels.append(label);
      texts.push({ node: label, x, y, r: 6 });
    }
  }
  svg.replaceChildren(base, track, marks, labels);
  CSMap.declutter(texts, obstacles, W, H);
  CSMap.attribution(svg, W, H);
}

function niceStep(spanMs, target) {
  const steps = [5, 10, 15, 30, 60, 120, 180, 360, 720, 1440].map((m) => m * 60e3);
  return steps.find((s) => spanMs / s <= target) || 1440 * 60e3 * Math.ceil(spanMs / (target * 1440 * 60e3));
}

function drawChart() {
  const svg = $("chart"), W = 1000, H = 280, L = 56, R = 12, T = 26, B = 30;
  const t0 = Date.parse(body.start), t1 = Date.parse(body.end);
  const x = (t) => L + ((Date.parse(t) - t0) / (t1 - t0)) * (W - L - R);
  const delays = body.track.flatMap((p) => [p.delay_min_s, p.delay_max_s, p.delay_s]).filter((d) => d !== null && d !== undefined);
  const lo = Math.min(-120, ...delays), hi = Math.max(600, ...delays);
  const y = (d) => T + ((hi - d) / (hi - lo)) * (H - T - B);
  const out = [];
  // Service states as a band along the top.
  for (const s of body.states) {
    const x0 = x(s.start), x1 = Math.max(x(s.end), x0 + 1);
    const r = CSMap.svg("rect", { x: x0, y: 4, width: x1 - x0, height: 14, fill: STATES[s.state] || "#dde3e8", class: "state", "data-state": s.state });
    const title = CSMap.svg("title");
    title.textContent = `${CS.t("s_" + s.state)}: ${CS.time(s.start, { timeStyle: "short" })} – ${CS.time(s.end, { timeStyle: "short" })}`;
    r.append(title); out.push(r);
  }
  out.push(CSMap.svg("rect", { x: L, y: y(300), width: W - L - R, height: y(-60) - y(300), fill: "#e3f1e6" }));
  // Delay ticks every 5 minutes (or more on a wide range), and time ticks.
  const stepD = (Math.ceil((hi - lo) / 60 / 8 / 5) * 5 || 5) * 60;
  for (let d = Math.ceil(lo / stepD) * stepD; d <= hi; d += stepD) {
    out.push(CSMap.svg("line", { x1: L, x2: W - R, y1: y(d), y2: y(d), stroke: d === 0 ? "#5b6b7a" : "#dde3e8" }));
    const label = CSMap.svg("text", { x: L - 6, y: y(d) + 4, "text-anchor": "end" }); label.textContent = `${d / 60} ${CS.t("min")}`; out.push(label);
  }
  const step = niceStep(t1 - t0, 10);
  const multiDay = t1 - t0 > 86400e3;
  for (let t = Math.ceil(t0 / step) * step; t <= t1; t += step) {
    const iso = new Date(t).toISOString();
    out.push(CSMap.svg("line", { x1: x(iso), x2: x(iso), y1: T, y2: H - B, stroke: "#eef1f4" }));
    const label = CSMap.svg("text", { x: x(iso), y: H - B + 16, "text-anchor": "middle" });
    label.textContent = multiDay ? CS.time(iso, { timeStyle: "short", year: undefined }) : CS.clock(iso);
    out.push(label);
  }
  // When thinned: the range of delays within each slice, as a band; then the delay as a line.
  let band = "", line = "", open = false;
  for (const p of body.track) {
    const has = p.delay_s !== null && p.delay_s !== undefined && (p.service_state === "in_service" || p.service_state === "layover");
    if (!has || p.gap_before) open = false;
    if (!has) continue;
    if (body.thinned && p.delay_min_s !== null && p.delay_max_s !== null) {
      band += `M${x(p.time).toFixed(1)},${y(p.delay_max_s).toFixed(1)}V${y(p.delay_min_s).toFixed(1)}`;
    }
    line += `${open ? "L" : "M"}${x(p.time).toFixed(1)},${y(p.delay_s).toFixed(1)}`;
    open = true;
  }
  if (band) out.push(CSMap.svg("path", { d: band, stroke: "#9fb3c8", "stroke-width": 2, class: "delay-range" }));
  if (line) out.push(CSMap.svg("path", { d: line, fill: "none", stroke: "#0b5cad", "stroke-width": 1.5, class: "delay" }));
  // Each trip's start, as a faint line with its trip id on hover.
  for (const trip of body.trips) {
    const l = CSMap.svg("line", { x1: x(trip.start), x2: x(trip.start), y1: T, y2: H - B, stroke: "#7d9cc0", "stroke-dasharray": "3 3", class: "trip-start" });
    const title = CSMap.svg("title"); title.textContent = `${trip.trip_id} ${CS.time(trip.start, { timeStyle: "short" })}`; l.append(title);
    out.push(l);
  }
  svg.replaceChildren(...out);
}

function tables() {
  const span = (a, b) => CS.duration((Date.parse(b) - Date.parse(a)) / 1000);
  const trips = body.trips.map((t) => {
    const style = routes.get(t.route_id) || CSMap.routeStyle({ route_id: t.route_id });
    const name = (routes.get(t.route_id) || {}).short_name || t.route_id || "–";
    return CS.el("tr", { "data-trip": t.trip_id }, CS.el("td", {}, t.trip_id), CS.el("td", {}, t.route_id ? CSMap.badgeHtml(name, style) : "–"),
      CS.el("td", {}, CS.time(t.start, { timeStyle: "short" })), CS.el("td", {}, CS.time(t.end, { timeStyle: "short" })),
      CS.el("td", { class: "num" }, span(t.start, t.end)), CS.el("td", { class: "num" }, pct(t.on_time_share)),
      CS.el("td", { class: "num" }, pct(t.early_share)), CS.el("td", { class: "num" }, pct(t.late_share)),
      CS.el("td", { class: "num" }, mins(t.delay_mean_s)), CS.el("td", { class: "num" }, mins(t.delay_max_s)),
      CS.el("td", { class: "num" }, mins(t.delay_end_s)));
  });
  $("trip-rows").replaceChildren(...(trips.length ? trips : [CS.el("tr", {}, CS.el("td", { colspan: 11, class: "muted" }, CS.t("no_trips")))]));
  $("state-rows").replaceChildren(...body.states.map((s) => {
    const swatch = CS.el("span", { class: "swatch" }); swatch.style.background = STATES[s.state] || "#dde3e8";
    return CS.el("tr", { "data-state": s.state }, CS.el("td", {}, swatch, CS.t("s_" + s.state)),
      CS.el("td", {}, CS.time(s.start, { timeStyle: "short" })), CS.el("td", {}, CS.time(s.end, { timeStyle: "short" })),
      CS.el("td", { class: "num" }, span(s.start, s.end)), CS.el("td", { class: "num" }, CS.num(s.fixes, 0)));
  }));
}

function render() {
  legend();
  if (!body) return;
  const s = `${CS.num(body.fixes, 0)} ${CS.t("summary_fixes")}` + (body.thinned ? `, ${CS.t("summary_points")} ${CS.num(body.points, 0)} ${CS.t("summary_thinned")}` : "")
    + ` · ${body.trips.length} ${CS.t("summary_trips")} · ${CS.time(body.start, { timeStyle: "short" })} – ${CS.time(body.end, { timeStyle: "short" })}`;
  $("summary").textContent = s;
  $("message").textContent = body.fixes ? "" : CS.t("no_fixes");
  drawMap();
  drawChart();
  tables();
}

async function start() {
  const id = vehicleOfPath(), p = period();
  fillForm(id, p);
  $("form").addEventListener("submit", submit);
  $("period").addEventListener("change", () => { const c = $("period").value === "custom"; $("from").disabled = !c; $("to").disabled = !c; });
  CS.api("/api/v1/buses/live?max_age_s=86400", { redirect: false }).then((live) => {
    $("vehicles").replaceChildren(...live.features.map((f) => CS.el("option", { value: f.properties.vehicle_id })));
  }).catch(() => null);
  if (!id) { $("message").textContent = CS.t("ask"); return; }
  $("vehicle-title").textContent = id;
  document.title = `citysense · ${id}`;
  $("message").textContent = CS.t("loading");
  const points = Math.max(200, Math.min(2000, Math.round($("map").getBoundingClientRect().width || 1000)));
  const q = new URLSearchParams({ start: p.start, end: p.end, points });
  try {
    body = await CS.api(`/api/v1/buses/${encodeURIComponent(id)}/history?${q}`);
  } catch (err) {
    $("message").textContent = `${CS.t("error")}: ${err.text || err.message}`;
    $("message").classList.add("error");
    return;
  }
  const all = await CS.api("/api/v1/routes", { redirect: false }).catch(() => ({ features: [] }));
  shapes = all.features;
  // The history's own route list first (it names routes the map may not show), then the shapes'.
  routes = CSMap.routeStyles([...Object.entries(body.routes).map(([route_id, r]) => ({ route_id, ...r })), ...shapes]);
  $("result").hidden = false;
  render();
}

CS.init({ page: "transit", words: WORDS, active: "transit" }).then(start);
CS.onLang(render);
