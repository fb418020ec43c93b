// The overview: each domain's state, with the inbox of the role that acts on it first.
"use strict";

const WORDS = {
  en: { title: "Da Nang water and buses", water_quality: "Drinking water quality", see_stations: "Stations and map",
    see_alerts: "Water alert inbox", buses: "Buses", see_live: "Live map", see_perf: "Route performance",
    see_transit_alerts: "Transit alert inbox", station: "Station", site: "Site", last: "Last reading",
    turbidity: "Turbidity NTU", chlorine: "Free Cl mg/L", status: "Status", login_needed: "Log in to see this.",
    n_buses: "buses reporting", n_stations: "stations", open_alerts: "open alerts", your_domain: "Your work" },
  vi: { title: "Nước sạch và xe buýt Đà Nẵng", water_quality: "Chất lượng nước sinh hoạt", see_stations: "Trạm và bản đồ",
    see_alerts: "Hộp cảnh báo nước", buses: "Xe buýt", see_live: "Bản đồ trực tuyến", see_perf: "Hiệu quả tuyến",
    see_transit_alerts: "Hộp cảnh báo giao thông", station: "Trạm", site: "Địa điểm", last: "Lần đo cuối",
    turbidity: "Độ đục NTU", chlorine: "Clo dư mg/L", status: "Trạng thái", login_needed: "Đăng nhập để xem.",
    n_buses: "xe đang báo vị trí", n_stations: "trạm", open_alerts: "cảnh báo chưa xử lý", your_domain: "Việc của anh/chị" },
};
// Which role acts on which domain (admins on both).
const ACTS = { water: ["water_staff", "admin"], transit: ["transport_planner", "admin"] };
const ORDER = ["event", "breach", "sensor_fault", "no_data", "maintenance", "unknown", "compliant"];
const stateName = (s) => CS.t(s === "maintenance" ? "maintenance_state" : s);
let stations = null, buses = null, openAlerts = {};

function render() {
  const me = CS.me();
  const role = me ? me.role : null;
  // A planner's card comes first on a planner's overview; the card of a role's own domain is marked.
  const grid = document.getElementById("domains");
  const water = document.getElementById("domain-water"), transit = document.getElementById("domain-transit");
  if (role === "transport_planner") grid.replaceChildren(transit, water); else grid.replaceChildren(water, transit);
  for (const [domain, card] of [["water", water], ["transit", transit]]) {
    const mine = role !== null && ACTS[domain].includes(role);
    card.classList.toggle("mine", mine);
    card.querySelector(".yours").textContent = mine && role !== "admin" ? CS.t("your_domain") : "";
    card.querySelector(".inbox").hidden = !mine;
    const count = card.querySelector(".open-count");
    count.textContent = mine && openAlerts[domain] !== undefined ? `${openAlerts[domain]} ${CS.t("open_alerts")}` : "";
  }
  const c = document.getElementById("compliance");
  if (stations) {
    const by = {};
    for (const s of stations.stations) by[s.state] = (by[s.state] || 0) + 1;
    c.replaceChildren(`${stations.count} ${CS.t("n_stations")}: `, ...ORDER.filter((s) => by[s]).flatMap((s, i) =>
      [i ? ", " : "", CS.el("span", { class: "st-" + s, "data-state": s }, `${by[s]} ${stateName(s)}`)]));
    document.getElementById("rows").replaceChildren(...stations.stations.map((s) => {
      const l = s.latest || {};
      return CS.el("tr", { "data-station": s.device_id },
        CS.el("td", {}, CS.el("a", { href: "/water/stations/" + encodeURIComponent(s.device_id) }, s.device_id)), CS.el("td", {}, s.site || s.name || ""),
        CS.el("td", {}, CS.time(l.time)), CS.el("td", { class: "num" }, CS.num(l.ph, 2)),
        CS.el("td", { class: "num" }, CS.num(l.turbidity_ntu, 2)), CS.el("td", { class: "num" }, CS.num(l.free_chlorine_mgl, 2)),
        CS.el("td", { class: "st-" + s.state, "data-state": s.state }, stateName(s.state)));
    }));
  } else c.textContent = CS.t("login_needed");
  document.getElementById("buses").textContent = buses ? `${buses.features.length} ${CS.t("n_buses")}` : "–";
}

async function refresh() {
  stations = await CS.api("/api/v1/water/stations", { redirect: false }).catch(() => null);
  buses = await CS.api("/api/v1/buses/live", { redirect: false }).catch(() => null);
  const me = CS.me();
  openAlerts = {};
  for (const domain of ["water", "transit"]) {
    if (!me || !ACTS[domain].includes(me.role)) continue;
    const page = await CS.api(`/api/v1/alerts?domain=${domain}&state=open&limit=1`, { redirect: false }).catch(() => null);
    if (page) openAlerts[domain] = page.counts.open;
  }
  render();
}
CS.init({ page: "overview", words: WORDS }).then(refresh);
CS.onLang(render);
setInterval(refresh, 10000);
