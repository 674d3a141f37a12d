// The UI's entry point: hash routing and the poll loop that feeds the current view.
//
// Every POLL_MS the master's /master/state and /metrics/snapshot are read and handed
// to the view on screen. Polling stops while the tab is hidden and resumes (with an
// immediate poll) when it is shown again.

import { getJSON } from "./api.js";
import { h } from "./dom.js";
import { sandbox } from "./sandbox.js";
import * as views from "./views.js";

const POLL_MS = 2000;

const ROUTES = [
  [/^$/, views.dashboard, "dashboard"],
  [/^frameworks$/, views.frameworks, "frameworks"],
  [/^frameworks\/([^/]+)$/, views.framework, "frameworks"],
  [/^agents$/, views.agents, "agents"],
  [/^agents\/([^/]+)$/, views.agent, "agents"],
  [/^tasks\/([^/]+)$/, views.task, ""],
  [/^tasks\/([^/]+)\/sandbox$/, sandbox, ""],
  [/^roles$/, views.roles, "roles"],
  [/^maintenance$/, views.maintenance, "maintenance"],
];

const main = document.getElementById("view");
const status = document.getElementById("status");

let view = null;
let ctx = null; // the latest {state, metrics}
let timer = null;
let busy = false;
let again = false;
let polls = 0;

function route() {
  // Match the raw hash; only the captured ids are decoded (they may hold "/" or "%").
  const path = location.hash.replace(/^#\/?/, "").replace(/\/$/, "");
  for (const [pattern, make, tab] of ROUTES) {
    const match = pattern.exec(path);
    if (!match) continue;
    const params = match.slice(1).map(decodeURIComponent);
    for (const a of document.querySelectorAll("nav a")) {
      a.classList.toggle("current", a.dataset.tab === tab);
    }
    return make(...params);
  }
  return { el: h("section", {}, h("h2", {}, "Not found"), h("p", {}, `No page at #/${path}.`)), update() {} };
}

async function show(v) {
  if (v !== view || !ctx) return;
  try {
    await v.update(ctx);
  } catch (error) {
    // A view's own failure (an agent that cannot be reached, say) stays in the view.
    console.error(error);
  }
}

function mount() {
  view = route();
  main.replaceChildren(view.el);
  show(view);
}

/** Read the master, then redraw the view; never two at once, and never while hidden. */
async function poll() {
  clearTimeout(timer);
  timer = null;
  if (busy) {
    again = true;
    return;
  }
  if (document.hidden) {
    status.textContent = "paused while hidden";
    return;
  }
  busy = true;
  try {
    const [state, metrics] = await Promise.all([
      getJSON("/master/state"),
      getJSON("/metrics/snapshot").catch(() => ({})),
    ]);
    ctx = { state, metrics };
    polls += 1;
    status.textContent = `updated ${new Date().toLocaleTimeString()}`;
    status.dataset.polls = String(polls);
    status.classList.remove("error");
    document.getElementById("master").textContent = state.hostname ? `master ${state.hostname}` : "";
  } catch (error) {
    status.textContent = `cannot reach the master: ${error.message}`;
    status.classList.add("error");
  }
  try {
    await show(view);
  } finally {
    busy = false;
  }
  if (again) {
    again = false;
    poll();
  } else if (document.hidden) {
    status.textContent = "paused while hidden";
  } else {
    timer = setTimeout(poll, POLL_MS);
  }
}

window.addEventListener("hashchange", () => {
  mount();
  poll();
});
document.addEventListener("visibilitychange", () => {
  if (document.hidden) {
    clearTimeout(timer);
    timer = null;
    status.textContent = "paused while hidden";
  } else {
    poll();
  }
});

mount();
poll();
