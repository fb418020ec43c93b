// Alerts in the reader's language: kind, severity and a one-line summary built from the evidence.
"use strict";

const CSAlerts = (() => {
  const WORDS = {
    en: {
      kind_water_quality_event: "Water-quality event", kind_compliance_breach: "QCVN breach", kind_sensor_fault: "Sensor fault",
      kind_bus_delay: "Bus delay", kind_bus_bunching: "Bus bunching",
      p_ph: "pH", p_turbidity_ntu: "turbidity", p_free_chlorine_mgl: "free chlorine", p_conductivity_uscm: "conductivity",
      p_temperature_c: "temperature", p_orp_mv: "ORP", p_pressure_bar: "pressure", p_flow_m3h: "flow",
      t_stuck: "stuck (the same value repeated)", t_missing: "values missing", t_gap: "gap (the sonde was silent)",
      t_trend: "drift", t_fouling: "fouling", t_decoupled: "out of step with the related parameters", t_spikes: "bursts of spikes",
      t_flat_line: "flat line", t_gross_range: "outside its measuring range", t_spike: "spike", t_rate_of_change: "changing too fast",
      up: "up", down: "down", to: "to", usual: "usual", probability: "probability", lasting: "for", sensor: "sensor",
      below: "below the limit", above: "above the limit",
      late: "late on route", trip: "trip", threshold: "threshold", bus: "Bus",
      bunched: "Buses bunched on route", at_stop: "at stop", behind: "behind",
      details: "Details (raw evidence)", silent_for: "silent for",
    },
    vi: {
      kind_water_quality_event: "Sự cố chất lượng nước", kind_compliance_breach: "Vượt ngưỡng QCVN", kind_sensor_fault: "Lỗi cảm biến",
      kind_bus_delay: "Xe buýt trễ", kind_bus_bunching: "Xe dồn chuyến",
      p_ph: "pH", p_turbidity_ntu: "độ đục", p_free_chlorine_mgl: "clo dư", p_conductivity_uscm: "độ dẫn điện",
      p_temperature_c: "nhiệt độ", p_orp_mv: "ORP", p_pressure_bar: "áp suất", p_flow_m3h: "lưu lượng",
      t_stuck: "kẹt giá trị (lặp lại cùng một số)", t_missing: "thiếu số liệu", t_gap: "mất tín hiệu (thiết bị im lặng)",
      t_trend: "trôi số đo", t_fouling: "bám bẩn", t_decoupled: "lệch với các thông số liên quan", t_spikes: "nhiễu đột biến liên tiếp",
      t_flat_line: "đường phẳng", t_gross_range: "ngoài dải đo", t_spike: "đột biến", t_rate_of_change: "thay đổi quá nhanh",
      up: "tăng", down: "giảm", to: "lên", to_down: "xuống", usual: "thường", probability: "xác suất", lasting: "trong", sensor: "cảm biến",
      below: "dưới giới hạn", above: "vượt giới hạn",
      late: "trên tuyến", trip: "chuyến", threshold: "ngưỡng", bus: "Xe buýt",
      bunched: "Xe dồn chuyến trên tuyến", at_stop: "tại điểm dừng", behind: "sau xe",
      details: "Chi tiết (bằng chứng gốc)", silent_for: "im lặng",
    },
  };
  const UNITS = { turbidity_ntu: "NTU", free_chlorine_mgl: "mg/L", conductivity_uscm: "µS/cm", temperature_c: "°C",
    orp_mv: "mV", pressure_bar: "bar", flow_m3h: "m³/h", ph: "" };
  const DIGITS = { ph: 2, turbidity_ntu: 2, free_chlorine_mgl: 2, conductivity_uscm: 0, temperature_c: 1, orp_mv: 0, pressure_bar: 2, flow_m3h: 0 };

  const w = (key) => (WORDS[CS.lang()] || WORDS.en)[key] || WORDS.en[key] || key;
  const vi = () => CS.lang() === "vi";
  const param = (p) => w("p_" + p);
  const value = (p, v) => `${CS.num(v, DIGITS[p] ?? 2)}${UNITS[p] ? " " + UNITS[p] : ""}`;
  const cap = (text) => (text.startsWith("pH") ? text : text.charAt(0).toUpperCase() + text.slice(1));
  const kind = (k) => { const key = "kind_" + k; const text = w(key); return text === key ? k : text; };

  // Seconds the alert's condition has lasted: up to its clearing, its last activity, or now.
  function lasted(a) {
    const ev = a.evidence || {};
    const end = a.cleared_at ? Date.parse(a.cleared_at)
      : ev.last_active_at ? Date.parse(ev.last_active_at) : Date.now();
    let s = (end - Date.parse(a.opened_at)) / 1000;
    // A breach opens once it has lasted its minimum duration.
    if (a.kind === "compliance_breach" && Number.isFinite(ev.min_breach_s)) s += ev.min_breach_s;
    return s;
  }

  function moved(m) {
    const p = m.parameter, d = DIGITS[p] ?? 2;
    const dir = m.direction === "up" ? w("up") : w("down");
    const to = vi() && m.direction !== "up" ? w("to_down") : w("to");
    const change = `${CS.num(Math.abs(m.change), d)}${UNITS[p] ? " " + UNITS[p] : ""}`;
    return `${param(p)} ${dir} ${change} ${to} ${CS.num(m.value, d)} (${w("usual")} ${CS.num(m.usual, d)})`;
  }

  function event(a) {
    const ev = a.evidence || {};
    const latest = ev.latest && ev.latest.moved ? ev.latest : ev;
    const parts = [`${kind(a.kind)} (${w("probability")} ${CS.short(100 * (latest.probability ?? ev.probability ?? 0), 0)} %)`];
    const list = (latest.moved || []).map(moved);
    return `${parts[0]}${list.length ? ": " + list.join(", ") : ""}; ${w("lasting")} ${CS.duration(lasted(a))}.`;
  }

  function breach(a) {
    const ev = a.evidence || {};
    const values = ev.values || {}, limits = ev.limits || {};
    const items = (ev.parameters || []).map((p) => {
      const [lo, hi] = limits[p] || [null, null];
      const v = values[p];
      const low = lo !== null && lo !== undefined && v < lo;
      const limit = low ? lo : hi;
      return `${param(p)} ${value(p, v)} ${low ? w("below") : w("above")} ${CS.short(limit)}${UNITS[p] ? " " + UNITS[p] : ""}`;
    });
    const standard = ev.standard ? ` (${ev.standard})` : "";
    return `${cap(items.join("; ") || kind(a.kind))}${standard}, ${w("lasting")} ${CS.duration(lasted(a))}.`;
  }

  function fault(a) {
    const ev = a.evidence || {};
    const tests = ev.tests || {};
    const items = (ev.parameters || []).map((p) => {
      const names = (tests[p] || []).map((t) => w("t_" + t));
      return vi() ? `${w("sensor")} ${param(p)}: ${names.join(", ")}` : `${param(p)} ${w("sensor")}: ${names.join(", ")}`;
    });
    return `${cap(items.join("; ") || kind(a.kind))}; ${w("lasting")} ${CS.duration(lasted(a))}.`;
  }

  function delay(a) {
    const ev = a.evidence || {};
    const late = CS.duration(ev.delay_s);
    const route = ev.route_id || "?";
    if (vi()) return `${w("bus")} ${a.subject_id} trễ ${late} ${w("late")} ${route} (${w("trip")} ${ev.trip_id || "?"}; ${w("threshold")} ${CS.duration(ev.threshold_s)}).`;
    return `${w("bus")} ${a.subject_id} ${late} ${w("late")} ${route} (${w("trip")} ${ev.trip_id || "?"}; ${w("threshold")} ${CS.duration(ev.threshold_s)}).`;
  }

  function bunching(a) {
    const ev = a.evidence || {};
    const gap = vi() ? `cách nhau ${CS.duration(ev.actual_headway_s)} thay vì ${CS.duration(ev.scheduled_headway_s)}`
      : `${CS.duration(ev.actual_headway_s)} apart instead of ${CS.duration(ev.scheduled_headway_s)}`;
    return `${w("bunched")} ${ev.route_id || a.subject_id} ${w("at_stop")} ${ev.stop_id || "?"}: ${gap}` +
      (ev.vehicle ? ` (${ev.vehicle} ${w("behind")} ${ev.leader || "?"})` : "") + ".";
  }

  const SUMMARIES = { water_quality_event: event, compliance_breach: breach, sensor_fault: fault, bus_delay: delay, bus_bunching: bunching };

  // One line saying what the alert is about; the kind's name when its evidence has no known form.
  function summary(a) {
    const fn = SUMMARIES[a.kind];
    if (!fn) return kind(a.kind);
    try { return fn(a); } catch (err) { return kind(a.kind); }
  }

  // The raw evidence, folded away behind a "details" toggle.
  function details(a) {
    const box = CS.el("details", { class: "evidence" }, CS.el("summary", {}, w("details")));
    box.append(CS.el("pre", {}, JSON.stringify(a.evidence, null, 2)));
    return box;
  }

  // A station's state (analytics/water/status.py) by name, and what it rests on: the parameters
  // in breach, the open alerts, how long it has been silent.
  const stateName = (s) => CS.t(s === "maintenance" ? "maintenance_state" : s);
  function why(s) {
    const parts = [];
    if (s.state === "no_data" && s.silent_s !== null) parts.push(`${w("silent_for")} ${CS.duration(s.silent_s)}`);
    if (s.breach_parameters.length) parts.push(`${CS.t("breach")}: ${s.breach_parameters.map((p) => param(p)).join(", ")}`);
    for (const [k, n] of Object.entries(s.open_alerts || {})) parts.push(`${kind(k)}${n > 1 ? " ×" + n : ""}`);
    return parts.join("; ");
  }

  return { summary, details, kind, severity: (s) => CS.t(s), param, words: w, stateName, why };
})();
