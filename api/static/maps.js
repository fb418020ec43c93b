// Maps that read (docs/web.md, "Maps"): route colours from the GTFS feed with text that contrasts,
// labels that never pile up, the age of a bus position gone stale, and the configured basemap with
// its attribution. Adds to CSMap (site.js); load it after site.js.
"use strict";

Object.assign(CSMap, (() => {
  const HEX = /^#[0-9A-Fa-f]{6}$/;
  // Routes without a route_color: distinct colours, each dark enough to carry white text (contrast
  // 4.5:1 or more) and to show as a line on a light map. Picked by the route id, so a route has the
  // same colour on every page.
  const PALETTE = ["#1565c0", "#c62828", "#2e7d32", "#6a1b9a", "#00838f", "#ad1457", "#4e342e", "#283593",
    "#bf360c", "#33691e", "#37474f", "#6d4c41"];
  // A bus whose last fix is older than this is drawn faded, with how long ago it reported.
  const STALE_AFTER_S = 120;

  // WCAG 2 relative luminance and contrast ratio of "#rrggbb" colours.
  function luminance(hex) {
    const c = [1, 3, 5].map((i) => parseInt(hex.slice(i, i + 2), 16) / 255)
      .map((v) => (v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4));
    return 0.2126 * c[0] + 0.7152 * c[1] + 0.0722 * c[2];
  }
  function contrast(a, b) {
    const [hi, lo] = [luminance(a), luminance(b)].sort((x, y) => y - x);
    return (hi + 0.05) / (lo + 0.05);
  }
  function hash(text) {
    let h = 2166136261;
    for (const ch of String(text)) { h ^= ch.codePointAt(0); h = Math.imul(h, 16777619) >>> 0; }
    return h;
  }
  // How to draw a route: its GTFS colour (else one of PALETTE), its text colour when that reads on
  // it (contrast 4.5:1 or more; else black or white, whichever contrasts more), and a casing for
  // the line: dark under a light colour, white under a dark one.
  function routeStyle(route) {
    const p = route || {};
    const given = HEX.test(p.color || "");
    const color = given ? p.color.toLowerCase() : PALETTE[hash(p.route_id || "") % PALETTE.length];
    let text = HEX.test(p.text_color || "") ? p.text_color.toLowerCase() : null;
    if (!text || contrast(text, color) < 4.5) text = contrast("#ffffff", color) >= contrast("#000000", color) ? "#ffffff" : "#000000";
    return { color, text, casing: luminance(color) > 0.4 ? "#3c4650" : "#ffffff", given };
  }
  // route_id -> style, from a /api/v1/routes collection (or the routes of a bus's history).
  function routeStyles(features) {
    const out = new Map();
    for (const f of features || []) {
      const p = f.properties || f;
      out.set(p.route_id, { ...routeStyle(p), short_name: p.short_name || p.route_id, long_name: p.long_name || "" });
    }
    return out;
  }
  // A route badge: the short name on the route's colour, as an SVG group at (x, y) (left, middle).
  function badge(text, style, x = 0, y = 0) {
    const g = CSMap.svg("g", { class: "route-badge", transform: `translate(${x},${y})` });
    const label = CSMap.svg("text", { x: 4, y: 4, fill: style.text, "font-size": 11, "font-weight": 600 });
    label.textContent = text;
    label.style.fill = style.text; // over the pages' grey for SVG text
    const box = CSMap.svg("rect", { x: 0, y: -8, rx: 3, height: 16, width: 8 + 7 * String(text).length, fill: style.color,
      stroke: style.casing, "stroke-width": 1 });
    g.append(box, label);
    return g;
  }
  // The same as an HTML element, for tables.
  function badgeHtml(text, style) {
    const span = CS.el("span", { class: "route-badge" }, text);
    Object.assign(span.style, { background: style.color, color: style.text, padding: "0 .35rem", borderRadius: "3px",
      fontWeight: 600, border: `1px solid ${style.casing}` });
    return span;
  }

  // Markers closer than `near` pixels, or of the same `group` key and closer than `far` pixels,
  // fall into one cluster (single linkage). items: [{x, y, group}] -> arrays of items.
  function clusters(items, near = 18, far = 70) {
    const parent = items.map((_, i) => i);
    const find = (i) => (parent[i] === i ? i : (parent[i] = find(parent[i])));
    for (let i = 0; i < items.length; i++) {
      for (let j = i + 1; j < items.length; j++) {
        const d = Math.hypot(items[i].x - items[j].x, items[i].y - items[j].y);
        const same = items[i].group && items[i].group === items[j].group;
        if (d < near || (same && d < far)) parent[find(i)] = find(j);
      }
    }
    const out = new Map();
    items.forEach((it, i) => { const k = find(i); if (!out.has(k)) out.set(k, []); out.get(k).push(it); });
    return [...out.values()];
  }
  // Where the members of a cluster of n are drawn: on a small ring around their centre, far enough
  // apart for markers of radius r not to touch (a cluster of one stays where it is).
  function spread(n, cx, cy, r = 8) {
    if (n === 1) return [[cx, cy]];
    const ring = Math.max(r * 1.6, (2 * r + 4) / (2 * Math.sin(Math.PI / n)));
    return Array.from({ length: n }, (_, k) => {
      const a = -Math.PI / 2 + (2 * Math.PI * k) / n;
      return [cx + ring * Math.cos(a), cy + ring * Math.sin(a)];
    });
  }

  // Clusters with where each member is drawn ([x, y] in `at`), such that no two markers of radius
  // r touch: clusters whose rings would overlap are merged, until none do.
  function layout(items, r = 8) {
    let groups = clusters(items);
    for (;;) {
      const placed = groups.map((members) => {
        const cx = members.reduce((t, m) => t + m.x, 0) / members.length, cy = members.reduce((t, m) => t + m.y, 0) / members.length;
        return { members, cx, cy, at: spread(members.length, cx, cy, r) };
      });
      let merged = null;
      search: for (let i = 0; i < placed.length; i++) {
        for (let j = i + 1; j < placed.length; j++) {
          for (const [x1, y1] of placed[i].at) {
            for (const [x2, y2] of placed[j].at) {
              if (Math.hypot(x1 - x2, y1 - y2) < 2 * r + 2) { merged = [i, j]; break search; }
            }
          }
        }
      }
      if (!merged) return placed;
      const [i, j] = merged;
      groups = groups.filter((_, k) => k !== i && k !== j).concat([[...groups[i], ...groups[j]]]);
    }
  }

  const intersects = (a, b) => a.x < b.x + b.w && b.x < a.x + a.w && a.y < b.y + b.h && b.y < a.y + a.h;
  // Labels that do not pile up: each label (an SVG <text> already in the page, anchored at
  // (x, y) beside a marker of radius r) tries eight places around its anchor, right first, and takes
  // the first that overlaps no label placed before it, no marker (`obstacles`: boxes {x, y, w, h})
  // and stays inside width x height; a label with no free place is hidden (its marker keeps its
  // tooltip). Labels are placed in the order given: put the ones that matter most first.
  function declutter(labels, obstacles, width, height) {
    const placed = [...obstacles];
    for (const l of labels) {
      l.node.removeAttribute("display");
      l.node.setAttribute("x", 0); l.node.setAttribute("y", 0);
      const bb = l.node.getBBox();
      const w = bb.width + 2, h = bb.height, r = l.r || 8, gap = 3;
      const spots = [[r + gap, -h / 2], [-r - gap - w, -h / 2], [-w / 2, -r - gap - h], [-w / 2, r + gap],
        [r, -r - h], [r, r], [-r - w, -r - h], [-r - w, r]];
      let done = false;
      for (const [dx, dy] of spots) {
        const box = { x: l.x + dx, y: l.y + dy, w, h };
        if (box.x < 0 || box.y < 0 || box.x + w > width || box.y + h > height) continue;
        if (placed.some((p) => intersects(box, p))) continue;
        // bb.y is the text's top relative to its baseline at 0.
        l.node.setAttribute("x", (box.x + 1).toFixed(1));
        l.node.setAttribute("y", (box.y - bb.y).toFixed(1));
        placed.push(box);
        done = true;
        break;
      }
      if (!done) l.node.setAttribute("display", "none");
      l.node.dataset.placed = done ? "yes" : "hidden";
    }
  }

  // Seconds since a bus's fix, from the age the API gave and the time since it arrived here (so
  // that the browser's clock does not matter).
  const ageOf = (feature) => (feature.properties.age_s || 0) + (Date.now() - (feature.receivedAt || Date.now())) / 1000;
  function ago(seconds) {
    const vi = CS.lang() === "vi";
    const s = Math.max(0, Math.round(seconds));
    if (s < 90) return vi ? `${s} giây trước` : `${s} s ago`;
    const m = Math.round(s / 60);
    if (m < 90) return vi ? `${m} phút trước` : `${m} min ago`;
    const h = Math.round(m / 60);
    return vi ? `${h} giờ trước` : `${h} h ago`;
  }

  // Tiles of the configured basemap under the vectors, and its attribution over them (call
  // attribution() last, on the <svg> itself). Without a basemap neither draws anything.
  function basemap(layer, project, width, height) {
    const b = CS.config().basemap;
    if (b && b.url) CSMap.tiles(layer, project, width, height, b.url);
  }
  function attribution(svgRoot, width, height) {
    const b = CS.config().basemap;
    if (!b || !b.url) return;
    let text = b.attribution;
    if (!text) { try { text = new URL(b.url.replace(/[{}]/g, "")).host; } catch (e) { text = ""; } }
    const g = CSMap.svg("g", { class: "attribution" });
    const label = CSMap.svg("text", { x: width - 4, y: height - 5, "text-anchor": "end", "font-size": 11, fill: "#333" });
    label.textContent = text;
    label.style.fill = "#333";
    g.append(label);
    svgRoot.append(g);
    const bb = label.getBBox();
    g.insertBefore(CSMap.svg("rect", { x: bb.x - 4, y: bb.y - 1, width: bb.width + 8, height: bb.height + 2, fill: "#fff", opacity: 0.8 }), label);
  }

  return { routeStyle, routeStyles, badge, badgeHtml, contrast, clusters, spread, layout, declutter, ageOf, ago, STALE_AFTER_S,
    basemap, attribution };
})());
