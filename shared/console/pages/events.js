// Events: the log with filters, refreshed while open; the detail view with the
// request (headers, params, the payload decoded, files), each pipeline's
// outcome with its failing step, and replay.

import { command } from "../api.js";
import { badge, busy, decodePayload, errorBox, field, h, hashQuery, jsonBlock, notice, replace, table, time } from "../ui.js";

/** How often the first page is read again while the log is open. */
const REFRESH_EVERY_MS = 5_000;

export async function render(view, [correlationId]) {
  if (correlationId) return detail(view, correlationId);
  return log(view);
}

async function log(view) {
  const query = hashQuery();
  const webhooks = (await command("webhook.get")).data;
  const webhook = h("select", { id: "filter-webhook", name: "eventKey" },
    h("option", { value: "" }, "all webhooks"),
    webhooks.map((w) => h("option", { value: w.eventKey, selected: w.eventKey === query.get("eventKey") }, w.eventKey)));
  const eventKey = h("input", { id: "filter-event-key", name: "eventKeyText", placeholder: "or an event key", spellcheck: "false" });
  const status = h("select", { id: "filter-status", name: "status" },
    ["", "ok", "error", "processing"].map((s) => h("option", { value: s, selected: s === (query.get("status") || "") }, s || "any status")));
  const since = h("input", { id: "filter-since", type: "datetime-local", name: "since" });
  const until = h("input", { id: "filter-until", type: "datetime-local", name: "until" });
  const live = h("input", { id: "auto-refresh", type: "checkbox", checked: true });
  const problems = notice();
  const list = h("div", { id: "event-list" });
  const more = h("button", { type: "button", className: "secondary", id: "load-more", hidden: true }, "Older events");
  const updated = h("small", { id: "refreshed", "aria-live": "off" });

  const filters = () => ({
    eventKey: eventKey.value.trim() || webhook.value || undefined,
    status: status.value || undefined,
    since: since.value ? new Date(since.value).toISOString() : undefined,
    until: until.value ? new Date(until.value).toISOString() : undefined,
    limit: 50,
  });
  let shown = [];
  let next = null;

  const draw = () => {
    replace(list, table([
      ["Received", (e) => h("a", { href: `#/events/${e.correlationId}`, className: "event-link" }, time(e.receivedAt))],
      ["Event key", (e) => h("code", {}, e.eventKey)],
      ["Status", (e) => badge(e.status)],
      ["Pipelines", (e) => Object.entries(e.pipelines || {}).map(([name, s]) => h("span", { className: "pipeline-status" }, `${name} `, badge(s)))],
      ["Request", (e) => `${e.method} · ${e.contentType || "no type"} · ${e.size} B`],
      ["Replay of", (e) => (e.replayOf ? h("a", { href: `#/events/${e.replayOf}` }, e.replayOf.slice(0, 8)) : "")],
    ], shown, { empty: "No events match.", rowAttrs: (e) => ({ dataset: { correlationId: e.correlationId, status: e.status } }) }));
    more.hidden = !next;
  };

  /** The first page again (filters changed, or the timer). */
  const refresh = async () => {
    try {
      const { data } = await command("event.list", filters());
      shown = data.events;
      next = data.next || null;
      problems.clear();
      updated.textContent = `updated ${new Date().toLocaleTimeString()}`;
      draw();
    } catch (err) {
      problems.show(err);
    }
  };
  more.addEventListener("click", () => busy(more, problems, async () => {
    const { data } = await command("event.list", { ...filters(), cursor: next });
    shown = shown.concat(data.events);
    next = data.next || null;
    draw();
  }));
  const form = h("form", { className: "filters", id: "event-filters", "aria-label": "Filters" },
    field("Webhook", webhook), field("Event key", eventKey), field("Status", status),
    field("Since", since), field("Until", until),
    h("div", { className: "actions" }, h("button", { type: "submit" }, "Apply")));
  form.addEventListener("submit", (e) => {
    e.preventDefault();
    refresh();
  });
  for (const control of [webhook, status]) control.addEventListener("change", refresh);

  replace(view,
    h("h1", {}, "Events"),
    form,
    h("div", { className: "toolbar" },
      h("div", { className: "checkbox" }, live, h("label", { for: live.id }, `Refresh every ${REFRESH_EVERY_MS / 1000} s`)), " ", updated),
    problems, list, more);
  await refresh();
  // Only the first page refreshes, and only while no older page is loaded.
  const timer = setInterval(() => {
    if (live.checked && shown.length <= 50 && !document.hidden) refresh();
  }, REFRESH_EVERY_MS);
  return () => clearInterval(timer);
}

async function detail(view, correlationId) {
  const { data: logged } = await command("event.get", { correlationId });
  const event = logged.event;
  const payload = event.payload || {};
  const status = notice();
  const replayed = h("div", { id: "replay-result", "aria-live": "polite" });

  const replay = async (button, pipeline) => busy(button, status, async () => {
    replace(replayed);
    const answer = await command("event.replay", { correlationId, pipeline });
    const newId = answer.headers.get("pipeforce-result-correlationid") || answer.data.correlationId;
    replace(replayed, h("div", { className: "panel" },
      h("p", {}, "Replayed as a new event: ", badge(answer.data.status), " ",
        h("a", { href: `#/events/${newId}`, id: "replay-link" }, `open ${newId}`)),
      answer.data.error ? errorBox(answer.data.error) : null,
      answer.data.value !== undefined && answer.data.value !== null ? jsonBlock(answer.data.value) : null));
  });
  const replayAll = h("button", { type: "button", id: "replay" }, "Replay");
  replayAll.addEventListener("click", () => replay(replayAll));

  const decoded = decodePayload(event.origin ?? payload.origin, payload.contentType || "");
  replace(view,
    h("p", {}, h("a", { href: "#/events" }, "← Events")),
    h("h1", {}, "Event ", h("code", {}, correlationId)),
    h("dl", { className: "facts" },
      h("dt", {}, "Event key"), h("dd", {}, h("code", {}, logged.eventKey)),
      h("dt", {}, "Received"), h("dd", {}, time(logged.receivedAt)),
      h("dt", {}, "Status"), h("dd", { id: "event-status" }, badge(logged.status)),
      logged.replayOf ? [h("dt", {}, "Replay of"), h("dd", {}, h("a", { href: `#/events/${logged.replayOf}` }, logged.replayOf))] : null,
      h("dt", {}, "Request"), h("dd", {}, `${payload.method || "?"} · ${payload.contentType || "no content type"}`)),
    h("div", { className: "toolbar" }, replayAll),
    status, replayed,
    h("section", { className: "panel", id: "outcomes" },
      h("h2", {}, "Pipelines"),
      logged.pipelines.length === 0 ? h("p", { className: "empty" }, "No pipeline listened to this event.") : null,
      logged.pipelines.map((p) => outcome(p, correlationId, replay))),
    h("section", { className: "panel" },
      h("h2", {}, "Payload ", h("small", {}, `(${decoded.kind})`)),
      h("pre", { className: `payload payload-${decoded.kind}`, id: "payload" }, decoded.text)),
    h("section", { className: "panel" }, h("h2", {}, "Headers"), pairs(payload.headers, "headers")),
    h("section", { className: "panel" }, h("h2", {}, "Parameters"), pairs(payload.params, "params")),
    payload.files && payload.files.length ? h("section", { className: "panel" }, h("h2", {}, "Files"), files(payload.files)) : null);
}

function outcome(p, correlationId, replay) {
  const again = h("button", { type: "button", className: "small secondary", "aria-label": `Replay ${p.pipeline} only` }, "Replay this pipeline");
  again.addEventListener("click", () => replay(again, p.pipeline));
  return h("div", { className: `outcome outcome-${p.status}`, dataset: { pipeline: p.pipeline } },
    h("h3", {}, p.pipeline, " ", badge(p.status)),
    h("p", { className: "muted" },
      p.durationMs !== undefined ? `${p.durationMs} ms` : "", p.attempts !== undefined ? ` · ${p.attempts} attempt(s)` : ""),
    p.error ? h("div", { className: "failed-step" }, "Failed at ", h("strong", { className: "error-step" }, p.error.step || "?"), errorBox(p.error)) : null,
    p.status === "ok" ? h("details", {}, h("summary", {}, "Result value"), jsonBlock(p.value)) : null,
    h("div", { className: "actions" }, again,
      h("a", { className: "button small secondary", href: `#/pipelines/${encodeURIComponent(p.pipeline)}?event=${correlationId}` }, "Open in the editor to test")));
}

function pairs(object, name) {
  const entries = Object.entries(object || {});
  return table([
    ["Name", ([key]) => h("code", {}, key)],
    ["Value", ([, value]) => (typeof value === "string" ? value : JSON.stringify(value))],
  ], entries, { empty: `No ${name}.` });
}

function files(list) {
  return table([
    ["Field", (f) => f.name],
    ["File name", (f) => f.filename || ""],
    ["Type", (f) => f.contentType || ""],
    ["Size", (f) => `${f.size} B`],
    ["Content", (f) => h("details", {}, h("summary", {}, "show"),
      h("pre", { className: "payload" }, decodePayload(f.content, f.contentType || "").text))],
  ], list);
}
