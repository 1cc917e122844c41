// When a check asked from the dashboard has finished, and what to tell the
// user about it. Pure functions over the API's JSON: no DOM, so tests import
// them.
import { isSet } from "./format.js";

function lastCheckKey(st) {
  const c = st && st.last_check;
  return c ? (c.started || "") + "|" + (c.finished || "") : "";
}

// isFinal tells a POST /api/update answer that is the check's outcome (with
// ?wait=1) from one that only queued it.
export function isFinal(answer) {
  return !!answer && !!answer.outcome && answer.outcome !== "queued";
}

// askCheck remembers a check the dashboard asked for: answer is the POST
// /api/update answer, st the last status seen before it.
export function askCheck(answer, st) {
  return {
    // The node's clock when it took the request: the check that answers it is
    // the first to finish after it (one already running counts, as the node
    // gives its result to everyone who asked meanwhile).
    started: answer && isSet(answer.started) ? answer.started : "",
    before: lastCheckKey(st),
    sawChecking: false,
  };
}

// finishedCheck returns the result of the asked check once the status st
// shows it finished (a last_check newer than the request, or checking gone
// back to false), else null. It notes in asked whether it saw checking.
export function finishedCheck(asked, st) {
  if (!asked || !st) return null;
  const c = st.last_check;
  if (c && isSet(c.finished)) {
    if (asked.started ? Date.parse(c.finished) >= Date.parse(asked.started) : lastCheckKey(st) !== asked.before) return c;
  }
  if (st.checking) {
    asked.sawChecking = true;
    return null;
  }
  // A node that does not report last_check still shows checking come and go.
  return asked.sawChecking ? (c || {}) : null;
}

// outcomeNotice is what the notice says about a check's result.
export function outcomeNotice(res) {
  res = res || {};
  const v = res.version || (res.sequence ? "#" + res.sequence : "the new release");
  const why = res.message ? ": " + res.message : "";
  switch (res.outcome) {
  case "queued":
    return { text: "Checking the sources now…", error: false };
  case "up-to-date":
    return { text: "Up to date" + (res.version ? ": running " + res.version : "") + ".", error: false };
  case "applied":
    return { text: v + " is now current.", error: false };
  case "skipped-bad":
    return { text: "Not installing " + v + " again" + why + ".", error: false };
  case "refused":
    return { text: "Refused " + v + why, error: true };
  case "rolled-back":
    return { text: v + " was rolled back" + why, error: true };
  case "failed":
    return { text: "Check failed" + why, error: true };
  default:
    return { text: res.outcome ? "Check finished: " + res.outcome + why : "Check finished.", error: false };
  }
}
