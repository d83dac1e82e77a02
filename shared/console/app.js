// The console's shell: sign-in, the header (health and live figures), and the
// hash router that shows one page at a time (#/webhooks, #/events/<id>, …).

import { ApiError, command, health, signIn, signOut, token, whenUnauthorized } from "./api.js";
import { errorBox, field, h, replace } from "./ui.js";
import * as webhooks from "./pages/webhooks.js";
import * as pipelines from "./pages/pipelines.js";
import * as events from "./pages/events.js";
import * as outgoing from "./pages/outgoing.js";
import * as deadletters from "./pages/deadletters.js";

const PAGES = { webhooks, pipelines, events, outgoing, deadletters };
/** How often the header's figures are read again while the console is open. */
const FIGURES_EVERY_MS = 10_000;

const main = document.getElementById("main");
const top = document.getElementById("top");
let leavePage = null;
let figuresTimer = null;

function showSignIn(error) {
  stopPage();
  top.hidden = true;
  clearInterval(figuresTimer);
  figuresTimer = null;
  const input = h("input", { type: "password", name: "token", autocomplete: "off", required: true, spellcheck: "false" });
  const status = h("div", { "aria-live": "polite" }, error ? errorBox(error) : null);
  const form = h("form", { className: "sign-in", id: "sign-in" },
    h("h1", {}, "hookflow console"),
    h("p", {}, "Paste the admin token (", h("code", {}, "HOOKFLOW_ADMIN_TOKEN"), ", or ",
      h("code", {}, ".hookflow/admin-token"), " of a local serve). It is kept in this tab only, until you sign out or close it."),
    field("Admin token", input),
    h("button", { type: "submit" }, "Sign in"),
    status);
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    signIn(input.value.trim());
    try {
      // Any command proves the token; webhook.get is the first page anyway.
      await command("webhook.get");
      route();
    } catch (err) {
      signOut();
      replace(status, errorBox(err));
    }
  });
  replace(main, form);
  input.focus();
}

function stopPage() {
  if (leavePage) leavePage();
  leavePage = null;
}

async function route() {
  if (!token()) return showSignIn();
  top.hidden = false;
  startFigures();
  const [path] = location.hash.replace(/^#\/?/, "").split("?");
  const [pageName, ...rest] = path.split("/");
  const name = PAGES[pageName] ? pageName : "webhooks";
  for (const link of document.querySelectorAll("#nav a")) {
    if (link.dataset.page === name) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
  stopPage();
  const view = h("div", { className: "page", id: `page-${name}` });
  replace(main, view);
  try {
    leavePage = (await PAGES[name].render(view, rest.map(decodeURIComponent))) || null;
  } catch (err) {
    replace(view, errorBox(err));
  }
  main.focus({ preventScroll: true });
}

/** Reads the figures now (on every page change too, so they are never a page behind), then on a timer. */
function startFigures() {
  refreshFigures();
  if (!figuresTimer) figuresTimer = setInterval(refreshFigures, FIGURES_EVERY_MS);
}

/** The header: health, receives in the last minute, failures in the last hour, queue. */
async function refreshFigures() {
  const healthEl = document.getElementById("health");
  const up = await health();
  healthEl.textContent = up ? "healthy" : "unavailable";
  healthEl.className = `badge badge-${up ? "ok" : "error"}`;
  const now = Date.now();
  const count = async (params, el, suffix) => {
    try {
      const page = await command("event.list", { ...params, limit: 200 });
      const shown = page.data.events.length + (page.data.next ? "+" : "");
      el.textContent = `${shown} ${suffix}`;
    } catch (err) {
      el.textContent = `? ${suffix}`;
      el.title = `${err.code}: ${err.message}`;
    }
  };
  await Promise.all([
    count({ since: new Date(now - 60_000).toISOString() }, document.getElementById("figure-receives"), "/ min"),
    count({ status: "error", since: new Date(now - 3_600_000).toISOString() },
      document.getElementById("figure-errors"), "errors / h"),
    queueFigure(document.getElementById("figure-queue")),
  ]);
}

async function queueFigure(el) {
  try {
    const answer = await command("queue.get");
    el.textContent = `queue ${answer.data.queued} · dead ${answer.data.deadLetters}`;
  } catch (err) {
    el.textContent = "queue ?";
    el.title = `${err.code}: ${err.message}`;
  }
}

whenUnauthorized((error) => {
  signOut();
  showSignIn(error || new ApiError(401, "unauthorized", "the admin token was not accepted"));
});

document.getElementById("sign-out").addEventListener("click", () => {
  signOut();
  location.hash = "";
  showSignIn();
});
window.addEventListener("hashchange", route);
route();
