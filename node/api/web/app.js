// patchmesh dashboard: renders /api/status, live through /api/events with
// polling as the fallback. Every value goes in through textContent: no HTML
// from the node is ever parsed. An ES module: format.js and check.js are
// shared with tests, and format.js and dom.js with the seed dashboard.
import { capsText, fmtBytes, fmtDate, fmtDuration, fmtTime, fmtWhen, isSet, peerCountText, triggerText } from "./format.js";
import { $, el, setText, svg } from "./dom.js";
import { askCheck, finishedCheck, isFinal, outcomeNotice } from "./check.js";
import { renderSite } from "./site.js";

let last = null;

// timeEl shows t in the dashboards' one format, inside a <time> element.
function timeEl(t) {
  return isSet(t) ? el("time", { datetime: t, title: fmtDate(t) }, fmtWhen(t)) : "–";
}

// setTime puts text, then t as a <time>, then more text into the element id.
function setTime(id, before, t, after) {
  $(id).replaceChildren(...[before, timeEl(t), after].filter(Boolean));
}

function render(st) {
  last = st;
  const n = st.node || {};
  setText("node-title", n.name || "node");
  document.title = (n.name || "node") + " · patchmesh";
  setText("node-name", n.name || "–");
  setText("node-site", n.site || "no site");
  setText("node-role", n.role === "dp" ? "distribution point" : (n.role || "peer"));
  setText("node-channel", st.channel || "–");
  setText("node-uptime", fmtDuration(n.uptime_seconds || 0));
  setText("node-build", [n.version, n.os && n.os + "/" + n.arch].filter(Boolean).join(" · ") || "–");
  if (st.checking) setText("next-check", "checking now…");
  else setTime("next-check", "", st.next_check);
  renderRollout(st.rollout);
  renderWindow(st.window);
  setText("caps", capsText(st.caps));
  const lc = st.last_check;
  const why = lc && triggerText(lc.trigger);
  if (lc) setTime("last-check", lc.outcome + (lc.version ? " " + lc.version : "") + (lc.message ? " — " + lc.message : "") +
    (why ? " (" + why + ")" : "") + ", ", lc.finished || lc.started);
  else setText("last-check", "never");

  const src = $("sources");
  src.replaceChildren(...(st.sources || []).map((s) => el("li", { title: s.last_error || "" },
    el("span", { class: "dot " + (s.healthy ? "ok" : "bad") }),
    el("span", { class: "mono" }, s.url),
    el("span", { class: "muted small" }, s.healthy ? "— healthy" : s.last_error ? "— " + s.last_error : "— failing"))));
  if (!src.children.length) src.append(el("li", { class: "muted" }, "no sources configured"));

  renderCurrent(st);
  renderBytes(st.bytes || {});
  renderProgress(st.progress);
  renderHistory(st.bytes || {});
  renderPeers(st);
  renderSite(st.site);
  renderReleases(st.releases || []);
  renderErrors(st.errors || []);

  const ck = $("check-now");
  ck.disabled = !!st.checking || busy;
  ck.textContent = st.checking ? "Checking…" : "Check for updates now";
  $("rollback").disabled = !st.previous || busy;
  $("rollback").title = st.previous ? "go back to " + (st.previous.version || st.previous.name) : "no previous release";
  settleCheck(st);
}

// renderRollout shows the staged rollout of the head's release: this node's
// stage and bucket, why it waits, and the site's halt with the failing nodes.
function renderRollout(r) {
  $("rollout-card").hidden = !r;
  if (!r) return;
  setText("rollout-release", r.version + " · " + r.state + " · rollout " + r.sequence);
  const stage = r.stage >= 0 ? "stage " + r.stage + " of " + r.stages + " (" + r.stage_name + ")" : "in no stage";
  setText("rollout-stage", stage + " · bucket " + r.bucket.toFixed(2) + (r.canary ? " · site canary" : ""));
  setText("rollout-action", r.action + " — " + r.reason);
  setText("rollout-health", r.site_applied + " applied, " + r.site_failed + " failed" + (r.halted ? " — HALTED: " + r.halt_reason : ""));
  $("rollout-halted").hidden = !r.halted;
  $("rollout-failing").replaceChildren(...(r.failing || []).map((f) => el("li", { "data-failing": f.name },
    el("span", { class: "dot bad" }), el("span", { class: "strong" }, f.name), " ", el("span", { class: "muted small" }, f.reason || ""))));
}

// renderWindow shows the maintenance windows and, while the staged release
// waits for one, when it opens, with the button that overrides it.
function renderWindow(w) {
  $("apply-now").hidden = !(w && w.waiting);
  $("apply-now").disabled = busy;
  if (!w) { setText("window", "any time"); return; }
  const spans = (w.windows || []).join(", ") || "any time";
  const stage = (w.stage_windows || []).length ? "; rollout stage: " + w.stage_windows.join(", ") : "";
  const head = spans + stage + " (local time) · " + (w.open ? "open" : "closed");
  if (w.waiting) {
    const opens = isSet(w.opens_at) ? w.opens_at : "";
    setTime("window", head + " · " + (w.version || "release") + " staged, waiting for window" + (opens ? " (opens " : ""), opens, opens ? ")" : "");
  } else {
    setText("window", head);
  }
}

function renderCurrent(st) {
  const c = st.current;
  setText("current-version", c ? (c.version || c.name) : "");
  $("current-none").hidden = !!c;
  setText("current-seq", c ? c.sequence : "–");
  setTime("current-activated", "", c && c.activated);
  const peers = st.peers || [];
  // The nodes alive (this one and peers_alive others) that run it.
  const running = c ? peers.filter((p) => (p.self || p.state === "alive") && runs(p) === c.sequence).length : 0;
  setText("site-holding", c && peers.length ? running + " of " + (st.node.peers_alive + 1) + " nodes run it" : "–");
  setText("previous-version", st.previous ? (st.previous.version || st.previous.name) : "–");
  const s = st.store || {};
  setText("store", fmtBytes(s.bytes) + " in " + (s.chunks || 0) + " chunks" + (s.quota_bytes ? " (quota " + fmtBytes(s.quota_bytes) + ")" : ""));
}

function renderBytes(b) {
  const wan = b.wan || 0, lan = b.lan || 0, total = wan + lan;
  const circ = 2 * Math.PI * 48;
  const lanLen = total ? circ * lan / total : 0, wanLen = total ? circ * wan / total : 0;
  // LAN from 12 o'clock clockwise, WAN after it.
  $("donut-lan").setAttribute("stroke-dasharray", lanLen + " " + (circ - lanLen));
  $("donut-lan").setAttribute("stroke-dashoffset", "0");
  $("donut-wan").setAttribute("stroke-dasharray", wanLen + " " + (circ - wanLen));
  $("donut-wan").setAttribute("stroke-dashoffset", String(-lanLen));
  setText("saving", total ? Math.round(b.saving_percent != null ? b.saving_percent : 100 * lan / total) + "%" : "–");
  setText("bytes-lan", fmtBytes(lan));
  setText("bytes-wan", fmtBytes(wan));
  setText("bytes-served", fmtBytes(b.served || 0));
}

function renderProgress(p) {
  const box = $("progress");
  box.dataset.phase = p ? p.phase : "idle";
  $("progress-idle").hidden = !!p;
  $("progress-body").hidden = !p;
  if (!p) return;
  const bytesPct = p.bytes_total ? 100 * p.bytes_done / p.bytes_total : 0;
  const chunksPct = p.chunks_total ? 100 * p.chunks_done / p.chunks_total : 0;
  setText("progress-version", (p.version || "") + " (#" + p.sequence + ")");
  const ph = $("progress-phase");
  ph.className = "badge " + p.phase;
  setText("progress-phase", p.phase);
  setText("progress-pct", Math.floor(p.bytes_total ? bytesPct : chunksPct) + "%");
  $("progress-bytes-fill").style.width = bytesPct.toFixed(1) + "%";
  $("progress-chunks-fill").style.width = chunksPct.toFixed(1) + "%";
  setText("progress-bytes", fmtBytes(p.bytes_done) + " of " + fmtBytes(p.bytes_total));
  setText("progress-chunks", p.chunks_done + " of " + p.chunks_total);
}

function renderHistory(b) {
  const W = 640, H = 170, pad = 4;
  const pts = (b.history || []).map((s) => ({ t: Date.parse(s.t), wan: s.wan, lan: s.lan }));
  // The newest point is now, so the chart never lags the counters above it.
  pts.push({ t: Date.now(), wan: b.wan || 0, lan: b.lan || 0 });
  const g = $("history");
  const kids = [];
  for (let i = 1; i < 4; i++) kids.push(svg("line", { class: "grid-line", x1: 0, x2: W, y1: H * i / 4, y2: H * i / 4 }));
  const t0 = pts[0].t, t1 = pts[pts.length - 1].t;
  const axes = (ymax, ymid, from, mid, to) => {
    setText("history-ymax", ymax); setText("history-ymid", ymid); setText("history-ymin", "0 B");
    setText("history-from", from); setText("history-mid", mid); setText("history-to", to);
  };
  const max = Math.max(1, ...pts.map((p) => p.wan + p.lan));
  if (pts.length < 2 || t1 <= t0) {
    const txt = svg("text", { class: "empty", x: W / 2, y: H / 2, "text-anchor": "middle" });
    txt.textContent = "collecting samples…";
    kids.push(txt);
    g.replaceChildren(...kids);
    axes("", "", "", "", fmtTime(t1));
    return;
  }
  const x = (t) => ((t - t0) / (t1 - t0) * W).toFixed(1);
  const y = (v) => (H - pad - v / max * (H - 2 * pad)).toFixed(1);
  const area = (lo, hi) => {
    let d = "M" + x(pts[0].t) + "," + y(lo(pts[0]));
    for (const p of pts) d += " L" + x(p.t) + "," + y(hi(p));
    for (let i = pts.length - 1; i >= 0; i--) d += " L" + x(pts[i].t) + "," + y(lo(pts[i]));
    return d + " Z";
  };
  kids.push(svg("path", { class: "area-wan", d: area(() => 0, (p) => p.wan) }));
  kids.push(svg("path", { class: "area-lan", d: area((p) => p.wan, (p) => p.wan + p.lan) }));
  g.replaceChildren(...kids);
  axes(fmtBytes(max), fmtBytes(max / 2), fmtTime(t0), fmtTime((t0 + t1) / 2), fmtTime(t1));
}

function versionOf(seq, st) {
  if (!seq) return "";
  for (const r of st.releases || []) if (r.sequence === seq) return r.version || r.name;
  if (st.progress && st.progress.sequence === seq) return st.progress.version;
  return "#" + seq;
}

// runs is the release sequence a peer runs; members older than the
// "running" field report only what they hold.
function runs(p) { return p.running ?? p.holding; }

function renderPeers(st) {
  const peers = st.peers || [];
  const cur = st.current ? st.current.sequence : 0;
  const rows = peers.map((p) => {
    const held = versionOf(runs(p), st);
    let badge = null;
    if (runs(p) && cur && !p.self) {
      const [cls, txt] = runs(p) > cur ? ["has", "newer"] : runs(p) === cur ? ["has", "same as ours"] : ["behind", "behind"];
      badge = el("span", { class: "badge " + cls }, txt);
    }
    return el("tr", { class: p.self ? "self" : "", "data-peer": p.name, "data-state": p.state },
      el("td", {}, el("span", { class: "strong" }, p.name), p.self ? el("span", { class: "muted small" }, " (this node)") : null),
      el("td", {}, el("span", { class: "dot " + p.state, title: p.state }), " ", el("span", { class: "badge " + p.state }, p.state)),
      el("td", {}, p.role === "dp" ? "distribution point" : (p.role || "")),
      el("td", { "data-testid": "peer-holding" }, held || el("span", { class: "muted" }, "nothing yet"), " ", badge),
      el("td", { class: "num" }, p.self ? "" : fmtBytes(p.bytes_from)),
      el("td", { class: "num" }, p.self ? "" : fmtBytes(p.bytes_to)),
      el("td", { class: "mono muted" }, p.addr || ""));
  });
  $("peers").querySelector("tbody").replaceChildren(...rows);
  $("peers-empty").hidden = peers.length > 0;
  $("peers").hidden = peers.length === 0;
  setText("peer-count", peers.length ? peerCountText(st.node) : "");
}

function splitBar(r) {
  const wan = r.from_wan || 0, lan = r.from_lan || 0, local = r.from_local || 0, t = wan + lan + local;
  if (!t) return el("span", { class: "muted small" }, "–");
  const bar = el("div", { class: "split", title: "WAN " + fmtBytes(wan) + " · LAN " + fmtBytes(lan) + " · already held " + fmtBytes(local) });
  for (const [cls, v] of [["lan", lan], ["wan", wan], ["local", local]]) {
    if (!v) continue;
    const s = el("span", { class: cls });
    s.style.width = (100 * v / t).toFixed(1) + "%";
    bar.append(s);
  }
  const fetched = wan + lan;
  const label = el("div", { class: "split-label" }, fetched ? Math.round(100 * lan / fetched) + "% from LAN · WAN " + fmtBytes(wan) : "all bytes already held");
  return el("div", {}, bar, label);
}

function renderReleases(rels) {
  const rows = rels.map((r) => el("tr", { "data-state": r.state, "data-version": r.version || r.name },
    el("td", { class: "strong" }, r.version || r.name),
    el("td", {}, r.sequence || ""),
    el("td", {}, el("span", { class: "badge " + r.state }, r.state), r.reason ? el("span", { class: "reason" }, r.reason) : null),
    el("td", {}, splitBar(r)),
    el("td", { class: "num" }, r.bytes ? fmtBytes(r.bytes) : ""),
    el("td", { class: "muted" }, timeEl(isSet(r.activated) ? r.activated : r.installed))));
  $("releases").querySelector("tbody").replaceChildren(...rows);
  $("releases-empty").hidden = rels.length > 0;
  $("split-legend").hidden = rels.length === 0;
  $("releases").hidden = rels.length === 0;
}

function renderErrors(errs) {
  $("errors").replaceChildren(...errs.slice(0, 20).map((e) => el("li", {},
    el("span", { class: "muted small" }, timeEl(e.time)),
    el("span", {}, el("span", { class: "badge " + (e.kind === "refused" ? "refused" : "bad") }, e.kind)),
    el("span", {}, e.message))));
  $("errors-empty").hidden = errs.length > 0;
}

// --- live updates ---

let pollTimer = null;
let source = null;

function setLive(state, text) {
  const l = $("live");
  l.className = "live " + state;
  l.textContent = text;
}

async function poll() {
  try {
    const r = await fetch("/api/status", { credentials: "same-origin", cache: "no-store" });
    if (r.status === 401) { setLive("off", "token needed"); return; }
    if (!r.ok) throw new Error("HTTP " + r.status);
    render(await r.json());
    if (!source || source.readyState !== EventSource.OPEN) setLive("poll", "polling");
  } catch (e) {
    setLive("off", "node unreachable");
  }
}

function startPolling() {
  if (!pollTimer) pollTimer = setInterval(poll, 2000);
}

function stopPolling() {
  clearInterval(pollTimer);
  pollTimer = null;
}

function connect() {
  if (!window.EventSource) { startPolling(); return; }
  source = new EventSource("/api/events");
  source.addEventListener("status", (ev) => {
    stopPolling();
    setLive("on", "live");
    render(JSON.parse(ev.data));
  });
  source.onerror = () => {
    // The browser reconnects by itself (the server ends each stream after a
    // while); poll meanwhile, and start over if it gave up.
    startPolling();
    if (source.readyState === EventSource.CLOSED) setTimeout(connect, 5000);
  };
}

// --- actions ---

let busy = false;
let noticeTimer = null;
let asked = null; // the check this page asked for, until a status shows its result

// notice shows text for a while; a sticky one stays until the next notice.
function notice(text, isError, sticky) {
  const n = $("notice");
  n.textContent = text;
  n.className = "notice" + (isError ? " error" : "");
  n.hidden = false;
  clearTimeout(noticeTimer);
  if (!sticky) noticeTimer = setTimeout(() => { n.hidden = true; }, isError ? 15000 : 6000);
}

// settleCheck turns the "checking" notice into the check's outcome once st,
// from the event stream or a poll, shows the asked check finished.
function settleCheck(st) {
  const res = asked && finishedCheck(asked, st);
  if (!res) return;
  asked = null;
  const n = outcomeNotice(res);
  notice(n.text, n.error);
}

async function post(path, body) {
  const r = await fetch(path, {
    method: "POST", credentials: "same-origin", cache: "no-store",
    headers: { "Content-Type": "application/json", "X-Patchmesh": "1" },
    body: JSON.stringify(body || {}),
  });
  let data = {};
  try { data = await r.json(); } catch (e) { /* empty answer */ }
  if (!r.ok) throw new Error(data.error || "HTTP " + r.status);
  return data;
}

async function act(fn) {
  busy = true;
  $("check-now").disabled = true;
  $("rollback").disabled = true;
  $("apply-now").disabled = true;
  try { await fn(); } catch (e) { notice(e.message, true); }
  busy = false;
  poll();
}

function init() {
  $("check-now").addEventListener("click", () => act(async () => {
    const before = last;
    const res = await post("/api/update");
    const n = outcomeNotice(res);
    if (isFinal(res)) { notice(n.text, n.error); return; }
    asked = askCheck(res, before);
    notice(n.text, n.error, true);
    // A status that came while the request was out may already show the end.
    if (last) settleCheck(last);
  }));
  $("apply-now").addEventListener("click", () => act(async () => {
    const res = await post("/api/apply-now?wait=1");
    const n = outcomeNotice(res);
    notice(n.text, n.error);
  }));
  $("rollback").addEventListener("click", () => {
    const cur = last && last.current ? (last.current.version || last.current.name) : "the current release";
    const prev = last && last.previous ? (last.previous.version || last.previous.name) : "the previous release";
    if (!confirm("Roll back from " + cur + " to " + prev + "?\n\n" + cur + " will be marked bad and not installed again.")) return;
    act(async () => {
      const res = await post("/api/rollback", { reason: "rolled back from the dashboard" });
      notice("Rolled back from " + res.from + " to " + res.to + ".");
    });
  });
  poll();
  connect();
  // Relative times ("in 4m") age between events.
  setInterval(() => { if (last && (!source || source.readyState !== EventSource.OPEN)) render(last); }, 5000);
}

document.addEventListener("DOMContentLoaded", init);
