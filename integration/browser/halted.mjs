// Check that a node's dashboard in headless Chromium shows its site's halt of
// a staged rollout: the rollout card, the "site halted" badge, HALTED with the
// reason, and the failing node.
//
//   node halted.mjs --url http://127.0.0.1:7780/ --screenshot out.png \
//        --failing a1 [--timeout 60] [--chromium /usr/bin/chromium]
//
// It prints one JSON line of what the card shows, saves a screenshot (also on
// failure) and exits non-zero with a message on any failure, including a
// JavaScript error in the page.
import { chromium } from "playwright-core";
import { mkdtempSync, rmSync, mkdirSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, dirname } from "node:path";

function fail(msg) {
  process.stderr.write(`halted dashboard test: ${msg}\n`);
  process.exit(1);
}

function options() {
  const o = { timeout: "60", chromium: process.env.CHROMIUM || "/usr/bin/chromium" };
  const argv = process.argv.slice(2);
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (i + 1 >= argv.length) fail(`${a} needs a value`);
    const v = argv[++i];
    if (a === "--url") o.url = v;
    else if (a === "--screenshot") o.screenshot = v;
    else if (a === "--failing") o.failing = v;
    else if (a === "--timeout") o.timeout = v;
    else if (a === "--chromium") o.chromium = v;
    else fail(`unknown flag ${a}`);
  }
  if (!o.url || !o.screenshot || !o.failing) fail("usage: halted.mjs --url URL --screenshot PATH --failing NAME [--timeout S]");
  o.timeoutMs = Number(o.timeout) * 1000;
  if (!(o.timeoutMs > 0)) fail("--timeout must be a number");
  return o;
}

// What the rollout card shows, read from the DOM as a user would see it.
async function card(page) {
  return page.evaluate(() => {
    const text = (sel) => (document.querySelector(sel)?.textContent || "").trim();
    const shown = (sel) => { const e = document.querySelector(sel); return !!e && !e.closest("[hidden]") && e.getClientRects().length > 0; };
    return {
      card: shown("#rollout-card"),
      badge: shown("#rollout-halted"),
      release: text("#rollout-release"),
      stage: text("#rollout-stage"),
      action: text("#rollout-action"),
      health: text("#rollout-health"),
      failing: [...document.querySelectorAll("#rollout-failing li")].filter((li) => !li.closest("[hidden]")).map((li) => ({ name: li.dataset.failing, text: li.textContent.trim() })),
    };
  });
}

async function main() {
  const o = options();
  const profile = mkdtempSync(join(tmpdir(), "patchmesh-chromium-"));
  const browser = await chromium.launchPersistentContext(profile, {
    executablePath: o.chromium,
    headless: true,
    viewport: { width: 1280, height: 1400 },
    args: ["--no-sandbox", "--disable-gpu", "--no-first-run", "--no-default-browser-check", "--disable-background-networking",
      "--disable-component-update", "--disable-sync", "--disable-default-apps"],
  }).catch((e) => fail(`launch ${o.chromium}: ${e.message}`));
  const errors = [];
  let page;
  try {
    page = browser.pages()[0] || await browser.newPage();
    page.on("pageerror", (e) => errors.push(e.message));
    const resp = await page.goto(o.url, { timeout: o.timeoutMs });
    if (!resp || !resp.ok()) throw new Error(`load ${o.url}: HTTP ${resp && resp.status()}`);
    await page.waitForFunction((name) => {
      const badge = document.querySelector("#rollout-halted");
      return !document.querySelector("#rollout-card")?.hidden && badge && !badge.hidden &&
        (document.querySelector("#rollout-health")?.textContent || "").includes("HALTED") &&
        !!document.querySelector(`#rollout-failing li[data-failing="${CSS.escape(name)}"]`);
    }, o.failing, { timeout: o.timeoutMs, polling: 200 })
      .catch(async () => { throw new Error(`the dashboard never showed the halt with ${o.failing} failing: ${JSON.stringify(await card(page))}`); });
    if (errors.length) throw new Error(`JavaScript error in the page: ${errors[0]}`);
    const seen = await card(page);
    mkdirSync(dirname(o.screenshot), { recursive: true });
    await page.locator("#rollout-card").screenshot({ path: o.screenshot });
    process.stdout.write(JSON.stringify({ event: "done", ...seen }) + "\n");
  } catch (e) {
    if (page) {
      try {
        mkdirSync(dirname(o.screenshot), { recursive: true });
        await page.screenshot({ path: o.screenshot, fullPage: true });
      } catch { /* the page is gone */ }
    }
    await browser.close();
    rmSync(profile, { recursive: true, force: true });
    fail(e.message);
  }
  await browser.close();
  rmSync(profile, { recursive: true, force: true });
}

main().catch((e) => fail(e.stack || e.message));
