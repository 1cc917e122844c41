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
import { failer, options, say, shoot, withPage } from "./check.mjs";

const fail = failer("halted dashboard test");

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
  const o = options(fail, "halted.mjs --url URL --screenshot PATH --failing NAME [--timeout S]", ["failing"], ["failing"]);
  await withPage(o, fail, async (page) => {
    await page.waitForFunction((name) => {
      const badge = document.querySelector("#rollout-halted");
      return !document.querySelector("#rollout-card")?.hidden && badge && !badge.hidden &&
        (document.querySelector("#rollout-health")?.textContent || "").includes("HALTED") &&
        !!document.querySelector(`#rollout-failing li[data-failing="${CSS.escape(name)}"]`);
    }, o.failing, { timeout: o.timeoutMs, polling: 200 })
      .catch(async () => { throw new Error(`the dashboard never showed the halt with ${o.failing} failing: ${JSON.stringify(await card(page))}`); });
    const seen = await card(page);
    await shoot(page, o, "#rollout-card");
    say({ event: "done", ...seen });
  });
}

main().catch((e) => fail(e.stack || e.message));
