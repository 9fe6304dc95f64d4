/* SPDX-License-Identifier: Apache-2.0 */
// infergw status page: polls /status.json every POLL_MS and redraws. Plain
// DOM (textContent only, never HTML from data), inline SVG charts, no
// outside fetches. Each pool is a collapsible group; its replicas are sorted
// worst state first and shown PAGE at a time, with state chips and an
// address filter, so a pool of 1,000 replicas stays readable.
"use strict";

const POLL_MS = 3000;
const PAGE = 50;
// Worst first: the order replicas are listed in.
const RANK = { down: 0, ejected: 1, unhealthy: 2, not_serving: 3, lease_gone: 4, draining: 5,
  unknown: 6, healthy: 7 };
const SVGNS = "http://www.w3.org/2000/svg";
const ui = {}; // per pool: { page, state, filter, open, els }

function el(tag, attrs, ...kids) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === "class") e.className = v;
    else if (k === "text") e.textContent = v;
    else if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
    else e.setAttribute(k, v);
  }
  for (const k of kids) if (k != null) e.append(k);
  return e;
}
function svg(tag, attrs) {
  const e = document.createElementNS(SVGNS, tag);
  for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, v);
  return e;
}
function pct(x, digits) { return (100 * x).toFixed(digits == null ? 2 : digits) + "%"; }
function ms(x) { return x >= 100 ? x.toFixed(0) + " ms" : x >= 10 ? x.toFixed(1) + " ms" : x.toFixed(2) + " ms"; }
function rate(x) { return x >= 100 ? x.toFixed(0) + "/s" : x.toFixed(2) + "/s"; }
function ago(msAgo) {
  const s = Math.max(0, Math.round(msAgo / 1000));
  if (s < 90) return s + " s ago";
  if (s < 5400) return Math.round(s / 60) + " min ago";
  if (s < 172800) return Math.round(s / 3600) + " h ago";
  return Math.round(s / 86400) + " d ago";
}
function utc(t) { return new Date(t).toISOString().replace("T", " ").replace(/\.\d+Z$/, ""); }
// Addresses in natural order: 127.0.0.2 before 127.0.0.10.
function byAddr(a, b) { return a.localeCompare(b, "en", { numeric: true }); }
function isBad(st) { return RANK[st] <= 1; }
function isWarn(st) { return RANK[st] >= 2 && RANK[st] <= 5; }

// A small line chart of one or two series (arrays of numbers).
function chart(title, value, series, opts) {
  const W = 300, H = 56, box = svg("svg", { viewBox: `0 0 ${W} ${H}`, preserveAspectRatio: "none",
    role: "img", "aria-label": title });
  const n = series[0].length;
  if (n < 2) {
    box.append(svg("text", { x: 4, y: 32, class: "empty" }));
    box.lastChild.textContent = "collecting (a point every 5 s)";
  } else {
    let max = opts.min || 0;
    for (const s of series) for (const v of s) max = Math.max(max, v);
    if (max <= 0) max = 1;
    series.forEach((s, i) => {
      const pts = s.map((v, j) => [(j / (n - 1)) * W, H - 2 - (v / max) * (H - 6)]);
      const d = pts.map((p) => p[0].toFixed(1) + "," + p[1].toFixed(1)).join(" ");
      if (i === 0) box.append(svg("polygon", { points: `0,${H} ${d} ${W},${H}`,
        class: "area" + (opts.err ? " err" : "") }));
      box.append(svg("polyline", { points: d, class: "line" + (i ? " b" : "") + (opts.err ? " err" : "") }));
    });
  }
  const head = el("div", { class: "t" }, el("span", { text: title }), el("b", { text: value }));
  return el("div", { class: "chart" }, head, box, opts.legend || null);
}

function burnBadge(burn, calls) {
  const cls = calls === 0 ? "" : burn >= 10 ? "bad" : burn >= 1 ? "warn" : "ok";
  return el("span", { class: "badge " + cls, title: "error ratio over the window / (1 - objective)",
    text: calls === 0 ? "no calls" : "burn " + burn.toFixed(burn < 10 ? 2 : 0) + "x" });
}

function ringBar(p) {
  const W = 1000, box = svg("svg", { viewBox: `0 0 ${W} 16`, preserveAspectRatio: "none" });
  let x = 0;
  for (const r of p.replicas) {
    const w = r.share * W;
    const rect = svg("rect", { x: x.toFixed(2), y: 0, width: Math.max(w, 0).toFixed(2), height: 16,
      class: "s-" + r.state });
    const t = svg("title");
    t.textContent = `${r.address}: ${pct(r.share)} of the hash space (${r.state})`;
    rect.append(t);
    box.append(rect);
    x += w;
  }
  return box;
}

function replicaRows(p, st) {
  let reps = p.replicas.slice();
  if (st.state) reps = reps.filter((r) => r.state === st.state);
  if (st.filter) reps = reps.filter((r) => r.address.includes(st.filter));
  reps.sort((a, b) => (RANK[a.state] - RANK[b.state]) || byAddr(a.address, b.address));
  return reps;
}

function stateCounts(p) {
  const c = {};
  for (const r of p.replicas) c[r.state] = (c[r.state] || 0) + 1;
  return Object.entries(c).sort((a, b) => RANK[a[0]] - RANK[b[0]]);
}

function replicaTable(p, st, redraw) {
  const reps = replicaRows(p, st);
  const pages = Math.max(1, Math.ceil(reps.length / PAGE));
  st.page = Math.min(st.page, pages - 1);
  const from = st.page * PAGE, shown = reps.slice(from, from + PAGE);
  const maxShare = Math.max(...p.replicas.map((r) => r.share), 1e-9);

  const chips = [el("button", { class: "chip" + (st.state ? "" : " on"), text: "all",
    onclick: () => { st.state = ""; st.page = 0; redraw(); } },
  el("span", { class: "n", text: String(p.replicas.length) }))];
  for (const [s, n] of stateCounts(p)) {
    chips.push(el("button", { class: "chip" + (st.state === s ? " on" : ""), "data-state": s,
      text: s.replace("_", " "), onclick: () => { st.state = st.state === s ? "" : s; st.page = 0; redraw(); } },
    el("span", { class: "n", text: String(n) })));
  }
  const search = el("input", { type: "search", placeholder: "filter by address", value: st.filter,
    "aria-label": "filter replicas by address" });
  search.addEventListener("input", () => { st.filter = search.value.trim(); st.page = 0; redraw(true); });
  const pager = el("div", { class: "pager" },
    el("button", { text: "\u2039 prev", onclick: () => { st.page--; redraw(); }, ...(st.page === 0 ? { disabled: "" } : {}) }),
    el("span", { class: "range", text: reps.length ? `${from + 1}\u2013${from + shown.length} of ${reps.length}` : "none" }),
    el("button", { text: "next \u203a", onclick: () => { st.page++; redraw(); }, ...(st.page >= pages - 1 ? { disabled: "" } : {}) }));
  const toolbar = el("div", { class: "toolbar" }, ...chips, el("span", { class: "spacer" }), search, pager);

  const head = el("tr", {}, el("th", { text: "replica" }), el("th", { text: "state" }),
    el("th", { text: "health check" }), el("th", { class: "num", text: "in flight" }),
    el("th", { class: "num", text: "weight" }), el("th", { text: "ring share" }), el("th", { text: "notes" }));
  const body = el("tbody");
  for (const r of shown) {
    const notes = [];
    if (r.ejected) notes.push("ejected for " + (r.ejected_for_ms / 1000).toFixed(1) + " s");
    if (r.down) notes.push("connects failing");
    if (r.drain && !r.lease_gone) notes.push("draining");
    if (r.lease_gone) notes.push("lease expired");
    if (!r.reachable && !r.down) notes.push("no connection yet");
    const bar = el("span", { class: "sharebar" }, el("span"));
    bar.firstChild.style.width = (100 * r.share / maxShare).toFixed(1) + "%";
    body.append(el("tr", { class: isBad(r.state) ? "bad" : isWarn(r.state) ? "warn" : "",
      "data-addr": r.address, "data-state": r.state },
    el("td", { class: "addr", text: r.address }),
    el("td", {}, el("span", { class: "state " + r.state, text: r.state.replace("_", " ") })),
    el("td", { text: r.health }),
    el("td", { class: "num", text: String(r.inflight) }),
    el("td", { class: "num", text: String(r.weight) }),
    el("td", {}, document.createTextNode(pct(r.share)), bar),
    el("td", { class: "flags", text: notes.join(", ") })));
  }
  return el("div", { class: "replicas" }, toolbar, el("table", {}, el("thead", {}, head), body));
}

function poolSection(p) {
  const st = ui[p.name] || (ui[p.name] = { page: 0, state: "", filter: "", open: true });
  const w = p.window, h = p.history;
  const details = el("details", { class: "pool", "data-pool": p.name });
  if (st.open) details.setAttribute("open", "");
  details.addEventListener("toggle", () => { st.open = details.open; });
  const offShare = p.replicas.filter((r) => !r.eligible).reduce((a, r) => a + r.share, 0);
  details.append(el("summary", {},
    el("span", { class: "pname", text: p.name }),
    el("span", { class: "kv" }, el("b", { text: `${p.eligible}/${p.replica_count}` }), document.createTextNode(" eligible")),
    el("span", { class: "kv" }, el("b", { text: rate(w.rate_per_s) }), document.createTextNode(" calls")),
    el("span", { class: "kv" }, el("b", { text: pct(w.error_ratio) }), document.createTextNode(" errors")),
    el("span", { class: "kv" }, document.createTextNode("p50 "),
      el("b", { text: w.calls ? ms(w.p50_ms) : "\u2013" }), document.createTextNode(" \u00b7 p99 "),
      el("b", { text: w.calls ? ms(w.p99_ms) : "\u2013" })),
    el("span", { class: "kv", text: `SLO ${pct(p.slo_target, 1)}` }),
    burnBadge(w.slo_burn, w.calls)));

  const per = (h.t_ms.length > 1 ? (h.t_ms[1] - h.t_ms[0]) : 5000) / 1000;
  const rates = h.calls.map((c) => c / per);
  const ratios = h.calls.map((c, i) => (c ? h.errors[i] / c : 0));
  const last = (a) => (a.length ? a[a.length - 1] : 0);
  const mins = Math.round(w.seconds / 60 * 10) / 10;
  const legend = el("div", { class: "legend" }, el("span", { class: "sw" }), document.createTextNode("p50"),
    el("span", { class: "sw b" }), document.createTextNode("p99"));
  const charts = el("div", { class: "charts" },
    chart("call rate", rate(last(rates)), [rates], {}),
    chart("error ratio", pct(last(ratios)), [ratios], { err: true, min: 0.001 }),
    chart("latency", ms(last(h.p50_ms)) + " / " + ms(last(h.p99_ms)), [h.p50_ms, h.p99_ms], { legend }),
    chart(w.seconds ? `SLO burn (${mins} min window)` : "SLO burn", w.calls ? w.slo_burn.toFixed(2) + "x" : "\u2013",
      [h.calls.map((c, i) => (c ? h.errors[i] / c : 0) / (1 - p.slo_target))], { err: true, min: 1 }));
  const ring = el("div", { class: "ring" },
    el("div", { class: "t", text: `ring: ${p.points.toLocaleString("en")} points over ` +
      `${p.replica_count.toLocaleString("en")} replicas; ` +
      `${pct(offShare, 1)} of the hash space on replicas not eligible now (their keys go clockwise to the next)` }),
    ringBar(p));
  const body = el("div", { class: "pbody" }, charts, ring);
  const redraw = (keepFocus) => {
    const t = replicaTable(p, st, redraw);
    body.replaceChild(t, body.lastChild);
    if (keepFocus) { const i = t.querySelector("input"); i.focus(); i.setSelectionRange(i.value.length, i.value.length); }
  };
  body.append(replicaTable(p, st, redraw));
  details.append(body);
  return details;
}

function overview(d) {
  const reps = d.pools.reduce((a, p) => a + p.replica_count, 0);
  const elig = d.pools.reduce((a, p) => a + p.eligible, 0);
  const calls = d.pools.reduce((a, p) => a + p.window.rate_per_s, 0);
  const worst = d.pools.reduce((a, p) => Math.max(a, p.window.calls ? p.window.slo_burn : 0), 0);
  const stat = (k, v, cls) => el("div", { class: "stat" }, el("div", { class: "k", text: k }),
    el("div", { class: "v " + (cls || ""), text: v }));
  return [stat("pools", String(d.pools.length)),
    stat("eligible (all pools)", `${elig} / ${reps}`, elig < reps ? "bad" : "ok"),
    stat("calls", rate(calls)),
    stat("worst SLO burn", worst.toFixed(2) + "x", worst >= 1 ? "bad" : "ok"),
    stat("config version", String(d.version)),
    stat("control plane", d.control ? (d.control.redis_up ? "redis up" : "redis down") : "flags only",
      d.control && !d.control.redis_up ? "bad" : "")];
}

function render(d) {
  const up = Math.round((d.now_ms - d.started_ms) / 1000);
  const meta = document.getElementById("meta");
  meta.replaceChildren(document.createTextNode("config version "), el("b", { text: String(d.version) }),
    document.createTextNode(` \u00b7 ${d.workers} workers \u00b7 admin up ${ago(up * 1000).replace(" ago", "")}` +
      ` \u00b7 updated ${utc(d.now_ms)} UTC`));
  document.getElementById("overview").replaceChildren(...overview(d));
  const pools = document.getElementById("pools");
  const focused = document.activeElement && document.activeElement.type === "search";
  // Pools with a replica out of service first, then by name.
  const sorted = d.pools.slice().sort((a, b) => ((a.eligible < a.replica_count ? 0 : 1) -
    (b.eligible < b.replica_count ? 0 : 1)) || a.name.localeCompare(b.name));
  if (!focused) pools.replaceChildren(...sorted.map(poolSection));
  const tb = document.querySelector("#versions tbody");
  tb.replaceChildren(...d.config_versions.map((v) => el("tr", {}, el("td", { class: "num", text: String(v.version) }),
    el("td", { text: utc(v.applied_at_ms) }), el("td", { class: "muted", text: ago(d.now_ms - v.applied_at_ms) }))));
  document.getElementById("versions-none").hidden = d.control !== null;
  document.getElementById("versions").hidden = d.control === null;
}

function live(ok, text) {
  document.getElementById("live").className = "live " + (ok ? "ok" : "err");
  document.getElementById("live-text").textContent = text;
}

async function poll() {
  try {
    const r = await fetch("/status.json", { cache: "no-store" });
    if (!r.ok) throw new Error("HTTP " + r.status);
    render(await r.json());
    live(true, "live");
  } catch (e) {
    live(false, "unreachable: " + e.message);
  }
  setTimeout(poll, POLL_MS);
}

poll();
