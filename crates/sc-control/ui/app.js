// The Spark Connect proxy's dashboard: reads the control plane's own JSON API and acts
// through it. No framework and no build step. Everything shown is built with textContent,
// never HTML from data. The token (with authentication on) lives in this tab's
// sessionStorage only and goes out as `Authorization: Bearer`, never in a URL or the page.
"use strict";

const TOKEN_KEY = "sc-proxy-token";
const REFRESH_MS = 2000;
const HISTORY = 90; // samples kept for the charts (3 minutes at 2 s)
const PALETTE = ["#2f6fde", "#1e8e4f", "#d97706", "#c53030", "#7c3aed", "#0891b2", "#db2777", "#65a30d"];
const STATES = ["starting", "idle", "busy", "closing", "closed", "error", "dead"];

const ui = {
  tab: "sessions",
  live: true,
  proxy: null,
  sessions: [],
  closed: [],
  backends: null,
  selected: null,
  log: null, // backend id whose log is open
  samples: [], // {t, calls: Map("method code" -> n), bytes: {to_backend, to_client}, rejected, limits}
  apiLoaded: false,
  timer: null,
  passAt: 0, // when this browser last took its Spark UI pass (ms)
};

// === small helpers ===

const $ = (id) => document.getElementById(id);

/** An element with attributes and children (strings become text nodes). */
function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key === "class") node.className = value;
    else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else node.setAttribute(key, value === true ? "" : value);
  }
  for (const child of children.flat()) {
    if (child === undefined || child === null) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

function badge(text) {
  return el("span", { class: "badge s-" + text }, text);
}

function ago(ms) {
  if (!ms) return "";
  const s = Math.max(0, Math.round((Date.now() - ms) / 1000));
  if (s < 60) return s + " s";
  if (s < 3600) return Math.floor(s / 60) + " min";
  if (s < 86400) return Math.floor(s / 3600) + " h " + Math.floor((s % 3600) / 60) + " min";
  return Math.floor(s / 86400) + " d " + Math.floor((s % 86400) / 3600) + " h";
}

function duration(seconds) {
  return seconds < 1 ? seconds * 1000 + " ms" : ago(Date.now() - seconds * 1000);
}

function bytes(n) {
  if (n === undefined || n === null) return "";
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) { n /= 1024; i++; }
  return (i === 0 ? n : n.toFixed(1)) + " " + units[i];
}

function rate(n) {
  if (n >= 100) return n.toFixed(0);
  if (n >= 10) return n.toFixed(1);
  return n.toFixed(2);
}

function time(ms) {
  return ms ? new Date(ms).toLocaleString() : "";
}

function short(id) {
  return id.length > 13 ? id.slice(0, 8) + "…" : id;
}

function banner(text, kind) {
  const b = $("banner");
  if (!text) { b.hidden = true; return; }
  b.textContent = text;
  b.className = "banner" + (kind ? " " + kind : "");
  b.hidden = false;
}

// === the API ===

class ApiError extends Error {
  constructor(status, body) {
    super((body && body.error) || "HTTP " + status);
    this.status = status;
    this.code = body && body.code;
  }
}

/** Calls the control plane; JSON answers are parsed, text ones returned as text. */
async function api(path, options) {
  const opts = Object.assign({ headers: {} }, options || {});
  const token = sessionStorage.getItem(TOKEN_KEY);
  if (token) opts.headers["Authorization"] = "Bearer " + token;
  opts.headers["Accept"] = opts.headers["Accept"] || "application/json";
  const response = await fetch(path, opts);
  const type = response.headers.get("content-type") || "";
  const body = type.includes("json") ? await response.json() : await response.text();
  if (!response.ok) throw new ApiError(response.status, typeof body === "object" ? body : { error: body });
  return body;
}

// === authentication ===

function showSignIn(message) {
  $("signin").hidden = false;
  for (const tab of document.querySelectorAll(".tab")) tab.hidden = true;
  $("signin-error").hidden = !message;
  $("signin-error").textContent = message || "";
  $("signout").hidden = true;
  $("who").textContent = "";
  $("token").focus();
}

async function signIn(event) {
  event.preventDefault();
  const input = $("token");
  const token = input.value.trim();
  input.value = "";
  if (!token) return;
  sessionStorage.setItem(TOKEN_KEY, token);
  try {
    await api("/control/proxy");
  } catch (e) {
    sessionStorage.removeItem(TOKEN_KEY);
    showSignIn(e.status === 401 ? "That token was not accepted: " + e.message : e.message);
    return;
  }
  $("signin").hidden = true;
  refresh();
}

// A tab opened on a Spark UI page cannot send the token: the control plane gives this browser a
// pass for those pages instead (an HttpOnly, SameSite=Strict cookie; POST /control/ui-pass),
// taken after signing in and renewed well before its hour is up.
const PASS_RENEW_MS = 30 * 60 * 1000;

function ensurePass() {
  if (ui.passAt && Date.now() - ui.passAt < PASS_RENEW_MS) return;
  ui.passAt = Date.now();
  api("/control/ui-pass", { method: "POST" }).catch(() => { ui.passAt = 0; });
}

async function signOut() {
  ui.passAt = 0;
  try { await api("/control/ui-pass", { method: "DELETE" }); } catch (e) { /* signed out anyway */ }
  sessionStorage.removeItem(TOKEN_KEY);
  ui.proxy = null;
  ui.sessions = [];
  ui.backends = null;
  showSignIn();
}

// === refreshing ===

async function refresh() {
  clearTimeout(ui.timer);
  try {
    const [proxy, sessions, backends, metrics] = await Promise.all([
      api("/control/proxy"),
      api("/control/sessions"),
      api("/control/backends"),
      api("/control/metrics", { headers: { Accept: "application/openmetrics-text, text/plain" } }),
    ]);
    ui.proxy = proxy;
    ui.sessions = sessions.sessions;
    ui.closed = sessions.recently_closed || [];
    ui.backends = backends;
    sample(metrics);
    ensurePass();
    $("signin").hidden = true;
    banner(null);
    render();
    $("updated").textContent = "updated " + new Date().toLocaleTimeString();
  } catch (e) {
    if (e.status === 401) {
      sessionStorage.removeItem(TOKEN_KEY);
      showSignIn(ui.proxy ? "Signed out: " + e.message : null);
      return;
    }
    banner("Cannot reach the control plane: " + e.message);
  }
  if (ui.live) ui.timer = setTimeout(refresh, REFRESH_MS);
}

function render() {
  const p = ui.proxy;
  $("version").textContent = "v" + p.version;
  $("who").textContent = p.authentication
    ? "signed in as " + (p.caller.user || "?") + (p.caller.admin ? " (admin)" : "")
    : p.caller.admin ? "operator (no authentication)" : "user " + p.caller.user;
  $("signout").hidden = !p.authentication;
  $("count-sessions").textContent = ui.sessions.length;
  $("count-backends").textContent = ui.backends.backends.length;
  showTab();
  renderSessions();
  renderBackends();
  renderProxy();
}

function showTab() {
  const want = (location.hash || "#sessions").slice(1);
  ui.tab = ["sessions", "backends", "proxy", "api"].includes(want) ? want : "sessions";
  for (const link of document.querySelectorAll("#tabs a")) {
    link.classList.toggle("active", link.dataset.tab === ui.tab);
  }
  if (!$("signin").hidden) return;
  for (const name of ["sessions", "backends", "proxy", "api"]) {
    $("tab-" + name).hidden = name !== ui.tab;
  }
  if (ui.tab === "api" && !ui.apiLoaded) loadApi();
  if (ui.tab === "proxy") drawCharts();
}

// === sessions ===

function fillSelect(select, values) {
  const current = select.value;
  const first = select.options[0];
  select.replaceChildren(first, ...values.map((v) => el("option", { value: v }, v)));
  select.value = values.includes(current) ? current : "";
}

function renderSessions() {
  const users = [...new Set(ui.sessions.map((s) => s.user_id).filter(Boolean))].sort();
  const backends = ui.backends.backends.map((b) => b.id);
  fillSelect($("f-state"), STATES);
  fillSelect($("f-user"), users);
  fillSelect($("f-backend"), backends);
  const text = $("f-text").value.trim().toLowerCase();
  const state = $("f-state").value;
  const user = $("f-user").value;
  const backend = $("f-backend").value;
  const shown = ui.sessions.filter((s) =>
    (!state || s.state === state) &&
    (!user || s.user_id === user) &&
    (!backend || s.backend === backend) &&
    (!text || [s.id, s.user_id, s.app_name, s.backend].some((v) => v && v.toLowerCase().includes(text))));
  const rows = shown.map((s) => {
    const m = s.metrics;
    return el("tr", {
      class: "clickable" + (ui.selected === s.id ? " selected" : ""),
      "data-id": s.id,
      onclick: () => { ui.selected = ui.selected === s.id ? null : s.id; renderSessions(); },
    },
    el("td", { class: "mono", title: s.id }, short(s.id)),
    el("td", {}, s.user_id || ""),
    el("td", { class: "opt" }, s.app_name || ""),
    el("td", { class: "state" }, badge(s.state)),
    el("td", { class: "backend" }, s.backend),
    el("td", { class: "opt" }, ago(s.created_at_ms)),
    el("td", { class: "opt" }, ago(s.last_active_ms) + " ago"),
    el("td", { class: "num" }, m.queries_executed),
    el("td", { class: "num opt" }, m.active_operations),
    el("td", { class: "num opt" }, m.errors),
    el("td", { class: "num opt" }, bytes(m.bytes_in)),
    el("td", { class: "num opt" }, bytes(m.bytes_out)));
  });
  $("sessions-table").tBodies[0].replaceChildren(...rows);
  $("sessions-empty").hidden = shown.length > 0;
  renderDetail();
  const closed = ui.closed.map((c) => el("tr", {},
    el("td", { class: "mono", title: c.id }, short(c.id)),
    el("td", {}, c.user_id || ""),
    el("td", {}, c.backend),
    el("td", {}, c.close_reason),
    el("td", { class: "opt" }, ago(c.closed_at_ms) + " ago"),
    el("td", { class: "opt num" }, c.metrics.queries_executed),
    el("td", { class: "opt wrap" }, c.error || "")));
  $("closed-table").tBodies[0].replaceChildren(...closed);
  $("closed-table").hidden = closed.length === 0;
  $("closed-empty").hidden = closed.length > 0;
}

function renderDetail() {
  const panel = $("session-detail");
  const s = ui.sessions.find((x) => x.id === ui.selected);
  if (!s) { panel.hidden = true; return; }
  const m = s.metrics;
  const facts = [
    ["Id", el("span", { class: "mono" }, s.id)],
    ["Kind", s.kind === "control" ? "created through the control plane" : "bound from the client's session id"],
    ["User", s.user_id || "(none)"],
    ["Application", s.app_name || ""],
    ["State", badge(s.state)],
    ["Backend", s.backend + (s.endpoint ? " (" + s.endpoint + ")" : "")],
    ["Created", time(s.created_at_ms) + " (" + ago(s.created_at_ms) + " ago)"],
    ["Last activity", time(s.last_active_ms) + " (" + ago(s.last_active_ms) + " ago)"],
    ["Calls in flight", s.active_calls],
    ["Operations in flight", m.active_operations],
    ["Calls", s.calls],
    ["Queries", m.queries_executed],
    ["Execution time", (m.execution_time_ms / 1000).toFixed(1) + " s"],
    ["Artifacts uploaded", m.artifacts_uploaded],
    ["Bytes in / out", bytes(m.bytes_in) + " / " + bytes(m.bytes_out)],
    ["Errors", m.errors],
    ["Why in error", s.error || ""],
    ["Connection string", s.connection_string ? el("code", {}, s.connection_string) : ""],
  ];
  panel.replaceChildren(
    el("h2", {}, "Session " + short(s.id),
      el("span", { class: "actions" },
        el("button", { type: "button", class: "danger", onclick: () => closeSession(s.id) }, "Close session"),
        el("button", { type: "button", onclick: () => { ui.selected = null; renderSessions(); } }, "Hide"))),
    el("dl", { class: "facts" }, facts.filter(([, v]) => v !== "").flatMap(([k, v]) => [el("dt", {}, k), el("dd", {}, v)])));
  panel.hidden = false;
}

async function closeSession(id) {
  if (!confirm("Close session " + id + "? Its backend releases it; its client gets an error on its next call.")) return;
  try {
    await api("/control/sessions/" + encodeURIComponent(id), { method: "DELETE" });
    ui.selected = null;
    refresh();
  } catch (e) {
    banner("Cannot close the session: " + e.message);
  }
}

// === backends ===

function renderBackends() {
  const admin = ui.proxy.caller.admin;
  // An engine's log is for admins and, where the API allows it, for users with a session on it.
  const mine = new Set(ui.sessions.map((s) => s.backend));
  $("policy").textContent = ui.backends.policy;
  const rows = ui.backends.backends.map((b) => {
    const actions = [];
    if (admin) {
      const draining = b.state === "draining";
      actions.push(el("button", {
        type: "button", class: draining ? "" : "danger", "data-action": draining ? "undrain" : "drain",
        disabled: b.state === "removed",
        onclick: () => drain(b.id, !draining),
      }, draining ? "Undrain" : "Drain"));
    }
    if (admin || mine.has(b.id)) {
      actions.push(el("button", { type: "button", "data-action": "logs", onclick: () => openLog(b.id) }, "Logs"));
    }
    // A backend that has a Spark UI says so (`ui_url`, or `ui`); it is reached through the proxy.
    if (b.ui_url || b.ui) {
      actions.push(el("a", { href: "/control/backends/" + encodeURIComponent(b.id) + "/ui/", target: "_blank", rel: "noopener" }, "Spark UI"));
    }
    return el("tr", { "data-id": b.id },
      el("td", { class: "mono" }, b.id),
      el("td", { class: "opt mono" }, b.endpoint),
      el("td", { class: "opt" }, b.provider),
      el("td", { class: "state" }, badge(b.state)),
      el("td", {}, badge(b.health)),
      el("td", { class: "num" }, b.sessions),
      el("td", { class: "num" }, b.active_streams),
      el("td", {}, el("span", { class: "actions" }, actions)));
  });
  $("backends-table").tBodies[0].replaceChildren(...rows);
  const providers = ui.backends.providers.map((p) => el("tr", {},
    el("td", {}, p.name), el("td", { class: "num" }, p.refresh_failures), el("td", { class: "wrap" }, p.last_error || "")));
  $("providers-table").tBodies[0].replaceChildren(...providers);
}

async function drain(id, draining) {
  try {
    await api("/control/backends/" + encodeURIComponent(id) + (draining ? "/drain" : "/undrain"), { method: "POST" });
    refresh();
  } catch (e) {
    banner("Cannot " + (draining ? "drain" : "undrain") + " " + id + ": " + e.message);
  }
}

async function openLog(id) {
  ui.log = id;
  $("log-panel").hidden = false;
  $("log-title").textContent = "Log of " + id;
  $("log-text").textContent = "loading…";
  try {
    const text = await api("/control/backends/" + encodeURIComponent(id) + "/logs?lines=" + $("log-lines").value, { headers: { Accept: "text/plain" } });
    $("log-text").textContent = text || "(empty)";
    $("log-text").scrollTop = $("log-text").scrollHeight;
  } catch (e) {
    $("log-text").textContent = e.message;
  }
}

// === the proxy and its metrics ===

/** The samples of an OpenMetrics text: [{name, labels, value}]. */
function parseMetrics(text) {
  const out = [];
  const line = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)/;
  const label = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g;
  for (const raw of text.split("\n")) {
    if (!raw || raw.startsWith("#")) continue;
    const m = line.exec(raw);
    if (!m) continue;
    const labels = {};
    for (const l of (m[2] || "").matchAll(label)) labels[l[1]] = l[2].replace(/\\(.)/g, (_, c) => (c === "n" ? "\n" : c));
    out.push({ name: m[1], labels, value: Number(m[3]) });
  }
  return out;
}

function sample(text) {
  const s = { t: Date.now(), calls: new Map(), bytes: { to_backend: 0, to_client: 0 }, rejected: new Map() };
  for (const m of parseMetrics(text)) {
    if (m.name === "sc_proxy_calls_total" || m.name === "sc_proxy_rejected_calls_total") {
      const key = m.labels.method + " " + m.labels.code;
      s.calls.set(key, (s.calls.get(key) || 0) + m.value);
      if (m.name === "sc_proxy_rejected_calls_total") s.rejected.set("proxy: " + m.labels.code, (s.rejected.get("proxy: " + m.labels.code) || 0) + m.value);
    } else if (m.name === "sc_proxy_bytes_total") {
      s.bytes[m.labels.direction] = (s.bytes[m.labels.direction] || 0) + m.value;
    } else if (m.name === "sc_proxy_limit_rejections_total") {
      s.rejected.set("limit: " + m.labels.limit, m.value);
    }
  }
  ui.samples.push(s);
  if (ui.samples.length > HISTORY) ui.samples.shift();
}

/** Per-second rates between consecutive samples: [{t, values: Map(series -> rate)}]. */
function rates(pick) {
  const out = [];
  for (let i = 1; i < ui.samples.length; i++) {
    const a = ui.samples[i - 1], b = ui.samples[i];
    const dt = (b.t - a.t) / 1000;
    if (dt <= 0) continue;
    const values = new Map();
    const before = pick(a), after = pick(b);
    for (const [key, value] of after) values.set(key, Math.max(0, (value - (before.get(key) || 0)) / dt));
    out.push({ t: b.t, values });
  }
  return out;
}

function grouped(s, by) {
  const m = new Map();
  for (const [key, value] of s.calls) {
    const [method, code] = key.split(" ");
    const k = by === "method" ? method : code;
    m.set(k, (m.get(k) || 0) + value);
  }
  return m;
}

function drawCharts() {
  if (ui.tab !== "proxy" || ui.samples.length < 2) return;
  chart("methods", rates((s) => grouped(s, "method")), 6);
  chart("codes", rates((s) => grouped(s, "code")), 6);
  chart("bytes", rates((s) => new Map([["to backend", s.bytes.to_backend], ["to client", s.bytes.to_client]])), 2, bytes);
  chart("rejections", rates((s) => s.rejected), 6);
}

/** Draws the busiest `max` series of `points` on canvas `chart-<name>`, with a legend. */
function chart(name, points, max, format) {
  const canvas = $("chart-" + name);
  const ratio = window.devicePixelRatio || 1;
  const width = canvas.clientWidth || 400, height = canvas.clientHeight || 160;
  canvas.width = width * ratio;
  canvas.height = height * ratio;
  const g = canvas.getContext("2d");
  g.scale(ratio, ratio);
  g.clearRect(0, 0, width, height);
  const totals = new Map();
  for (const p of points) for (const [k, v] of p.values) totals.set(k, (totals.get(k) || 0) + v);
  const series = [...totals.entries()].filter(([, v]) => v > 0).sort((a, b) => b[1] - a[1]).slice(0, max).map(([k]) => k);
  let top = 0;
  for (const p of points) for (const k of series) top = Math.max(top, p.values.get(k) || 0);
  top = top > 0 ? top * 1.1 : 1;
  const style = getComputedStyle(document.documentElement);
  g.strokeStyle = style.getPropertyValue("--line");
  g.fillStyle = style.getPropertyValue("--muted");
  g.font = "11px system-ui, sans-serif";
  g.lineWidth = 1;
  for (const f of [0, 0.5, 1]) {
    const y = 4 + (height - 20) * (1 - f);
    g.beginPath(); g.moveTo(0, y); g.lineTo(width, y); g.stroke();
    g.fillText(format ? format(top * f) + "/s" : rate(top * f), 2, y - 2 + (f === 1 ? 12 : 0));
  }
  const t0 = points.length ? points[0].t : 0, t1 = points.length ? points[points.length - 1].t : 1;
  const x = (t) => (t1 === t0 ? width : ((t - t0) / (t1 - t0)) * (width - 4) + 2);
  series.forEach((k, i) => {
    g.strokeStyle = PALETTE[i % PALETTE.length];
    g.lineWidth = 2;
    g.beginPath();
    points.forEach((p, j) => {
      const y = 4 + (height - 20) * (1 - (p.values.get(k) || 0) / top);
      if (j === 0) g.moveTo(x(p.t), y); else g.lineTo(x(p.t), y);
    });
    g.stroke();
  });
  const last = points.length ? points[points.length - 1].values : new Map();
  const legend = series.map((k, i) => {
    const span = el("span", {}, k + " " + (format ? format(last.get(k) || 0) + "/s" : rate(last.get(k) || 0)));
    span.style.setProperty("--swatch", PALETTE[i % PALETTE.length]);
    return span;
  });
  $("legend-" + name).replaceChildren(...(legend.length ? legend : [el("em", { class: "muted" }, "nothing lately")]));
}

function facts(list, pairs) {
  list.replaceChildren(...pairs.flatMap(([k, v]) => [el("dt", {}, k), el("dd", {}, v)]));
}

function renderProxy() {
  const p = ui.proxy;
  facts($("proxy-info"), [
    ["Version", p.version],
    ["Up since", new Date(p.started_at).toLocaleString() + " (" + duration(p.uptime_seconds) + ")"],
    ["Load policy", p.policy],
    ["Session store", p.store],
    ["Authentication", p.authentication ? "on" : "off (loopback only)"],
    ["gRPC port", p.grpc_port + (p.grpc_tls ? " (TLS)" : "")],
    ["Traces", p.otlp_endpoint ? "OTLP/gRPC to " + p.otlp_endpoint : "off"],
    ["Backends", p.backends],
    ["Sessions", p.sessions],
    ["You", (p.caller.user || "operator") + (p.caller.admin ? " (admin)" : "")],
  ]);
  const l = p.limits, lim = l.limits || {};
  const off = (v, unit) => (v === null || v === undefined ? "no limit" : v + (unit || ""));
  const ms = (v) => (v ? duration(v / 1000) : "never");
  facts($("proxy-limits"), [
    ["Sessions per user", off(lim.max_sessions_per_user)],
    ["Calls in flight per user", off(lim.max_streams_per_user)],
    ["Calls in flight in all", off(lim.max_streams_total)],
    ["Calls per second per user", off(lim.requests_per_second)],
    ["Burst", off(lim.burst)],
    ["Largest message", bytes(l.max_message_size)],
    ["First message within", ms(l.first_message_timeout_ms)],
    ["Idle sessions close after", ms(l.session_idle_timeout_ms)],
    ["Sessions live at most", ms(l.session_max_lifetime_ms)],
  ]);
  const last = ui.samples[ui.samples.length - 1];
  const r = rates((s) => s.calls);
  const now = r.length ? r[r.length - 1].values : new Map();
  const rows = last ? [...last.calls.entries()].sort((a, b) => b[1] - a[1]).map(([key, n]) => {
    const [method, code] = key.split(" ");
    return el("tr", {}, el("td", {}, method), el("td", {}, el("span", { class: "badge " + (code === "OK" ? "s-healthy" : "s-error") }, code)),
      el("td", { class: "num" }, n), el("td", { class: "num" }, rate(now.get(key) || 0)));
  }) : [];
  $("calls-table").tBodies[0].replaceChildren(...rows);
  drawCharts();
}

// === the OpenAPI document ===

async function loadApi() {
  ui.apiLoaded = true;
  try {
    renderApi(await api("/control/openapi.json"));
  } catch (e) {
    ui.apiLoaded = false;
    $("api-doc").textContent = "Cannot load the document: " + e.message;
  }
}

function resolve(doc, node) {
  let n = node;
  for (let i = 0; n && n.$ref && i < 10; i++) {
    n = n.$ref.replace(/^#\//, "").split("/").reduce((o, k) => (o ? o[k] : undefined), doc);
  }
  return n || {};
}

function typeOf(doc, schema) {
  const s = resolve(doc, schema);
  const name = schema && schema.$ref ? schema.$ref.split("/").pop() : null;
  if (s.enum) return "one of " + s.enum.join(", ");
  if (s.oneOf) return s.oneOf.map((x) => typeOf(doc, x)).join(" or ");
  let t = Array.isArray(s.type) ? s.type.join(" or ") : s.type || (s.allOf || s.properties ? "object" : "any");
  if (t === "array" && s.items) t = "array of " + typeOf(doc, s.items);
  return name ? name + " (" + t + ")" : t;
}

/** A schema as a nested list of its properties. */
function schemaTree(doc, schema, depth) {
  const s = resolve(doc, schema);
  if (depth > 4) return null;
  let props = {}, required = [];
  for (const part of [s, ...(s.allOf || []).map((x) => resolve(doc, x))]) {
    Object.assign(props, part.properties || {});
    required = required.concat(part.required || []);
  }
  if (s.type === "array" && s.items) return schemaTree(doc, s.items, depth);
  const names = Object.keys(props);
  if (!names.length) return null;
  return el("ul", { class: "schema" }, names.map((name) => {
    const p = props[name];
    const inner = resolve(doc, p);
    const child = (inner.properties || inner.allOf || (inner.type === "array" && inner.items)) ? schemaTree(doc, p, depth + 1) : null;
    return el("li", {}, el("code", {}, name), " ", el("span", { class: "muted" }, typeOf(doc, p)),
      required.includes(name) ? el("span", { class: "req" }, " required") : null,
      (p.description || inner.description) ? " — " + (p.description || inner.description).split("\n").join(" ") : "",
      child);
  }));
}

function renderApi(doc) {
  const byTag = new Map();
  for (const [path, item] of Object.entries(doc.paths)) {
    for (const [method, op] of Object.entries(item)) {
      const tag = (op.tags && op.tags[0]) || "other";
      if (!byTag.has(tag)) byTag.set(tag, []);
      byTag.get(tag).push({ path, method, op });
    }
  }
  const out = [el("p", {}, doc.info.title + " " + doc.info.version + " (OpenAPI " + doc.openapi + "). " + (doc.info.description || ""))];
  for (const tag of doc.tags || []) {
    const ops = byTag.get(tag.name) || [];
    out.push(el("h2", {}, tag.name), el("p", { class: "muted" }, tag.description || ""));
    for (const { path, method, op } of ops) {
      const params = (op.parameters || []).map((p) => el("li", {}, el("code", {}, p.name), " (" + p.in + ", " + typeOf(doc, p.schema) + (p.required ? ", required" : "") + ") " + (p.description || "")));
      const body = op.requestBody ? Object.entries(op.requestBody.content || {}).map(([type, c]) =>
        el("div", {}, el("strong", {}, "Request body"), " ", el("code", {}, type), " " + (op.requestBody.description || ""), schemaTree(doc, c.schema, 0))) : [];
      const responses = Object.entries(op.responses || {}).map(([status, r]) => {
        const resp = resolve(doc, r);
        const contents = Object.entries(resp.content || {}).map(([type, c]) =>
          el("div", {}, el("code", {}, type), " ", el("span", { class: "muted" }, typeOf(doc, c.schema)), schemaTree(doc, c.schema, 0)));
        return el("li", {}, el("strong", {}, status), " " + (resp.description || ""), contents);
      });
      out.push(el("details", { class: "op" },
        el("summary", {}, el("span", { class: "method m-" + method }, method.toUpperCase()), el("code", {}, path), " ", op.summary || "",
          op.security ? el("span", { class: "muted" }, " 🔒") : null),
        el("div", {},
          op.description ? el("p", {}, op.description.split("\n").join(" ")) : null,
          params.length ? [el("strong", {}, "Parameters"), el("ul", {}, params)] : null,
          body,
          el("strong", {}, "Responses"), el("ul", {}, responses))));
    }
  }
  $("api-doc").replaceChildren(...out);
}

// === start ===

document.addEventListener("DOMContentLoaded", () => {
  $("signin-form").addEventListener("submit", signIn);
  $("signout").addEventListener("click", signOut);
  $("live").addEventListener("click", () => {
    ui.live = !ui.live;
    $("live").textContent = ui.live ? "Pause" : "Resume";
    if (ui.live) refresh(); else clearTimeout(ui.timer);
  });
  for (const id of ["f-text", "f-state", "f-user", "f-backend"]) $(id).addEventListener("input", () => ui.proxy && renderSessions());
  $("log-refresh").addEventListener("click", () => ui.log && openLog(ui.log));
  $("log-lines").addEventListener("change", () => ui.log && openLog(ui.log));
  $("log-close").addEventListener("click", () => { ui.log = null; $("log-panel").hidden = true; });
  window.addEventListener("hashchange", () => ui.proxy && showTab());
  window.addEventListener("resize", drawCharts);
  refresh();
});
