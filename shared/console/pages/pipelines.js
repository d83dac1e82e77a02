// Pipelines: the list, and an editor whose save shows `invalid_pipeline` at its
// line, with a test panel that runs `pipeline.test` (a dry run by default) on
// a recent event or a pasted body and shows the step trace.

import { command } from "../api.js";
import { badge, busy, confirmDialog, errorBox, field, h, hashQuery, jsonBlock, notice, replace, table, time } from "../ui.js";

const TEMPLATE = `pipeline:
  - event.listen:
      eventKey: webhook.lead.created
  - body.set:
      value: \${@convert.fromBase64(body.payload.origin)}
`;

export async function render(view, [name]) {
  if (name !== undefined) return editorPage(view, name === "new" ? null : name);
  const status = notice();
  const list = h("div");
  replace(view,
    h("h1", {}, "Pipelines"),
    h("p", { className: "lead" }, "A pipeline listens for a webhook's event key and runs its steps on each event."),
    h("div", { className: "toolbar" }, h("a", { className: "button", href: "#/pipelines/new", id: "new-pipeline" }, "New pipeline")),
    status, list);
  const reload = async () => {
    const { data } = await command("pipeline.get");
    replace(list, table([
      ["Name", (p) => h("a", { href: `#/pipelines/${encodeURIComponent(p.name)}` }, p.name)],
      ["Listens to", (p) => h("code", {}, p.eventKey)],
      ["Updated", (p) => time(p.updatedAt)],
      ["Actions", (p) => h("div", { className: "actions" },
        h("a", { className: "button small", href: `#/pipelines/${encodeURIComponent(p.name)}` }, "Edit"),
        h("button", { type: "button", className: "small danger", "aria-label": `Delete ${p.name}`,
          onclick: async (e) => {
            const button = e.currentTarget;
            if (!(await confirmDialog(`Delete the pipeline ${p.name}? Events of ${p.eventKey} will no longer run it.`))) return;
            await busy(button, status, async () => {
              await command("pipeline.delete", { name: p.name });
              status.ok(`${p.name} was deleted.`);
              await reload();
            });
          } }, "Delete"))],
    ], data, { empty: "No pipelines yet.", rowAttrs: (p) => ({ dataset: { pipeline: p.name } }) }));
  };
  try {
    await reload();
  } catch (err) {
    status.show(err);
  }
}

async function editorPage(view, name) {
  let stored = null;
  if (name !== null) stored = (await command("pipeline.get", { name })).data;
  const nameInput = h("input", { id: "pipeline-name", name: "name", value: name ?? "", required: true,
    readonly: name !== null, spellcheck: "false", placeholder: "lead-to-crm" });
  const source = codeEditor(stored ? stored.source : TEMPLATE);
  const status = notice();
  const save = h("button", { type: "button", id: "save-pipeline" }, "Save");
  save.addEventListener("click", () => busy(save, null, async () => {
    status.clear();
    source.markLine(null);
    try {
      const { data } = await command("pipeline.put", { name: nameInput.value.trim(), pipeline: source.value });
      status.ok(`Saved ${data.name}, listening to ${data.eventKey}.`);
      if (name === null) {
        // Now a stored pipeline: its own address, without drawing the page again.
        history.replaceState(null, "", `#/pipelines/${encodeURIComponent(data.name)}`);
        nameInput.readOnly = true;
      }
    } catch (err) {
      status.show(err);
      if (err.details && err.details.line) source.markLine(err.details.line);
    }
  }));
  replace(view,
    h("p", {}, h("a", { href: "#/pipelines" }, "← Pipelines")),
    h("h1", {}, name === null ? "New pipeline" : `Pipeline ${name}`),
    h("div", { className: "split" },
      h("section", { className: "panel", "aria-label": "Editor" },
        field("Name", nameInput),
        h("div", { className: "field" },
          h("label", { for: source.textarea.id }, "YAML"),
          source.wrapper,
          h("small", { className: "hint" }, "a trigger (event.listen) first, then the steps; Tab indents, Escape then Tab leaves")),
        h("div", { className: "actions" }, save),
        status),
      testPanel(source, stored)));
}

/**
 * A textarea with a line-number gutter; `markLine(n)` marks line n (the line
 * an `invalid_pipeline` error names) and puts the cursor on it.
 */
function codeEditor(text) {
  const textarea = h("textarea", { id: "pipeline-source", rows: 18, spellcheck: "false", wrap: "off", className: "code" });
  textarea.value = text;
  const gutter = h("div", { className: "gutter", "aria-hidden": "true" });
  const wrapper = h("div", { className: "code-editor" }, gutter);
  let marked = null;
  const draw = () => {
    const lines = textarea.value.split("\n").length;
    replace(gutter, Array.from({ length: lines }, (_, i) =>
      h("div", { className: i + 1 === marked ? "line marked" : "line", dataset: { line: i + 1 } }, String(i + 1))));
    gutter.scrollTop = textarea.scrollTop;
  };
  textarea.addEventListener("input", draw);
  textarea.addEventListener("scroll", () => (gutter.scrollTop = textarea.scrollTop));
  // Tab indents (two spaces) instead of leaving the editor; Escape then Tab leaves it.
  let escaped = false;
  textarea.addEventListener("keydown", (e) => {
    if (e.key === "Escape") escaped = true;
    else if (e.key === "Tab" && !e.shiftKey && !escaped) {
      e.preventDefault();
      textarea.setRangeText("  ", textarea.selectionStart, textarea.selectionEnd, "end");
      draw();
    } else escaped = false;
  });
  wrapper.append(textarea);
  draw();
  return {
    textarea,
    wrapper,
    get value() {
      return textarea.value;
    },
    markLine(line) {
      marked = line;
      draw();
      if (line) {
        const lines = textarea.value.split("\n");
        const start = lines.slice(0, line - 1).reduce((n, l) => n + l.length + 1, 0);
        textarea.focus();
        textarea.setSelectionRange(start, start + (lines[line - 1] || "").length);
      }
    },
  };
}

/** Runs the editor's YAML (not stored) on a recent event or a pasted body, and shows the trace. */
function testPanel(source, stored) {
  const eventSelect = h("select", { id: "test-event", name: "correlationId" }, h("option", { value: "" }, "— loading recent events —"));
  const sample = h("textarea", { id: "test-sample", rows: 4, spellcheck: "false", placeholder: '{"payload":{"origin":"eyJuYW1lIjoiQWRhIn0="}}' });
  const fromEvent = h("input", { type: "radio", name: "input", value: "event", id: "input-event", checked: true });
  const fromSample = h("input", { type: "radio", name: "input", value: "sample", id: "input-sample" });
  const sideEffects = h("input", { type: "checkbox", id: "side-effects", name: "sideEffects" });
  const run = h("button", { type: "button", id: "run-test" }, "Run test");
  const status = notice();
  const trace = h("div", { id: "trace", "aria-live": "polite" });
  const wanted = hashQuery().get("event");

  const loadEvents = async () => {
    const params = { limit: 20 };
    if (stored) params.eventKey = stored.eventKey;
    const { data } = await command("event.list", params);
    replace(eventSelect, data.events.length === 0 ? h("option", { value: "" }, "no events received yet") : null,
      data.events.map((e) => h("option", { value: e.correlationId, selected: e.correlationId === wanted },
        `${new Date(e.receivedAt).toLocaleString()} · ${e.eventKey} · ${e.status}`)));
    if (wanted && !data.events.some((e) => e.correlationId === wanted)) {
      eventSelect.prepend(h("option", { value: wanted, selected: true }, `event ${wanted}`));
    }
  };
  loadEvents().catch((err) => status.show(err));

  run.addEventListener("click", () => busy(run, status, async () => {
    replace(trace);
    const params = { pipeline: source.value, sideEffects: sideEffects.checked ? "true" : undefined };
    if (fromEvent.checked) params.correlationId = eventSelect.value || undefined;
    else params.sample = sample.value;
    const { data } = await command("pipeline.test", params);
    replace(trace, traceView(data));
  }));

  return h("section", { className: "panel", "aria-label": "Test" },
    h("h2", {}, "Test"),
    h("p", {}, "Runs the YAML above, as it is in the editor, without storing it. Mail and webhook calls are only described unless side effects are allowed."),
    h("fieldset", {},
      h("legend", {}, "Input"),
      h("div", { className: "radio" }, fromEvent, h("label", { for: fromEvent.id }, "A recent event")),
      field("Event", eventSelect),
      h("div", { className: "radio" }, fromSample, h("label", { for: fromSample.id }, "A pasted body (JSON)")),
      field("Sample body", sample)),
    h("div", { className: "checkbox" }, sideEffects, h("label", { for: sideEffects.id }, "Allow side effects (really send mail and webhooks)")),
    h("div", { className: "actions" }, run),
    status, trace);
}

/** The answer of pipeline.test: status, final body, and each step with its duration and body. */
export function traceView(result) {
  return h("div", { className: "trace" },
    h("p", {}, "Result: ", badge(result.status), " ", result.sideEffects ? badge("side effects", "warn") : badge("dry run", "muted")),
    result.error ? h("div", { className: "failed-step", id: "failed-step" }, "Failed at ", h("strong", {}, result.error.step || "?"),
      errorBox(result.error)) : null,
    h("ol", { className: "steps" }, result.steps.map((step) =>
      h("li", { className: step.error ? "step step-error" : "step", dataset: { command: step.command } },
        h("div", { className: "step-head" },
          h("span", { className: "step-index" }, `#${step.index}`), " ",
          h("code", { className: "step-command" }, step.command),
          h("span", { className: "step-line" }, ` line ${step.line}`),
          h("span", { className: "step-duration" }, ` ${formatMs(step.durationMs)}`)),
        step.error ? errorBox(step.error) : null,
        h("details", { open: Boolean(step.error) || step.index === result.steps.length },
          h("summary", {}, step.error ? "Body as the step found it" : "Body after this step"),
          jsonBlock(step.body, { className: "json step-body" }),
          step.vars && Object.keys(step.vars).length ? h("div", {}, h("small", {}, "vars"), jsonBlock(step.vars)) : null)))),
    result.status === "ok" ? h("div", {}, h("h3", {}, "Final body"), jsonBlock(result.value, { id: "final-body" })) : null);
}

function formatMs(ms) {
  if (ms === undefined || ms === null) return "";
  return ms < 1 ? `${(ms * 1000).toFixed(0)} µs` : `${ms.toFixed(1)} ms`;
}
