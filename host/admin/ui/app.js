// The Trellis dashboard: polls the admin endpoint's JSON API every second
// and redraws the plugins, the traffic graph and the recent events.
"use strict";

const SVG = "http://www.w3.org/2000/svg";
const POLL_MS = 1000;

function el(tag, attrs, text) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, v);
  if (text !== undefined) e.textContent = text;
  return e;
}

function svg(tag, attrs, text) {
  const e = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, v);
  if (text !== undefined) e.textContent = text;
  return e;
}

function fmtRate(r) { return r >= 100 ? r.toFixed(0) : r >= 10 ? r.toFixed(1) : r.toFixed(2); }
function fmtPct(x) { return (x * 100).toFixed(x > 0 && x < 0.01 ? 2 : 0); }
function fmtSecs(s) {
  if (!s) return "–";
  if (s < 1e-3) return (s * 1e6).toFixed(0) + "µs";
  if (s < 1) return (s * 1e3).toFixed(1) + "ms";
  return s.toFixed(2) + "s";
}

async function getJSON(path) {
  const r = await fetch(path, { cache: "no-store" });
  if (!r.ok) throw new Error(path + ": " + r.status);
  return r.json();
}

function renderStatus(st) {
  const ready = document.getElementById("ready");
  ready.textContent = st.ready ? "ready" : "not ready";
  ready.className = "badge " + (st.ready ? "ready" : "notready");
  document.getElementById("window").textContent = Math.round(st.window_seconds) || 10;
  let rate = 0, errs = 0;
  const body = document.querySelector("#plugins tbody");
  const rows = [];
  for (const p of st.plugins) {
    if (p.role === "handler") { rate += p.rate; errs += p.rate * p.error_ratio; }
    const tr = el("tr", { "data-plugin": p.name });
    const h = el("td"); h.appendChild(el("span", { class: "health " + p.health, title: p.health })); tr.appendChild(h);
    tr.appendChild(el("td", { class: "name" }, p.name));
    tr.appendChild(el("td", { class: "role" }, p.role + (p.recording ? " (recording)" : "")));
    tr.appendChild(el("td", { class: "version" }, p.version));
    tr.appendChild(el("td", {}, (p.subjects || []).join(" ") + ((p.policies || []).length ? "  ⟵ " + p.policies.join(", ") : "")));
    tr.appendChild(el("td", { class: "num" }, p.pool.in_use + "/" + p.pool.size));
    tr.appendChild(el("td", { class: "num rate" }, fmtRate(p.rate)));
    tr.appendChild(el("td", { class: "num errors" }, fmtPct(p.error_ratio) + "%"));
    tr.appendChild(el("td", { class: "num" }, fmtSecs(p.p50_seconds)));
    tr.appendChild(el("td", { class: "num" }, fmtSecs(p.p99_seconds)));
    tr.appendChild(el("td", { class: "num total" }, String(p.messages)));
    const lr = p.last_reload;
    tr.appendChild(el("td", { title: lr && lr.detail ? lr.detail : "" },
      lr ? lr.kind + " " + new Date(lr.time).toLocaleTimeString() : "–"));
    rows.push(tr);
    for (const c of p.candidates || []) rows.push(candidateRow(p, c));
  }
  body.replaceChildren(...rows);
  document.getElementById("total-rate").textContent = fmtRate(rate);
  document.getElementById("total-errors").textContent = rate > 0 ? fmtPct(errs / rate) : "0";

  const list = document.getElementById("events");
  const items = [];
  for (const e of st.events.slice().reverse()) {
    const text = new Date(e.time).toLocaleTimeString() + "  " + e.kind + "  " + e.plugin +
      (e.version ? " " + e.version : "") + (e.subject ? " on " + e.subject : "") +
      (e.detail ? ": " + e.detail : "") + (e.load_time ? " (" + fmtSecs(e.load_time / 1e9) + ")" : "");
    items.push(el("li", { class: e.kind }, text));
  }
  list.replaceChildren(...items);
}

// candidateRow is a candidate version under its plugin's row: its mode and
// share, and a canary's rollout step or a shadow's comparisons.
function candidateRow(p, c) {
  const ro = p.rollout && p.rollout.version === c.version ? p.rollout : null;
  const tr = el("tr", { class: "candidate " + c.mode, "data-candidate-of": p.name, "data-version": c.version });
  tr.appendChild(el("td"));
  tr.appendChild(el("td", { class: "name" }, "└ candidate"));
  tr.appendChild(el("td", { class: "mode" }, c.mode + (c.mode === "canary" ? " " + fmtPct(c.share) + "%" : "")));
  tr.appendChild(el("td", { class: "version" }, c.version));
  let what = "";
  if (ro && ro.state === "running") {
    what = "rollout step " + ro.step + " of " + ro.plan.steps.length + (ro.decider ? ", decided by " + ro.decider : "") +
      (ro.reason ? ": " + ro.reason : "");
  }
  if (c.shadow) {
    what = "shadow: " + c.shadow.compared + " compared, " + c.shadow.differed + " differ, " + c.shadow.skipped + " skipped";
  }
  tr.appendChild(el("td", { class: "progress" }, what));
  tr.appendChild(el("td", { class: "num" }, c.in_use + "/" + c.pool_size));
  tr.appendChild(el("td", { class: "num" }, "–"));
  tr.appendChild(el("td", { class: "num" }, fmtPct(c.messages ? c.errors / c.messages : 0) + "%"));
  tr.appendChild(el("td", { class: "num" }, fmtSecs(c.p50_seconds)));
  tr.appendChild(el("td", { class: "num" }, fmtSecs(c.p99_seconds)));
  tr.appendChild(el("td", { class: "num" }, String(c.messages)));
  tr.appendChild(el("td", {}, ro ? ro.state : "–"));
  return tr;
}

// layers places each node in a column: the longest path to it from a node
// nothing points at (cycles are cut after as many rounds as nodes).
function layers(nodes, edges) {
  const layer = new Map(nodes.map(n => [n.id, 0]));
  for (let round = 0; round < nodes.length; round++) {
    let changed = false;
    for (const e of edges) {
      const want = layer.get(e.from) + 1;
      if (layer.get(e.to) < want && want < nodes.length) { layer.set(e.to, want); changed = true; }
    }
    if (!changed) break;
  }
  return layer;
}

function renderGraph(g) {
  const graph = document.getElementById("graph");
  const layer = layers(g.nodes, g.edges);
  const cols = new Map();
  const pos = new Map();
  const W = 190, H = 28, GX = 260, GY = 56;
  for (const n of g.nodes) {
    const l = layer.get(n.id);
    const row = cols.get(l) || 0;
    cols.set(l, row + 1);
    pos.set(n.id, { x: 20 + l * GX, y: 20 + row * GY });
  }
  const width = 40 + Math.max(1, cols.size) * GX;
  const height = 40 + Math.max(1, ...cols.values()) * GY;
  graph.setAttribute("width", width);
  graph.setAttribute("height", height);
  graph.setAttribute("viewBox", "0 0 " + width + " " + height);
  const parts = [];
  g.edges.forEach((e, i) => {
    const a = pos.get(e.from), b = pos.get(e.to);
    if (!a || !b) return;
    const x1 = a.x + W, y1 = a.y + H / 2, x2 = b.x, y2 = b.y + H / 2;
    const mx = (x1 + x2) / 2;
    const cls = "edge" + (e.error_ratio > 0 ? " errors" : "") + (e.rate === 0 ? " idle" : "");
    const grp = svg("g", { class: cls, "data-from": e.from, "data-to": e.to });
    grp.appendChild(svg("path", { d: `M${x1},${y1} C${mx},${y1} ${mx},${y2} ${x2},${y2}` }));
    const label = fmtRate(e.rate) + "/s" + (e.error_ratio > 0 ? " · " + fmtPct(e.error_ratio) + "% err" : "");
    grp.appendChild(svg("text", { x: mx, y: (y1 + y2) / 2 - 4, "text-anchor": "middle", class: "edge-rate", "data-rate": e.rate }, label));
    parts.push(grp);
  });
  for (const n of g.nodes) {
    const p = pos.get(n.id);
    const grp = svg("g", { class: "node " + n.kind, "data-id": n.id });
    grp.appendChild(svg("rect", { x: p.x, y: p.y, width: W, height: H }));
    const label = n.label.length > 28 ? n.label.slice(0, 27) + "…" : n.label;
    grp.appendChild(svg("text", { x: p.x + 8, y: p.y + 18 }, (n.kind === "subject" ? "" : n.kind + ": ") + label));
    grp.appendChild(svg("title", {}, n.kind + " " + n.label));
    parts.push(grp);
  }
  graph.replaceChildren(...parts);
}

async function poll() {
  try {
    const [st, g] = await Promise.all([getJSON("api/plugins"), getJSON("api/graph")]);
    renderStatus(st);
    renderGraph(g);
    document.getElementById("updated").textContent = "updated " + new Date().toLocaleTimeString();
    document.getElementById("status").textContent = "";
  } catch (err) {
    // Shown, not thrown: a host restarting is not a page error.
    document.getElementById("status").textContent = "cannot reach the host: " + err.message;
  }
  setTimeout(poll, POLL_MS);
}

poll();
