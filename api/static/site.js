// Shared by every page: language (vi/en), times in the configured zone, API calls, the header.
"use strict";

const CS = (() => {
  const COMMON = {
    en: {
      overview: "Overview", water: "Water alerts", stations: "Stations", maintenance: "Maintenance", transit: "Live buses",
      performance: "Route performance", transit_alerts: "Transit alerts", login: "Log in", logout: "Log out", api: "API",
      loading: "Loading…", error: "Error", none: "None", all: "All",
      state_open: "open", state_acknowledged: "acknowledged", state_resolved: "resolved",
      compliant: "compliant", breach: "breach", unknown: "not evaluated", no_data: "no data", maintenance_state: "maintenance",
      event: "water-quality event", sensor_fault: "sensor fault",
      critical: "critical", warning: "warning", info: "info",
      role_water_staff: "water staff", role_transport_planner: "transport planner", role_admin: "administrator",
      times_in: "Times in", notifications: "Notifications",
    },
    vi: {
      overview: "Tổng quan", water: "Cảnh báo nước", stations: "Trạm quan trắc", maintenance: "Bảo trì", transit: "Xe buýt trực tuyến",
      performance: "Hiệu quả tuyến", transit_alerts: "Cảnh báo giao thông", login: "Đăng nhập", logout: "Đăng xuất", api: "API",
      loading: "Đang tải…", error: "Lỗi", none: "Không có", all: "Tất cả",
      state_open: "mới", state_acknowledged: "đã tiếp nhận", state_resolved: "đã xử lý",
      compliant: "đạt chuẩn", breach: "vượt ngưỡng", unknown: "chưa đánh giá", no_data: "mất dữ liệu", maintenance_state: "đang bảo trì",
      event: "sự cố chất lượng nước", sensor_fault: "lỗi cảm biến",
      critical: "nghiêm trọng", warning: "cảnh báo", info: "thông tin",
      role_water_staff: "nhân viên cấp nước", role_transport_planner: "cán bộ quy hoạch giao thông", role_admin: "quản trị viên",
      times_in: "Giờ theo", notifications: "Thông báo",
    },
  };
  let dict = { en: { ...COMMON.en }, vi: { ...COMMON.vi } };
  let config = { public_views: [], tile_url: null, timezone: "Asia/Ho_Chi_Minh" };
  let me = null;
  const listeners = [];

  const lang = () => localStorage.getItem("citysense.lang") || (navigator.language.startsWith("vi") ? "vi" : "en");
  const t = (key) => (dict[lang()] && dict[lang()][key]) || dict.en[key] || key;

  function applyTranslations(root = document) {
    document.documentElement.lang = lang();
    for (const el of root.querySelectorAll("[data-i18n]")) el.textContent = t(el.dataset.i18n);
    for (const el of root.querySelectorAll("[data-i18n-placeholder]")) el.placeholder = t(el.dataset.i18nPlaceholder);
    const sw = document.getElementById("lang-switch");
    if (sw) sw.textContent = lang() === "vi" ? "English" : "Tiếng Việt";
  }

  function setLang(value) {
    localStorage.setItem("citysense.lang", value);
    applyTranslations();
    renderUser();
    for (const fn of listeners) fn();
  }

  const tz = () => config.timezone || "Asia/Ho_Chi_Minh";
  const locale = () => (lang() === "vi" ? "vi-VN" : "en-GB");
  // Day/month/year in Vietnamese (and British) form, 24-hour clock.
  // opts: { timeStyle: "short" } leaves the seconds out; other Intl options are added.
  function time(value, opts = {}) {
    if (!value) return "–";
    const { timeStyle, ...rest } = opts;
    const seconds = timeStyle === "short" ? {} : { second: "2-digit" };
    return new Date(value).toLocaleString(locale(), { timeZone: tz(), day: "2-digit", month: "2-digit", year: "numeric",
      hour: "2-digit", minute: "2-digit", ...seconds, hourCycle: "h23", ...rest });
  }
  function clock(value) {
    return new Date(value).toLocaleTimeString(locale(), { timeZone: tz(), hour: "2-digit", minute: "2-digit" });
  }
  // The offset (ms) of `zone` from UTC at the instant `ms`.
  function offsetMs(ms, zone) {
    const parts = {};
    const fmt = new Intl.DateTimeFormat("en-US", { timeZone: zone, hourCycle: "h23", year: "numeric", month: "2-digit",
      day: "2-digit", hour: "2-digit", minute: "2-digit", second: "2-digit" });
    for (const p of fmt.formatToParts(new Date(ms))) parts[p.type] = p.value;
    const wall = Date.UTC(+parts.year, +parts.month - 1, +parts.day, +parts.hour, +parts.minute, +parts.second);
    return wall - Math.floor(ms / 1000) * 1000;
  }
  // A wall-clock time "YYYY-MM-DDTHH:MM" (as <input type="datetime-local"> gives it) in `zone`
  // (the configured one by default), as an RFC 3339 UTC time; null when it is not such a time.
  function fromLocal(text, zone = tz()) {
    const m = /^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2})(?::(\d{2}))?$/.exec(text || "");
    if (!m) return null;
    const wall = Date.UTC(+m[1], +m[2] - 1, +m[3], +m[4], +m[5], +(m[6] || 0));
    let utc = wall - offsetMs(wall, zone);
    utc = wall - offsetMs(utc, zone); // once more, in case the offset changed in between
    return new Date(utc).toISOString();
  }
  // An instant as "YYYY-MM-DDTHH:MM" on the wall clocks of `zone`, for a datetime-local input.
  const toLocal = (ms, zone = tz()) => new Date(ms + offsetMs(ms, zone)).toISOString().slice(0, 16);
  // A number with d decimals in the reader's form: 7,25 in Vietnamese, 7.25 in English.
  const num = (v, d) => (v === null || v === undefined || !Number.isFinite(Number(v)) ? "–"
    : Number(v).toLocaleString(locale(), { minimumFractionDigits: d, maximumFractionDigits: d }));
  // A number with at most d decimals, trailing zeros dropped (limits, changes).
  const short = (v, d = 2) => (v === null || v === undefined ? "–"
    : Number(v).toLocaleString(locale(), { maximumFractionDigits: d }));
  // A duration in seconds as "1 h 05 min" / "25 min" / "40 s".
  function duration(seconds) {
    if (seconds === null || seconds === undefined || !Number.isFinite(seconds)) return "–";
    const s = Math.max(0, Math.round(seconds));
    if (s < 60) return `${s} s`;
    const m = Math.round(s / 60);
    if (m < 60) return `${m} ${lang() === "vi" ? "phút" : "min"}`;
    const h = Math.floor(m / 60), rest = m % 60;
    if (h >= 48) return `${Math.round(h / 24)} ${lang() === "vi" ? "ngày" : "days"}`;
    return `${h} ${lang() === "vi" ? "giờ" : "h"}${rest ? ` ${String(rest).padStart(2, "0")} ${lang() === "vi" ? "phút" : "min"}` : ""}`;
  }
  // Where each role starts: its own inbox (admins: the overview).
  const HOMES = { water_staff: "/water", transport_planner: "/transit/alerts", admin: "/" };
  const home = (role) => HOMES[role] || "/";

  class ApiError extends Error {
    constructor(status, body, retryAfter = null) {
      super((body && body.error && body.error.message) || `HTTP ${status}`);
      this.status = status;
      this.retryAfter = retryAfter === null ? null : Number(retryAfter); // seconds, with a 429
      this.code = body && body.error && body.error.code;
      this.problems = (body && body.error && body.error.problems) || [];
    }
    // The API's message with what was wrong with each field, for people to read.
    get text() {
      return [this.message, ...this.problems.map((p) => `${p.location}: ${p.problem}`)].join("; ");
    }
  }

  async function api(path, { method = "GET", body, redirect = true } = {}) {
    const headers = { Accept: "application/json" };
    if (body !== undefined) headers["Content-Type"] = "application/json";
    if (method !== "GET" && me) headers["X-CSRF-Token"] = me.csrf_token;
    const res = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body), credentials: "same-origin" });
    const data = res.status === 204 ? null : await res.json().catch(() => null);
    if (res.status === 401 && redirect) {
      location.href = "/login?next=" + encodeURIComponent(location.pathname + location.search);
      throw new ApiError(res.status, data);
    }
    if (!res.ok) throw new ApiError(res.status, data, res.headers.get("Retry-After"));
    return data;
  }

  // Where to go after logging in: `next` only when, parsed as the browser would follow it, it
  // stays on this origin (so "/\\evil.example", "/\t/evil.example" or "//evil.example", which a
  // browser takes to another host, are refused); else `fallback`. Returns a path, never a URL.
  function sameOriginPath(next, fallback) {
    if (typeof next !== "string" || !next.startsWith("/")) return fallback;
    let url;
    try { url = new URL(next, location.origin); } catch (e) { return fallback; }
    if (url.origin !== location.origin || url.username || url.password) return fallback;
    return url.pathname + url.search + url.hash;
  }

  function el(tag, attrs = {}, ...children) {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs)) {
      if (k === "class") node.className = v;
      else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
      else if (v !== undefined && v !== null) node.setAttribute(k, v);
    }
    for (const c of children) node.append(c instanceof Node ? c : document.createTextNode(String(c)));
    return node;
  }

  function header(active) {
    const nav = document.getElementById("nav");
    if (!nav) return;
    const water = [["/water", "water"], ["/water/stations", "stations"], ["/water/maintenance", "maintenance"]];
    const transit = [["/transit/alerts", "transit_alerts"], ["/transit", "transit"], ["/transit/performance", "performance"]];
    // A planner's own pages come first; everyone else's order is water, then transit.
    const links = [["/", "overview"], ...(me && me.role === "transport_planner" ? [...transit, ...water] : [...water, ...transit])];
    if (me) links.push(["/notifications", "notifications"]);
    const items = links.map(([href, key]) => el("a", { href, class: key === active ? "active" : "", "data-i18n": key }, t(key)));
    const user = el("span", { class: "user", id: "user" });
    const swLang = el("button", { id: "lang-switch", type: "button", class: "link", onclick: () => setLang(lang() === "vi" ? "en" : "vi") });
    nav.replaceChildren(el("strong", {}, "citysense"), ...items, el("span", { class: "spacer" }), user, swLang);
    renderUser();
  }

  function renderUser() {
    const box = document.getElementById("user");
    if (!box) return;
    if (me) {
      const out = el("button", { type: "button", class: "link", id: "logout", "data-i18n": "logout", onclick: async () => {
        await api("/api/v1/auth/logout", { method: "POST", redirect: false }).catch(() => null);
        me = null;
        location.href = "/login";
      } }, t("logout"));
      box.replaceChildren(el("span", { id: "whoami", "data-role": me.role }, `${me.username} (${t("role_" + me.role)})`), " ", out);
    } else {
      box.replaceChildren(el("a", { href: "/login?next=" + encodeURIComponent(location.pathname), "data-i18n": "login" }, t("login")));
    }
  }

  async function init({ page, words = {}, active }) {
    dict = { en: { ...COMMON.en, ...(words.en || {}) }, vi: { ...COMMON.vi, ...(words.vi || {}) } };
    config = await api("/api/v1/config", { redirect: false }).catch(() => config);
    me = await api("/api/v1/auth/me", { redirect: false }).catch(() => null);
    header(active || page);
    applyTranslations();
    const foot = document.getElementById("tz");
    if (foot) foot.textContent = tz();
  }

  return {
    init, t, time, clock, num, short, duration, home, locale, api, fromLocal, toLocal, tz, el, lang, setLang, applyTranslations, ApiError, sameOriginPath,
    onLang: (fn) => listeners.push(fn),
    me: () => me,
    config: () => config,
    isPublic: (view) => config.public_views.includes(view),
  };
})();

// Maps drawn by the page as SVG vectors, in Web Mercator so that optional tiles
// (config.tile_url, {z}/{x}/{y}) line up underneath; without a tile URL nothing is fetched.
const CSMap = (() => {
  const NS = "http://www.w3.org/2000/svg";
  function svg(tag, attrs = {}) {
    const node = document.createElementNS(NS, tag);
    for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
    return node;
  }
  const mx = (lon, z) => (lon + 180) / 360 * 256 * 2 ** z;
  const my = (lat, z) => {
    const r = lat * Math.PI / 180;
    return (1 - Math.log(Math.tan(r) + 1 / Math.cos(r)) / Math.PI) / 2 * 256 * 2 ** z;
  };
  // A projection [lon, lat] -> [x, y] fitting `points` into width x height, and the zoom used.
  function projection(points, width, height, pad = 30, wholeZoom = false) {
    let lons = points.map((p) => p[0]), lats = points.map((p) => p[1]);
    if (!points.length) { lons = [108.1, 108.3]; lats = [15.95, 16.15]; } // Da Nang
    const [x0, x1, y0, y1] = [Math.min(...lons), Math.max(...lons), Math.min(...lats), Math.max(...lats)];
    const spanX = Math.max(mx(x1, 0) - mx(x0, 0), 1e-4), spanY = Math.max(my(y0, 0) - my(y1, 0), 1e-4);
    let z = Math.min(Math.log2((width - 2 * pad) / spanX), Math.log2((height - 2 * pad) / spanY), 18);
    if (wholeZoom) z = Math.floor(z);
    const cx = (mx(x0, z) + mx(x1, z)) / 2, cy = (my(y0, z) + my(y1, z)) / 2;
    const dx = width / 2 - cx, dy = height / 2 - cy;
    const project = ([lon, lat]) => [mx(lon, z) + dx, my(lat, z) + dy];
    project.zoom = z; project.dx = dx; project.dy = dy;
    return project;
  }
  // <image> tiles behind the vectors, when a tile URL is configured.
  function tiles(layer, project, width, height, url) {
    if (!url) return;
    const z = project.zoom, n = 2 ** z;
    for (let tx = Math.floor(-project.dx / 256); tx * 256 + project.dx < width; tx++) {
      for (let ty = Math.floor(-project.dy / 256); ty * 256 + project.dy < height; ty++) {
        if (ty < 0 || ty >= n) continue;
        const href = url.replace("{z}", z).replace("{x}", ((tx % n) + n) % n).replace("{y}", ty);
        layer.append(svg("image", { href, x: tx * 256 + project.dx, y: ty * 256 + project.dy, width: 256, height: 256 }));
      }
    }
  }
  function line(coords, project) {
    return coords.map((c, i) => { const [x, y] = project(c); return `${i ? "L" : "M"}${x.toFixed(1)},${y.toFixed(1)}`; }).join("");
  }
  return { svg, projection, tiles, line };
})();
