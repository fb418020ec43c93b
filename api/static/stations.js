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
  CSMap.tiles(layer, project, W, H, CS.config().tile_url);
  for (const s of placed) {
    const [x, y] = project([s.location.lon, s.location.lat]);
    const g = CSMap.svg("g", { class: "station", "data-station": s.device_id });
    const dot = CSMap.svg("circle", { cx: x, cy: y, r: 8, fill: COLOURS[s.state], stroke: "#fff", "stroke-width": 2 });
    const title = CSMap.svg("title"); title.textContent = `${s.device_id} ${s.name || ""}: ${stateName(s.state)}`; dot.append(title);
    const label = CSMap.svg("text", { x: x + 11, y: y + 4 }); label.textContent = s.name || s.device_id;
    g.append(dot, label); layer.append(g);
  }
  map.replaceChildren(layer);
}
async function refresh() {
  body = await CS.api("/api/v1/water/stations");
  render();
}
CS.init({ page: "stations", words: WORDS }).then(refresh);
CS.onLang(render);
setInterval(refresh, 10000);
