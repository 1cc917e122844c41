// Formatting helpers shared by the node and seed dashboards (served as
// /static/format.js by both). Pure functions: no DOM, so tests import them.

// isSet tells a real time from Go's zero time.Time ("0001-01-01T00:00:00Z").
export function isSet(t) { return !!t && !String(t).startsWith("0001-"); }

export function fmtBytes(n) {
  if (!n) return "0 B";
  const u = ["B", "KiB", "MiB", "GiB", "TiB"];
  let i = 0;
  while (Math.abs(n) >= 1024 && i < u.length - 1) { n /= 1024; i++; }
  return (i === 0 ? n.toFixed(0) : n.toFixed(n < 10 ? 2 : 1)) + " " + u[i];
}

export function fmtCount(n) { return (n || 0).toLocaleString(); }

// fmtRate takes bytes a second and writes bits a second, as links are rated.
export function fmtRate(bytesPerSec) {
  const b = (bytesPerSec || 0) * 8;
  if (b >= 1e9) return +(b / 1e9).toFixed(2) + " Gbit/s";
  if (b >= 1e6) return +(b / 1e6).toFixed(1) + " Mbit/s";
  if (b >= 1e3) return +(b / 1e3).toFixed(1) + " kbit/s";
  return b + " bit/s";
}

// capsText says the rate caps in force, from /api/status's caps: "none" when
// no cap is set.
export function capsText(c) {
  if (!c || !(c.wan || c.site_wan || c.lan_upload)) return "none";
  const parts = [];
  if (c.wan) parts.push("WAN " + fmtRate(c.wan) + (c.update_now ? " (update now)" : ""));
  if (c.site_wan) parts.push("site WAN " + fmtRate(c.site_wan));
  if (c.lan_upload) parts.push("LAN upload " + fmtRate(c.lan_upload));
  const waited = (c.wan_throttled_seconds || 0) + (c.lan_throttled_seconds || 0);
  if (waited >= 1) parts.push("waited " + fmtDuration(waited));
  return parts.join(" · ");
}

// peerCountText heads the peers table. Its rows are this node and the other
// members it knows; peers_alive and peers_known count the others only.
export function peerCountText(n) {
  const known = n.peers_known || 0;
  return "this node and " + (n.peers_alive || 0) + " of " + known + (known === 1 ? " peer" : " peers") + " alive" +
    (n.wan_fetches ? " · up to " + n.wan_fetches + " WAN fetches at once" : "");
}

// triggerText says what made a check run, from its trigger.
export function triggerText(t) {
  return { start: "at start", schedule: "on schedule", retry: "retry after a failure", asked: "asked",
    site: "a site member had a newer release" }[t] || "";
}

// fmtDuration takes seconds.
export function fmtDuration(s) {
  s = Math.max(0, Math.round(s));
  const d = Math.floor(s / 86400), h = Math.floor(s % 86400 / 3600), m = Math.floor(s % 3600 / 60);
  if (d) return d + "d " + h + "h";
  if (h) return h + "h " + m + "m";
  if (m) return m + "m " + (s % 60) + "s";
  return s + "s";
}

// The dashboards write every time one way: the local date and 24-hour time,
// "2026-03-01 12:00:10", whatever the browser's locale; a time of day alone
// (a chart's axis) is the same clock, "12:00:10".
const pad = (n) => String(n).padStart(2, "0");

// fmtTime is the local time of day of t: an RFC 3339 string, a Date or milliseconds.
export function fmtTime(t) {
  if (t == null || (typeof t === "string" && !isSet(t))) return "";
  const d = new Date(t);
  return pad(d.getHours()) + ":" + pad(d.getMinutes()) + ":" + pad(d.getSeconds());
}

// fmtDate is the local date and time of t: "2026-03-01 12:00:10".
export function fmtDate(t) {
  if (t == null || (typeof t === "string" && !isSet(t))) return "–";
  const d = new Date(t);
  return d.getFullYear() + "-" + pad(d.getMonth() + 1) + "-" + pad(d.getDate()) + " " + fmtTime(d);
}

// fmtAgo says how far t is from now: "in 4m 2s", "3h 1m ago", "now".
export function fmtAgo(t) {
  if (!isSet(t)) return "";
  const d = (Date.parse(t) - Date.now()) / 1000;
  return Math.abs(d) < 5 ? "now" : d > 0 ? "in " + fmtDuration(d) : fmtDuration(-d) + " ago";
}

// fmtWhen is t as the dashboards show it: its date and time, then how far it
// is from now: "2026-03-01 12:00:10 (3m 2s ago)".
export function fmtWhen(t) {
  if (!isSet(t)) return "–";
  return fmtDate(t) + " (" + fmtAgo(t) + ")";
}
