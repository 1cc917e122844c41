// What every one-page browser check shares: its flags, Chromium, a screenshot
// also on failure, and an exit code. Each check stays one script that runs by
// hand (`node halted.mjs --url … --screenshot …`) and holds only what it looks
// for.
import { chromium } from "playwright-core";
import { mkdtempSync, rmSync, mkdirSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, dirname } from "node:path";

// failer returns fail(msg): print "NAME: msg" and exit 1.
export function failer(name) {
  return (msg) => {
    process.stderr.write(`${name}: ${msg}\n`);
    process.exit(1);
  };
}

// options parses --url, --screenshot, --timeout (seconds, default 60),
// --chromium (default $CHROMIUM or /usr/bin/chromium) and the check's own
// flags, named in extra (each "--flag" fills o.flag); required lists the
// names that must be set. It adds timeoutMs.
export function options(fail, usage, extra, required) {
  const o = { timeout: "60", chromium: process.env.CHROMIUM || "/usr/bin/chromium" };
  const names = ["url", "screenshot", "timeout", "chromium", ...extra];
  const argv = process.argv.slice(2);
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const name = a.replace(/^--/, "");
    if (!a.startsWith("--") || !names.includes(name)) fail(`unknown flag ${a}`);
    if (i + 1 >= argv.length) fail(`${a} needs a value`);
    o[name] = argv[++i];
  }
  for (const r of ["url", "screenshot", ...required]) {
    if (!o[r]) fail(`usage: ${usage}`);
  }
  o.timeoutMs = Number(o.timeout) * 1000;
  if (!(o.timeoutMs > 0)) fail("--timeout must be a number");
  return o;
}

// withPage opens o.url in headless Chromium and runs fn(page); a JavaScript
// error in the page fails the check. On any failure it saves a screenshot of
// the whole page to o.screenshot and calls fail.
export async function withPage(o, fail, fn) {
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
  const done = () => {
    return browser.close().then(() => rmSync(profile, { recursive: true, force: true }));
  };
  try {
    page = browser.pages()[0] || await browser.newPage();
    page.on("pageerror", (e) => errors.push(e.message));
    const resp = await page.goto(o.url, { timeout: o.timeoutMs });
    if (!resp || !resp.ok()) throw new Error(`load ${o.url}: HTTP ${resp && resp.status()}`);
    await fn(page);
    if (errors.length) throw new Error(`JavaScript error in the page: ${errors[0]}`);
  } catch (e) {
    if (page) {
      try {
        mkdirSync(dirname(o.screenshot), { recursive: true });
        await page.screenshot({ path: o.screenshot, fullPage: true });
      } catch { /* the page is gone */ }
    }
    await done();
    fail(e.message);
  }
  await done();
}

// shoot saves a screenshot of the element sel to o.screenshot.
export async function shoot(page, o, sel) {
  mkdirSync(dirname(o.screenshot), { recursive: true });
  await page.locator(sel).screenshot({ path: o.screenshot });
}

// say prints one JSON line.
export function say(obj) {
  process.stdout.write(JSON.stringify(obj) + "\n");
}
