// End-to-end check of a patchmesh node dashboard in headless Chromium.
//
//   node dashboard.mjs --url http://127.0.0.1:7780/ --screenshot out.png \
//        --peers 3 --want 2.0.0 [--timeout 120] [--wait-stdin]
//
// (or the environment: DASHBOARD_URL, SCREENSHOT, PEERS, WANT_VERSION,
// TIMEOUT_SECONDS, WAIT_STDIN=1, CHROMIUM=/usr/bin/chromium).
//
// It loads the dashboard, waits until the peers table shows at least --peers
// rows and a current release or a release in progress, clicks "Check for
// updates now" and waits until the current version is --want, printing one JSON
// line per thing it saw. With --wait-stdin it prints {"event":"ready"} before
// the click and waits for a line on stdin, so the caller can publish the new
// release first. It saves a screenshot (also on failure) and exits non-zero with
// a message on any failure, including a JavaScript error in the page.
import { chromium } from "playwright-core";
import { mkdtempSync, rmSync, mkdirSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, dirname } from "node:path";
import { createInterface } from "node:readline";

function options() {
  const o = {
    url: process.env.DASHBOARD_URL,
    screenshot: process.env.SCREENSHOT,
    peers: process.env.PEERS,
    want: process.env.WANT_VERSION,
    timeout: process.env.TIMEOUT_SECONDS || "120",
    waitStdin: process.env.WAIT_STDIN === "1",
    chromium: process.env.CHROMIUM || "/usr/bin/chromium",
  };
  const argv = process.argv.slice(2);
  const positional = [];
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const val = () => {
      if (i + 1 >= argv.length) fail(`${a} needs a value`);
      return argv[++i];
    };
    if (a === "--url") o.url = val();
    else if (a === "--screenshot") o.screenshot = val();
    else if (a === "--peers") o.peers = val();
    else if (a === "--want") o.want = val();
    else if (a === "--timeout") o.timeout = val();
    else if (a === "--chromium") o.chromium = val();
    else if (a === "--wait-stdin") o.waitStdin = true;
    else if (a.startsWith("--")) fail(`unknown flag ${a}`);
    else positional.push(a);
  }
  [o.url, o.screenshot, o.peers, o.want] = [o.url || positional[0], o.screenshot || positional[1], o.peers || positional[2], o.want || positional[3]];
  if (!o.url || !o.screenshot || !o.want) fail("usage: dashboard.mjs --url URL --screenshot PATH --want VERSION [--peers N] [--timeout S] [--wait-stdin]");
  o.peers = Number(o.peers || 0);
  o.timeoutMs = Number(o.timeout) * 1000;
  if (!Number.isFinite(o.peers) || !(o.timeoutMs > 0)) fail("--peers and --timeout must be numbers");
  return o;
}

function say(obj) {
  process.stdout.write(JSON.stringify(obj) + "\n");
}

function fail(msg) {
  process.stderr.write(`dashboard test: ${msg}\n`);
  process.exit(1);
}

// What the page shows, read from the DOM as a user would see it.
async function seen(page) {
  return page.evaluate(() => {
    const text = (sel) => (document.querySelector(sel)?.textContent || "").trim();
    const progress = document.querySelector("#progress");
    return {
      live: text("#live"),
      node: text("#node-name"),
      current: text("#current-version"),
      previous: text("#previous-version"),
      saving: text("#saving"),
      phase: progress?.dataset.phase || "",
      progress: text("#progress-pct"),
      checking: document.querySelector("#check-now")?.disabled || false,
      caps: text("#caps"),
      peerCount: text("#peer-count"),
      peers: [...document.querySelectorAll("#peers tbody tr")].map((tr) => ({
        name: tr.dataset.peer, state: tr.dataset.state, holding: tr.querySelector("[data-testid=peer-holding]")?.textContent.trim(),
      })),
      releases: [...document.querySelectorAll("#releases tbody tr")].map((tr) => `${tr.dataset.version}:${tr.dataset.state}`),
      notice: document.querySelector("#notice")?.hidden ? "" : text("#notice"),
      noticeError: document.querySelector("#notice")?.classList.contains("error") || false,
    };
  });
}

// labelProblems lists what the page draws without a label: a ring slice, chart
// area or bar part with no legend entry in its colour, an axis without values or
// a title, a table column without a header, a time in another format.
async function labelProblems(page) {
  return page.evaluate(() => {
    const problems = [];
    const css = (e, prop) => getComputedStyle(e)[prop];
    const visible = (e) => e && !e.closest("[hidden]") && e.getClientRects().length > 0;
    const legendFor = (legendSel, cls) => document.querySelector(`${legendSel} .swatch.${cls}`);
    // Each slice of the ring has one legend entry of its colour, and no entry names a slice not drawn.
    const arcs = [...document.querySelectorAll("#donut .arc")];
    for (const a of arcs) {
      const cls = ["lan", "wan"].find((c) => a.classList.contains(c));
      const sw = cls && legendFor("#donut-legend", cls);
      if (!sw) problems.push(`ring slice ${a.id} has no legend entry`);
      else if (css(sw, "backgroundColor") !== css(a, "stroke")) problems.push(`ring slice ${a.id} is ${css(a, "stroke")}, its legend swatch ${css(sw, "backgroundColor")}`);
      if (!sw?.parentElement.textContent.trim()) problems.push(`legend entry of ${a.id} has no text`);
    }
    const swatches = document.querySelectorAll("#donut-legend .swatch");
    if (swatches.length !== arcs.length) problems.push(`ring has ${arcs.length} slices, its legend ${swatches.length} entries`);
    // The history chart: both areas in the legend, axes with values and titles.
    for (const cls of ["area-wan", "area-lan"]) {
      const area = document.querySelector(`#history path.${cls}`);
      const sw = document.querySelector(`#history-legend [data-area=${cls}] .swatch`);
      if (!area) { problems.push(`history chart draws no ${cls}`); continue; }
      if (!sw) problems.push(`history chart's ${cls} has no legend entry`);
      else if (css(sw, "backgroundColor") !== css(area, "fill")) problems.push(`${cls} is ${css(area, "fill")}, its legend swatch ${css(sw, "backgroundColor")}`);
    }
    const text = (id) => (document.getElementById(id)?.textContent || "").trim();
    for (const id of ["history-ymax", "history-ymid", "history-ymin"]) {
      if (!/^[\d.]+ (B|KiB|MiB|GiB|TiB)$/.test(text(id))) problems.push(`y axis label #${id} is ${JSON.stringify(text(id))}, not bytes`);
    }
    for (const id of ["history-from", "history-mid", "history-to"]) {
      if (!/^\d\d:\d\d:\d\d$/.test(text(id))) problems.push(`x axis label #${id} is ${JSON.stringify(text(id))}, not a time`);
    }
    for (const sel of ["[data-testid=history-y-title]", "[data-testid=history-x-title]"]) {
      if (!visible(document.querySelector(sel)) || !document.querySelector(sel).textContent.trim()) problems.push(`history chart has no axis title ${sel}`);
    }
    // Each part of a release's bar has a legend entry of its colour.
    for (const part of document.querySelectorAll("#releases .split span")) {
      const sw = document.querySelector(`#split-legend [data-part=${part.className}] .swatch`);
      if (!visible(sw)) problems.push(`release bar part ${part.className} has no visible legend entry`);
      else if (css(sw, "backgroundColor") !== css(part, "backgroundColor")) problems.push(`release bar part ${part.className} has another colour than its legend`);
    }
    // Every column of a shown table has a header.
    for (const th of document.querySelectorAll("table:not([hidden]) thead th")) {
      if (!th.textContent.trim()) problems.push(`a column of #${th.closest("table").id} has no header`);
    }
    // Every time is written one way.
    const times = [...document.querySelectorAll("time")];
    if (!times.length) problems.push("no time shown");
    for (const t of times) {
      if (!/^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d \((now|in .+|.+ ago)\)$/.test(t.textContent)) problems.push(`time ${JSON.stringify(t.textContent)} is not "YYYY-MM-DD hh:mm:ss (…)"`);
    }
    return { problems, times: times.length, slices: arcs.length };
  });
}

async function main() {
  const o = options();
  const deadline = Date.now() + o.timeoutMs;
  const left = () => Math.max(1000, deadline - Date.now());
  const profile = mkdtempSync(join(tmpdir(), "patchmesh-chromium-"));
  // A fresh profile every run, so nothing from an earlier run leaks in.
  const browser = await chromium.launchPersistentContext(profile, {
    executablePath: o.chromium,
    headless: true,
    viewport: { width: 1280, height: 1400 },
    args: [
      "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--no-default-browser-check",
      "--disable-background-networking", "--disable-component-update", "--disable-sync",
      "--disable-domain-reliability", "--disable-client-side-phishing-detection", "--disable-default-apps",
      "--metrics-recording-only",
    ],
  }).catch((e) => fail(`launch ${o.chromium}: ${e.message}`));
  const pageErrors = [];
  let page;
  try {
    page = browser.pages()[0] || await browser.newPage();
    page.on("pageerror", (e) => pageErrors.push(e.message));
    page.on("console", (m) => { if (m.type() === "error") say({ event: "console", text: m.text() }); });
    page.on("dialog", (d) => d.accept());
    const checkErrors = () => { if (pageErrors.length) throw new Error(`JavaScript error in the page: ${pageErrors[0]}`); };

    const resp = await page.goto(o.url, { timeout: left() });
    if (!resp || !resp.ok()) throw new Error(`load ${o.url}: HTTP ${resp && resp.status()}`);

    await page.waitForFunction((n) => document.querySelectorAll("#peers tbody tr").length >= n, o.peers, { timeout: left(), polling: 200 })
      .catch(() => { throw new Error(`peers table never showed ${o.peers} peers`); });
    await page.waitForFunction(() => document.querySelector("#current-version")?.textContent.trim() ||
      document.querySelector("#progress")?.dataset.phase !== "idle", null, { timeout: left(), polling: 200 })
      .catch(() => { throw new Error("neither a current release nor a release in progress appeared"); });
    checkErrors();
    say({ event: "loaded", ...(await seen(page)) });

    if (o.waitStdin) {
      say({ event: "ready" });
      const rl = createInterface({ input: process.stdin });
      await new Promise((resolve) => { rl.once("line", resolve); rl.once("close", resolve); });
      rl.close();
    }

    await page.click("#check-now", { timeout: left() });
    say({ event: "clicked", target: "#check-now" });

    // Watch until the wanted version is current, reporting each change seen.
    let prev = "";
    for (;;) {
      checkErrors();
      const s = await seen(page);
      const key = JSON.stringify([s.current, s.phase, s.progress, s.peers.map((p) => p.holding), s.notice]);
      if (key !== prev) {
        prev = key;
        say({ event: "seen", ...s });
      }
      if (s.noticeError) throw new Error(`the dashboard reported an error: ${s.notice}`);
      if (s.current === o.want) break;
      if (Date.now() > deadline) throw new Error(`current version is ${JSON.stringify(s.current)}, never ${o.want}`);
      await page.waitForTimeout(200);
    }
    // The "checking" notice ends once the check is done (with its outcome, or
    // hidden). When it ends is asserted in node/api testdata/dashboard.test.mjs.
    await page.waitForFunction((want) => {
      const n = document.querySelector("#notice");
      return n && !n.textContent.includes("Checking the sources") && (n.hidden || n.textContent.includes(want));
    }, o.want, { timeout: Math.min(left(), 15000), polling: 200 })
      .catch(async () => { throw new Error(`the check notice still says ${JSON.stringify((await seen(page)).notice)} after ${o.want} became current`); });
    const ended = await seen(page);
    say({ event: "notice-ended", ...ended });
    // The heading counts the rows below it but this node's own.
    const others = ended.peers.filter((p) => p.name !== ended.node);
    const heading = `this node and ${others.filter((p) => p.state === "alive").length} of ${others.length} peer`;
    if (!ended.peerCount.startsWith(heading)) throw new Error(`the peers heading says ${JSON.stringify(ended.peerCount)} over ${ended.peers.length} rows, want it to start ${JSON.stringify(heading)}`);
    // Let the charts take the final state before the picture.
    await page.waitForTimeout(500);
    const labels = await labelProblems(page);
    say({ event: "labels", ...labels });
    if (labels.problems.length) throw new Error(`unlabelled: ${labels.problems.join("; ")}`);
    mkdirSync(dirname(o.screenshot), { recursive: true });
    await page.screenshot({ path: o.screenshot, fullPage: true });
    say({ event: "done", current: o.want, screenshot: o.screenshot });
  } catch (e) {
    if (page) {
      try {
        mkdirSync(dirname(o.screenshot), { recursive: true });
        await page.screenshot({ path: o.screenshot, fullPage: true });
        say({ event: "failed", screenshot: o.screenshot, ...(await seen(page)) });
      } catch { /* the page is gone: nothing to show */ }
    }
    await browser.close();
    rmSync(profile, { recursive: true, force: true });
    fail(e.message);
  }
  await browser.close();
  rmSync(profile, { recursive: true, force: true });
}

main().catch((e) => fail(e.stack || e.message));
