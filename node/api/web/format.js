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

// fmtDuration takes seconds.
export function fmtDuration(s) {
  s = Math.max(0, Math.round(s));
  const d = Math.floor(s / 86400), h = Math.floor(s % 86400 / 3600), m = Math.floor(s % 3600 / 60);
  if (d) return d + "d " + h + "h";
  if (h) return h + "h " + m + "m";
  if (m) return m + "m " + (s % 60) + "s";
  return s + "s";
}

// fmtWhen says how far t (an RFC 3339 string) is from now: "in 4m 2s", "3h 1m ago".
export function fmtWhen(t) {
  if (!isSet(t)) return "–";
  const d = (Date.parse(t) - Date.now()) / 1000;
  return Math.abs(d) < 5 ? "now" : d > 0 ? "in " + fmtDuration(d) : fmtDuration(-d) + " ago";
}

// fmtTime is the local time of day of t: an RFC 3339 string, a Date or milliseconds.
export function fmtTime(t) {
  if (t == null || (typeof t === "string" && !isSet(t))) return "";
  return new Date(t).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit", second: "2-digit" });
}

// fmtDate is the local date and time of t (an RFC 3339 string).
export function fmtDate(t) { return isSet(t) ? new Date(t).toLocaleString() : "–"; }
