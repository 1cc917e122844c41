// Check a node's dashboard in headless Chromium while a staged release waits
// for a maintenance window: the node card says "waiting for window (opens …)",
// the "Apply now" button shows, and a click makes --want current.
//
//   node applynow.mjs --url http://127.0.0.1:7780/ --screenshot out.png \
//        --want 1.0.0 [--timeout 60] [--chromium /usr/bin/chromium]
//
// It prints one JSON line per step, saves a screenshot (also on failure) and
// exits non-zero with a message on any failure, including a JavaScript error
// in the page.
import { chromium } from "playwright-core";
import { mkdtempSync, rmSync, mkdirSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, dirname } from "node:path";

function fail(msg) {
  process.stderr.write(`apply-now dashboard test: ${msg}\n`);
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
    else if (a === "--want") o.want = v;
    else if (a === "--timeout") o.timeout = v;
    else if (a === "--chromium") o.chromium = v;
    else fail(`unknown flag ${a}`);
  }
  if (!o.url || !o.screenshot || !o.want) fail("usage: applynow.mjs --url URL --screenshot PATH --want VERSION [--timeout S]");
  o.timeoutMs = Number(o.timeout) * 1000;
  if (!(o.timeoutMs > 0)) fail("--timeout must be a number");
  return o;
}

async function seen(page) {
  return page.evaluate(() => {
    const text = (sel) => (document.querySelector(sel)?.textContent || "").trim();
    const b = document.querySelector("#apply-now");
    return {
      window: text("#window"),
      button: !!b && !b.hidden,
      current: text("#current-version"),
      notice: document.querySelector("#notice")?.hidden ? "" : text("#notice"),
    };
  });
}

function say(obj) {
  process.stdout.write(JSON.stringify(obj) + "\n");
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
    await page.waitForFunction(() => {
      const b = document.querySelector("#apply-now");
      return b && !b.hidden && (document.querySelector("#window")?.textContent || "").includes("waiting for window (opens");
    }, null, { timeout: o.timeoutMs, polling: 200 })
      .catch(async () => { throw new Error(`the dashboard never showed the release waiting for its window: ${JSON.stringify(await seen(page))}`); });
    say({ event: "waiting", ...(await seen(page)) });
    mkdirSync(dirname(o.screenshot), { recursive: true });
    await page.locator("#node").screenshot({ path: o.screenshot });
    await page.click("#apply-now", { timeout: o.timeoutMs });
    await page.waitForFunction((want) => (document.querySelector("#current-version")?.textContent || "").trim() === want &&
      document.querySelector("#apply-now")?.hidden, o.want, { timeout: o.timeoutMs, polling: 200 })
      .catch(async () => { throw new Error(`after the click the dashboard shows ${JSON.stringify(await seen(page))}, not ${o.want} current`); });
    if (errors.length) throw new Error(`JavaScript error in the page: ${errors[0]}`);
    say({ event: "done", ...(await seen(page)) });
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
