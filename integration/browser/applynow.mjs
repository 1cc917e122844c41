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
import { failer, options, say, shoot, withPage } from "./check.mjs";

const fail = failer("apply-now dashboard test");

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

async function main() {
  const o = options(fail, "applynow.mjs --url URL --screenshot PATH --want VERSION [--timeout S]", ["want"], ["want"]);
  await withPage(o, fail, async (page) => {
    await page.waitForFunction(() => {
      const b = document.querySelector("#apply-now");
      return b && !b.hidden && (document.querySelector("#window")?.textContent || "").includes("waiting for window (opens");
    }, null, { timeout: o.timeoutMs, polling: 200 })
      .catch(async () => { throw new Error(`the dashboard never showed the release waiting for its window: ${JSON.stringify(await seen(page))}`); });
    say({ event: "waiting", ...(await seen(page)) });
    await shoot(page, o, "#node");
    await page.click("#apply-now", { timeout: o.timeoutMs });
    await page.waitForFunction((want) => (document.querySelector("#current-version")?.textContent || "").trim() === want &&
      document.querySelector("#apply-now")?.hidden, o.want, { timeout: o.timeoutMs, polling: 200 })
      .catch(async () => { throw new Error(`after the click the dashboard shows ${JSON.stringify(await seen(page))}, not ${o.want} current`); });
    say({ event: "done", ...(await seen(page)) });
  });
}

main().catch((e) => fail(e.stack || e.message));
