// patchmesh seed dashboard: renders /api/status, polled every 2 seconds. Every
// value goes in through textContent: no HTML from the seed is ever parsed.
import { fmtBytes, fmtCount, fmtDate, fmtDuration, fmtTime, fmtWhen, isSet } from "/static/format.js";
import { $, el, setText, svg } from "/static/dom.js";

const DAY = 86400;

function render(st) {
  setText("seed-url", st.url || "–");
  setText("seed-repo", st.repo || "–");
  setText("seed-uptime", fmtDuration(st.uptime_seconds || 0));
  setText("seed-started", fmtDate(st.started));
  const s = st.served || {};
  setText("served-bytes", fmtBytes(s.bytes));
  setText("served-chunk-bytes", fmtBytes(s.chunk_bytes));
  setText("served-chunks", fmtCount(s.chunks));
  setText("served-requests", fmtCount(s.requests));
  setText("served-notfound", fmtCount(s.not_found));
  renderChannels(st.channels || []);
  renderHistory(st.history || [], s);
  renderFleet(st.fleet);
}

const pct = (r) => (100 * (r || 0)).toFixed(1) + "%";

// renderFleet lists the sites the collector holds and their nodes; the card
// stays hidden on a seed that collects no reports.
function renderFleet(f) {
  $("fleet").hidden = !f;
  if (!f) return;
  const sites = f.sites || [];
  setText("fleet-count", sites.length || "");
  setText("fleet-totals", `${sites.length} site(s), ${f.nodes} node(s): ${f.on_latest} on their site's newest release, ${f.failing} failing, ${f.halted} halted`);
  const siteRows = sites.map((s) => {
    const v = s.view;
    return el("tr", { "data-site": v.site, class: s.stale ? "stale" : "" },
      el("td", { class: "strong" }, v.site),
      el("td", {}, v.summary + (s.stale ? " (stale)" : "")),
      el("td", { class: "num" }, v.members),
      el("td", { class: "num" }, (v.failing || []).length),
      el("td", {}, v.halted ? el("span", { class: "badge expired" }, "halted") : "no"),
      el("td", { class: "num" }, pct(v.saving_7d)),
      el("td", { class: "num" }, pct(v.saving_28d)),
      el("td", { title: fmtDate(s.received) }, fmtWhen(s.received)));
  });
  $("fleet-sites").tBodies[0].replaceChildren(...siteRows);
  const nodeRows = [];
  for (const s of sites) {
    for (const n of s.view.nodes || []) {
      nodeRows.push(el("tr", { "data-site": s.view.site, "data-node": n.name },
        el("td", {}, s.view.site),
        el("td", { class: "strong" }, n.name),
        el("td", {}, n.state),
        el("td", { class: "release" }, n.version || "–"),
        el("td", { title: fmtDate(n.last_check) }, isSet(n.last_check) ? fmtWhen(n.last_check) : "–"),
        el("td", {}, n.outcome ? n.outcome + (n.message && n.outcome !== "up-to-date" && n.outcome !== "applied" ? ": " + n.message : "") : "–"),
        el("td", { class: "num" }, n.failures || 0)));
    }
  }
  $("fleet-nodes").tBodies[0].replaceChildren(...nodeRows);
  $("fleet-empty").hidden = sites.length > 0;
}

const STATE_TEXT = { ok: "ok", expiring: "expires soon", expired: "expired", unreadable: "unreadable" };

function renderChannels(chans) {
  const rows = chans.map((c) => {
    const left = isSet(c.expires) ? (Date.parse(c.expires) - Date.now()) / 1000 : null;
    // The seed judged the state when it answered; the browser's clock refines
    // it between polls so a head that just expired does not look fine.
    let state = c.state;
    if (left !== null && state !== "unreadable") state = left <= 0 ? "expired" : left <= DAY ? "expiring" : "ok";
    const badge = el("span", { class: "badge " + state }, STATE_TEXT[state] || state);
    const why = c.error ? el("span", { class: "reason" }, c.error) : null;
    return el("tr", { class: state, "data-channel": c.name },
      el("td", { class: "strong" }, c.name),
      el("td", {}, c.version || "–"),
      el("td", { class: "num" }, c.sequence || "–"),
      el("td", { title: fmtDate(c.issued) }, fmtWhen(c.issued)),
      el("td", { class: "expires", title: fmtDate(c.expires) }, fmtWhen(c.expires)),
      el("td", {}, badge, why));
  });
  $("channels").tBodies[0].replaceChildren(...rows);
  $("channels-empty").hidden = rows.length > 0;
  setText("channel-count", chans.length || "");
}

// renderHistory draws bytes served per second between consecutive samples:
// all bytes light, chunk bytes dark in front.
function renderHistory(hist, now) {
  const W = 640, H = 170, pad = 4;
  const pts = hist.map((s) => ({ t: Date.parse(s.t), bytes: s.bytes, chunks: s.chunk_bytes }));
  // The newest point is now, so the chart never lags the totals above it.
  pts.push({ t: Date.now(), bytes: now.bytes || 0, chunks: now.chunk_bytes || 0 });
  const rates = [];
  for (let i = 1; i < pts.length; i++) {
    const dt = (pts[i].t - pts[i - 1].t) / 1000;
    if (dt <= 0) continue;
    rates.push({ t: pts[i].t, bytes: Math.max(0, pts[i].bytes - pts[i - 1].bytes) / dt, chunks: Math.max(0, pts[i].chunks - pts[i - 1].chunks) / dt });
  }
  const g = $("history");
  const kids = [];
  for (let i = 1; i < 4; i++) kids.push(svg("line", { class: "grid-line", x1: 0, x2: W, y1: H * i / 4, y2: H * i / 4 }));
  if (rates.length < 2) {
    const txt = svg("text", { class: "empty", x: W / 2, y: H / 2, "text-anchor": "middle" });
    txt.textContent = "collecting samples…";
    kids.push(txt);
    g.replaceChildren(...kids);
    setText("history-from", ""); setText("history-to", ""); setText("history-max", "");
    return;
  }
  const t0 = rates[0].t, t1 = rates[rates.length - 1].t;
  const max = Math.max(1, ...rates.map((r) => r.bytes));
  const x = (t) => (t1 > t0 ? (t - t0) / (t1 - t0) * W : 0).toFixed(1);
  const y = (v) => (H - pad - v / max * (H - 2 * pad)).toFixed(1);
  const area = (val) => {
    let d = "M" + x(t0) + "," + y(0);
    for (const r of rates) d += " L" + x(r.t) + "," + y(val(r));
    return d + " L" + x(t1) + "," + y(0) + " Z";
  };
  kids.push(svg("path", { class: "area-served", d: area((r) => r.bytes) }));
  kids.push(svg("path", { class: "area-chunks", d: area((r) => r.chunks) }));
  g.replaceChildren(...kids);
  setText("history-from", fmtTime(t0));
  setText("history-max", "top: " + fmtBytes(max) + "/s (chunk bytes dark)");
  setText("history-to", "now");
}

function setLive(state, text) {
  const l = $("live");
  l.className = "live " + state;
  l.textContent = text;
}

function notice(text) {
  const n = $("notice");
  n.hidden = !text;
  n.textContent = text || "";
}

async function poll() {
  try {
    const r = await fetch("/api/status", { credentials: "same-origin", cache: "no-store" });
    if (r.status === 401) {
      setLive("off", "token needed");
      notice("This dashboard needs the seed's API token: open /?token=YOUR_TOKEN once.");
      return;
    }
    if (!r.ok) throw new Error("HTTP " + r.status);
    render(await r.json());
    setLive("on", "live");
    notice("");
  } catch (e) {
    setLive("off", "seed unreachable");
  }
}

function init() {
  poll();
  setInterval(poll, 2000);
}

document.addEventListener("DOMContentLoaded", init);
