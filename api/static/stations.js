// Water stations: a map and a table of each station's state, refreshed every 10 seconds.
"use strict";

const WORDS = {
  en: { title: "Water stations", refresh: "Refreshed every 10 seconds.", station: "Station", site: "Site", last: "Last reading",
    turbidity: "Turbidity NTU", chlorine: "Free Cl mg/L", cond: "Cond. µS/cm", temp: "Temp °C", status: "Status",
    alerts: "alerts", n: "stations", no_location: "no location", why: "Why", kind: "Kind",
    kind_distribution_point: "distribution point", kind_reservoir: "reservoir", kind_treatment_plant_outlet: "plant outlet" },
  vi: { title: "Trạm quan trắc nước", refresh: "Cập nhật mỗi 10 giây.", station: "Trạm", site: "Địa điểm", last: "Lần đo cuối",
    turbidity: "Độ đục NTU", chlorine: "Clo dư mg/L", cond: "Độ dẫn µS/cm", temp: "Nhiệt độ °C", status: "Trạng thái",
    alerts: "cảnh báo", n: "trạm", no_location: "chưa có toạ độ", why: "Lý do", kind: "Loại trạm",
    kind_distribution_point: "điểm cấp nước", kind_reservoir: "bể chứa", kind_treatment_plant_outlet: "đầu ra nhà máy" },
};
// One colour per station state (analytics/water/status.py), in the order of the legend.
const COLOURS = { event: "#7a1010", breach: "#b3261e", sensor_fault: "#b26a00", maintenance: "#0b5cad",
  no_data: "#5b6b7a", unknown: "#b8c1ca", compliant: "#1e6b34" };
const stateName = CSAlerts.stateName, why = CSAlerts.why;
function legend() {
  document.getElementById("legend").replaceChildren(...Object.entries(COLOURS).map(([state, colour]) => {
    const swatch = CS.el("span", { class: "swatch" });
    swatch.style.background = colour;
    return CS.el("span", {}, swatch, CS.el("span", {}, stateName(state)));
  }));
}
let body = null;
function render() {
  legend();
  if (!body) return;
  document.getElementById("summary").textContent = `${body.count} ${CS.t("n")}.`;
  document.getElementById("rows").replaceChildren(...body.stations.map(s => {
    const l = s.latest || {};
    return CS.el("tr", { "data-station": s.device_id }, CS.el("td", {}, CS.el("a", { href: "/water/stations/" + encodeURIComponent(s.device_id) }, s.device_id)),
      CS.el("td", {}, s.site || s.name || ""), CS.el("td", {}, CS.time(l.time)), CS.el("td", { class: "num" }, CS.num(l.ph, 2)), CS.el("td", { class: "num" }, CS.num(l.turbidity_ntu, 2)),
      CS.el("td", { class: "num" }, CS.num(l.free_chlorine_mgl, 2)), CS.el("td", { class: "num" }, CS.num(l.conductivity_uscm, 0)),
      CS.el("td", { class: "num" }, CS.num(l.temperature_c, 1)), CS.el("td", {}, CS.t("kind_" + s.profile.kind)),
      CS.el("td", { class: "st-" + s.state, "data-state": s.state }, stateName(s.state)), CS.el("td", { class: "muted" }, why(s)),
      CS.el("td", {}, CS.el("a", { href: "/water?subject=" + encodeURIComponent(s.device_id) }, CS.t("alerts"))));
  }));
  const map = document.getElementById("map");
  const W = 900, H = 420;
  const placed = body.stations.filter(s => s.location);
  const project = CSMap.projection(placed.map(s => [s.location.lon, s.location.lat]), W, H, 40, Boolean(CS.config().tile_url));
  const layer = CSMap.svg("g");
  CSMap.basemap(layer, project, W, H);
  const labels = CSMap.svg("g", { class: "labels" });
  map.replaceChildren(layer, labels);
  // Stations of one site, or nearly on top of each other, share one label with their count; their
  // markers are spread on a ring, each with a line to where it stands.
  const items = placed.map((s) => { const [x, y] = project([s.location.lon, s.location.lat]); return { s, x, y, group: s.site || "" }; });
  const rank = (s) => Object.keys(COLOURS).indexOf(s.state);
  const obstacles = [], texts = [];
  for (const { members, cx, cy, at: spots } of CSMap.layout(items.sort((a, b) => a.s.device_id.localeCompare(b.s.device_id)))) {
    const g = CSMap.svg("g", { class: "site", "data-count": members.length });
    members.forEach((m, k) => {
      const [x, y] = spots[k], s = m.s;
      const one = CSMap.svg("g", { class: "station", "data-station": s.device_id });
      one.style.cursor = "pointer";
      one.addEventListener("click", () => { location.href = "/water/stations/" + encodeURIComponent(s.device_id); });
      if (members.length > 1) one.append(CSMap.svg("line", { x1: m.x, y1: m.y, x2: x, y2: y, stroke: "#5b6b7a", "stroke-width": 1 }),
        CSMap.svg("circle", { cx: m.x, cy: m.y, r: 2, fill: "#5b6b7a" }));
      const dot = CSMap.svg("circle", { cx: x, cy: y, r: 8, fill: COLOURS[s.state], stroke: "#fff", "stroke-width": 2 });
      const title = CSMap.svg("title"); title.textContent = `${s.device_id} ${s.name || ""}: ${stateName(s.state)}`; dot.append(title);
      one.append(dot); g.append(one);
      obstacles.push({ x: x - 8, y: y - 8, w: 16, h: 16 });
    });
    layer.append(g);
    const first = members[0].s;
    // One site: its name; sites merged because their markers would touch: the first two, then "…".
    const sites = [...new Set(members.map((m) => m.s.site || m.s.name || m.s.device_id))];
    const name = members.length === 1 ? (first.name || first.device_id) : sites.slice(0, 2).join(" · ") + (sites.length > 2 ? " …" : "");
    const label = CSMap.svg("text", { class: "map-label", "data-count": members.length });
    label.textContent = members.length > 1 ? `${name} (${members.length})` : name;
    labels.append(label);
    const ringR = members.length > 1 ? Math.max(...spots.map(([x, y]) => Math.hypot(x - cx, y - cy))) + 8 : 8;
    texts.push({ node: label, x: cx, y: cy, r: ringR, rank: Math.min(...members.map((m) => rank(m.s))) });
  }
  // The labels of stations in a worse state are placed first, so they are the last to be hidden.
  texts.sort((a, b) => a.rank - b.rank);
  CSMap.declutter(texts, obstacles, W, H);
  CSMap.attribution(map, W, H);
}
async function refresh() {
  body = await CS.api("/api/v1/water/stations");
  render();
}
CS.init({ page: "stations", words: WORDS }).then(refresh);
CS.onLang(render);
setInterval(refresh, 10000);
