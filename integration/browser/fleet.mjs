// End-to-end check of a patchmesh seed's fleet card in headless Chromium.
//
//   node fleet.mjs --url http://127.0.0.1:8781/ --screenshot out.png \
//        --nodes site-a/n1,site-b/n3 --want 1.0.0 [--node-url URL] [--timeout 60] [--chromium PATH]
//
// With --node-url it then loads that node's dashboard and waits until its
// site card shows a summary naming --want, which it prints as "site".
// It loads the seed dashboard and waits until the fleet card lists every
// SITE/NODE of --nodes running --want, then prints the rows it saw as one JSON
// line and saves a screenshot (also on failure). It exits non-zero with a
// message on any failure, including a JavaScript error in the page.
import { chromium } from "playwright-core";
import { mkdtempSync, rmSync, mkdirSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";

function fail(msg) {
  process.stderr.write(`fleet.mjs: ${msg}\n`);
  process.exit(1);
}

function options() {
  const o = { timeout: "60", chromium: "/usr/bin/chromium" };
  const argv = process.argv.slice(2);
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const val = () => (i + 1 < argv.length ? argv[++i] : fail(`${a} needs a value`));
    if (a === "--url") o.url = val();
    else if (a === "--screenshot") o.screenshot = val();
    else if (a === "--nodes") o.nodes = val().split(",").filter(Boolean);
    else if (a === "--want") o.want = val();
    else if (a === "--timeout") o.timeout = val();
    else if (a === "--chromium") o.chromium = val();
    else if (a === "--node-url") o.nodeURL = val();
    else fail(`unknown argument ${a}`);
  }
  if (!o.url || !o.screenshot || !o.nodes || !o.want) fail("usage: fleet.mjs --url URL --screenshot PATH --nodes SITE/NODE,... --want VERSION");
  o.timeoutMs = Number(o.timeout) * 1000;
  return o;
}

async function main() {
  const o = options();
  const profile = mkdtempSync(join(tmpdir(), "patchmesh-chromium-"));
  const browser = await chromium.launchPersistentContext(profile, {
    executablePath: o.chromium,
    headless: true,
    viewport: { width: 1280, height: 1400 },
    args: ["--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync"],
  }).catch((e) => fail(`launch ${o.chromium}: ${e.message}`));
  const pageErrors = [];
  let page;
  try {
    page = browser.pages()[0] || await browser.newPage();
    page.on("pageerror", (e) => pageErrors.push(e.message));
    await page.goto(o.url, { timeout: o.timeoutMs });
    const deadline = Date.now() + o.timeoutMs;
    let rows = [];
    for (;;) {
      if (pageErrors.length) throw new Error(`JavaScript error in the page: ${pageErrors[0]}`);
      rows = await page.$$eval("#fleet-nodes tbody tr", (trs) => trs.map((tr) => ({
        site: tr.dataset.site, node: tr.dataset.node, release: tr.querySelector(".release").textContent,
        visible: tr.offsetParent !== null,
      })));
      const ok = o.nodes.every((sn) => rows.some((r) => `${r.site}/${r.node}` === sn && r.release === o.want && r.visible));
      if (ok) break;
      if (Date.now() > deadline) throw new Error(`fleet card shows ${JSON.stringify(rows)}, want ${o.nodes.join(",")} on ${o.want}`);
      await page.waitForTimeout(500);
    }
    const sites = await page.$$eval("#fleet-sites tbody tr", (trs) => trs.map((tr) => tr.dataset.site));
    const totals = await page.textContent("#fleet-totals");
    let site = "";
    if (o.nodeURL) {
      await page.goto(o.nodeURL, { timeout: o.timeoutMs });
      await page.waitForFunction((want) => {
        const card = document.getElementById("site-card");
        const s = document.getElementById("site-summary");
        return card && !card.hidden && s && s.textContent.includes(" on " + want) && document.querySelectorAll("#site-nodes tbody tr").length > 0;
      }, o.want, { timeout: Math.max(1000, deadline - Date.now()) });
      if (pageErrors.length) throw new Error(`JavaScript error in the node page: ${pageErrors[0]}`);
      site = await page.textContent("#site-summary");
    }
    process.stdout.write(JSON.stringify({ event: "done", sites, rows, totals, site }) + "\n");
  } catch (e) {
    process.stderr.write(`fleet.mjs: ${e.message}\n`);
    process.exitCode = 1;
  } finally {
    if (page) {
      mkdirSync(dirname(o.screenshot), { recursive: true });
      await page.screenshot({ path: o.screenshot, fullPage: true }).catch(() => {});
    }
    await browser.close();
    rmSync(profile, { recursive: true, force: true });
  }
}

main();
