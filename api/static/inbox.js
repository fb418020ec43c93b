// An alert inbox: water staff's (station alerts, at /water) or planners' (vehicle and route
// alerts, at /transit/alerts), one page for both. Newest first, filtered, paginated; each alert
// says what it is about.
"use strict";

(() => {
  const DOMAIN = location.pathname.startsWith("/transit") ? "transit" : "water";
  document.querySelector("main").dataset.domain = DOMAIN;
  const DETAIL = DOMAIN === "transit" ? "/transit/alerts/" : "/water/alerts/";
  const KINDS = {
    water: ["water_quality_event", "compliance_breach", "sensor_fault"],
    transit: ["bus_delay", "bus_bunching"],
  };
  const WORDS = {
    en: { inbox: "Water alert inbox", inbox_transit: "Transit alert inbox", state: "State", kind: "Kind", station: "Station",
      subject_filter: "Station", subject_filter_transit: "Vehicle or route", apply: "Apply", opened: "Opened",
      severity: "Severity", subject: "Subject", summary: "What happened", cleared: "Cleared", prev: "Newer", next: "Older",
      total: "matching", empty: "No alerts match.", any_kind: "any kind",
      subject_station: "station", subject_vehicle: "bus", subject_route: "route" },
    vi: { inbox: "Hộp cảnh báo nước", inbox_transit: "Hộp cảnh báo giao thông", state: "Trạng thái", kind: "Loại", station: "Trạm",
      subject_filter: "Trạm", subject_filter_transit: "Xe hoặc tuyến", apply: "Lọc", opened: "Thời điểm",
      severity: "Mức độ", subject: "Đối tượng", summary: "Nội dung", cleared: "Hết cảnh báo", prev: "Mới hơn", next: "Cũ hơn",
      total: "phù hợp", empty: "Không có cảnh báo nào.", any_kind: "mọi loại",
      subject_station: "trạm", subject_vehicle: "xe", subject_route: "tuyến" },
  };
  const LIMIT = 25;
  const params = new URLSearchParams(location.search);
  let offset = Number(params.get("offset") || 0);
  let page = null;
  const $ = (id) => document.getElementById(id);
  $("f-state").value = params.get("state") || "";

  // The subject filter: a list of stations for water, a vehicle or route id for transit.
  const SUBJECT = DOMAIN === "transit" ? "f-subject" : "f-station";
  $(DOMAIN === "transit" ? "f-station" : "f-subject").remove();
  $("f-kind").value = params.get("kind") || "";

  // Known kinds offered as the kind filter is typed, with their names in the reader's language.
  function kinds() {
    $("kinds").replaceChildren(...KINDS[DOMAIN].map((k) => CS.el("option", { value: k, label: CSAlerts.kind(k) })));
  }

  function query() {
    const q = new URLSearchParams({ limit: LIMIT, offset });
    for (const [key, id] of [["state", "f-state"], ["kind", "f-kind"], ["subject", SUBJECT]]) {
      const v = $(id).value.trim();
      if (v) q.set(key, v);
    }
    return q;
  }

  function render() {
    $("title").textContent = CS.t(DOMAIN === "transit" ? "inbox_transit" : "inbox");
    document.title = "citysense · " + $("title").textContent;
    $("subject-label").textContent = CS.t(DOMAIN === "transit" ? "subject_filter_transit" : "subject_filter");
    kinds();
    if (!page) return;
    $("counts").replaceChildren(...["open", "acknowledged", "resolved"].map((s) =>
      CS.el("span", { class: "state-" + s, id: "count-" + s }, `${CS.t("state_" + s)}: ${page.counts[s]}`)),
      CS.el("span", {}, `${page.total} ${CS.t("total")}`));
    const rows = page.alerts.map((a) => CS.el("tr", { "data-alert": a.alert_id, "data-kind": a.kind },
      CS.el("td", {}, CS.el("a", { href: DETAIL + a.alert_id }, a.alert_id)),
      CS.el("td", {}, CS.time(a.opened_at)),
      CS.el("td", {}, CSAlerts.kind(a.kind)),
      CS.el("td", { class: a.severity }, CSAlerts.severity(a.severity)),
      CS.el("td", {}, `${CS.t("subject_" + a.subject_kind)} ${a.subject_id}`),
      CS.el("td", { class: "summary" }, CSAlerts.summary(a)),
      CS.el("td", { class: "state-" + a.state }, CS.t("state_" + a.state)),
      CS.el("td", {}, CS.time(a.cleared_at))));
    if (!rows.length) rows.push(CS.el("tr", {}, CS.el("td", { colspan: 8, class: "muted" }, CS.t("empty"))));
    $("rows").replaceChildren(...rows);
    $("prev").disabled = offset === 0;
    $("next").disabled = page.next_offset === null;
    $("page").textContent = page.total ? `${offset + 1}–${offset + page.count} / ${page.total}` : "";
  }

  async function load() {
    const q = query();
    history.replaceState(null, "", `${location.pathname}?${q}`);
    q.set("domain", DOMAIN);
    page = await CS.api("/api/v1/alerts?" + q);
    render();
  }

  async function subjects() {
    if (SUBJECT === "f-station") {
      const body = await CS.api("/api/v1/water/stations", { redirect: false }).catch(() => ({ stations: [] }));
      for (const s of body.stations) $(SUBJECT).append(CS.el("option", { value: s.device_id }, `${s.device_id} ${s.name || ""}`));
      $(SUBJECT).addEventListener("change", () => { offset = 0; load(); });
    }
    $(SUBJECT).value = params.get("subject") || "";
  }

  const onEnter = (event) => { if (event.key === "Enter") { offset = 0; load(); } };
  $("apply").addEventListener("click", () => { offset = 0; load(); });
  $("f-kind").addEventListener("keydown", onEnter);
  $("f-subject")?.addEventListener("keydown", onEnter);
  $("f-state").addEventListener("change", () => { offset = 0; load(); });
  $("prev").addEventListener("click", () => { offset = Math.max(0, offset - LIMIT); load(); });
  $("next").addEventListener("click", () => { offset = page.next_offset; load(); });
  CS.init({ page: DOMAIN === "transit" ? "transit_alerts" : "water", words: WORDS }).then(kinds).then(subjects).then(load);
  CS.onLang(render);
  setInterval(() => { if (document.visibilityState === "visible") load(); }, 15000);
})();
