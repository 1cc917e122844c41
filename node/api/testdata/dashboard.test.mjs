// Run by TestDashboardScripts (handler_test.go) with node --test, next to a
// copy of the embedded web/ folder: the dashboard's pure logic, as the
// browser runs it.
import { test } from "node:test";
import assert from "node:assert/strict";
import { fmtAgo, fmtBytes, fmtDate, fmtDuration, fmtTime, fmtWhen, isSet, peerCountText, triggerText } from "./web/format.js";
import { askCheck, finishedCheck, isFinal, outcomeNotice } from "./web/check.js";

const T = "2026-03-01T12:00:10.500Z"; // when the node took the request
const before = { checking: false, last_check: { outcome: "up-to-date", started: "2026-03-01T11:00:00Z", finished: "2026-03-01T11:00:01Z" } };
const checking = { checking: true, last_check: before.last_check };
const applied = { outcome: "applied", version: "1.2.0", sequence: 8, started: "2026-03-01T12:00:10.600Z", finished: "2026-03-01T12:00:12Z", message: "1.2.0 is now current" };
const done = { checking: false, last_check: applied };

// Each case feeds the statuses a page sees after "check now", in order, and
// names the index of the first one that must end the "checking" notice (-1: none).
const cases = [
  { name: "checking shows, then the result", answer: { outcome: "queued", started: T }, seen: [before, checking, checking, done], ends: 3 },
  { name: "a fast check never shows checking", answer: { outcome: "queued", started: T }, seen: [before, done], ends: 1 },
  { name: "queued, not started yet: checking=false alone is no end", answer: { outcome: "queued", started: T }, seen: [before, before], ends: -1 },
  { name: "the next scheduled check already runs", answer: { outcome: "queued", started: T }, seen: [{ checking: true, last_check: applied }], ends: 0 },
  {
    name: "a check running when asked answers it", answer: { outcome: "queued", started: T },
    seen: [checking, { checking: false, last_check: { ...applied, started: "2026-03-01T12:00:09Z" } }], ends: 1,
  },
  { name: "an answer without started: a new last_check", answer: { outcome: "queued" }, seen: [before, checking, done], ends: 2 },
  { name: "a node without last_check: checking comes and goes", answer: { outcome: "queued", started: T }, seen: [{ checking: false }, { checking: true }, { checking: false }], ends: 2 },
];

for (const c of cases) {
  test("finishedCheck: " + c.name, () => {
    const asked = askCheck(c.answer, before);
    let ended = -1;
    c.seen.forEach((st, i) => { if (ended < 0 && finishedCheck(asked, st)) ended = i; });
    assert.equal(ended, c.ends);
  });
}

test("finishedCheck returns the check's result", () => {
  assert.deepEqual(finishedCheck(askCheck({ outcome: "queued", started: T }, before), done), applied);
});

test("outcomeNotice says what the check did", () => {
  const want = [
    [{ outcome: "queued" }, "Checking the sources now…", false],
    [{ outcome: "up-to-date", version: "1.1.0", message: "running 1.1.0" }, "Up to date: running 1.1.0.", false],
    [applied, "1.2.0 is now current.", false],
    [{ outcome: "failed", message: "all sources failed: dial tcp: refused" }, "Check failed: all sources failed: dial tcp: refused", true],
    [{ outcome: "refused", version: "1.3.0", message: "manifest expired" }, "Refused 1.3.0: manifest expired", true],
    [{ outcome: "rolled-back", version: "1.3.0", message: "health check failed" }, "1.3.0 was rolled back: health check failed", true],
    [{}, "Check finished.", false],
  ];
  for (const [res, text, error] of want) assert.deepEqual(outcomeNotice(res), { text, error }, JSON.stringify(res));
});

test("isFinal tells an outcome from a queued request", () => {
  assert.equal(isFinal({ outcome: "queued", started: T }), false);
  assert.equal(isFinal(applied), true);
  assert.equal(isFinal({}), false);
});

test("peerCountText counts the other members beside this node", () => {
  const want = [
    [{ peers_alive: 2, peers_known: 2 }, "this node and 2 of 2 peers alive"],
    [{ peers_alive: 0, peers_known: 1 }, "this node and 0 of 1 peer alive"],
    [{}, "this node and 0 of 0 peers alive"],
    [{ peers_alive: 3, peers_known: 4, wan_fetches: 32 }, "this node and 3 of 4 peers alive · up to 32 WAN fetches at once"],
  ];
  for (const [node, text] of want) assert.equal(peerCountText(node), text, JSON.stringify(node));
});

test("triggerText names every trigger a check has", () => {
  for (const t of ["start", "schedule", "retry", "asked", "site"]) assert.notEqual(triggerText(t), "", t);
  assert.equal(triggerText("site"), "a site member had a newer release");
  assert.equal(triggerText(undefined), "");
  assert.equal(triggerText("from the future"), "");
});

test("format helpers", () => {
  assert.equal(fmtBytes(0), "0 B");
  assert.equal(fmtBytes(512), "512 B");
  assert.equal(fmtBytes(1536), "1.50 KiB");
  assert.equal(fmtBytes(5 << 20), "5.00 MiB");
  assert.equal(fmtBytes(300 * 1024 * 1024), "300.0 MiB");
  assert.equal(fmtDuration(42), "42s");
  assert.equal(fmtDuration(125), "2m 5s");
  assert.equal(fmtDuration(3725), "1h 2m");
  assert.equal(fmtDuration(90000), "1d 1h");
  assert.equal(isSet("0001-01-01T00:00:00Z"), false);
  assert.equal(isSet(""), false);
  assert.equal(isSet(T), true);
  assert.equal(fmtWhen("0001-01-01T00:00:00Z"), "–");
  assert.equal(fmtAgo(new Date(Date.now() - 3600e3).toISOString()), "1h 0m ago");
  assert.match(fmtWhen(new Date(Date.now() - 3600e3).toISOString()), /^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d \(1h 0m ago\)$/);
  assert.equal(fmtTime("0001-01-01T00:00:00Z"), "");
  // One format whatever the locale: the date, then the 24-hour clock.
  const local = new Date(2026, 2, 1, 9, 5, 7);
  assert.equal(fmtDate(local), "2026-03-01 09:05:07");
  assert.equal(fmtTime(local.getTime()), "09:05:07");
  assert.equal(fmtTime(new Date(2026, 2, 1, 21, 0, 0)), "21:00:00");
  assert.equal(fmtTime(Date.parse(T)), fmtTime(T), "a time as milliseconds or as text");
});
