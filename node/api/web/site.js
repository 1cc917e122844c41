// The site card: every member's release, last check and bytes, from the
// site's gossip (/api/status "site"). Values go in through textContent only.
import { fmtBytes, fmtDate, fmtWhen, isSet } from "./format.js";
import { $, el, setText } from "./dom.js";

const FAILING = new Set(["failed", "rolled-back", "refused", "aborted", "skipped-bad"]);
const pct = (r) => (100 * (r || 0)).toFixed(1) + "%";

export function renderSite(v) {
  $("site-card").hidden = !v;
  if (!v) return;
  setText("site-name", v.site || "");
  setText("site-summary", v.summary || "");
  setText("site-saving", `WAN saving ${pct(v.saving_7d)} over 7 days (${fmtBytes(v.wan_7d)} WAN, ${fmtBytes(v.lan_7d)} LAN), ${pct(v.saving_28d)} over 28 days` +
    (v.reporter ? ` · reports to the fleet: ${v.reporter}` : ""));
  const rows = (v.nodes || []).map((n) => {
    const failing = FAILING.has(n.outcome) || n.state === "dead";
    return el("tr", { "data-member": n.name, class: failing ? "failing" : "" },
      el("td", { class: "strong" }, n.name),
      el("td", {}, n.state),
      el("td", {}, n.version || "–"),
      el("td", { title: fmtDate(n.last_check) }, isSet(n.last_check) ? fmtWhen(n.last_check) : "–"),
      el("td", {}, (n.outcome || "–") + (failing && n.message ? ": " + n.message : "")),
      el("td", { class: "num" }, n.failures || 0),
      el("td", { class: "num" }, fmtBytes(n.wan_7d)),
      el("td", { class: "num" }, fmtBytes(n.lan_7d)),
      el("td", { class: "num" }, fmtBytes(n.served_28d)));
  });
  $("site-nodes").tBodies[0].replaceChildren(...rows);
}
