// Webhooks: list, create, edit (incl. source addresses, signature checks,
// dedup), enable/disable, rotate the token, delete, copy the URL, a curl example.

import { command } from "../api.js";
import { badge, busy, confirmDialog, copy, field, h, notice, replace, table, time } from "../ui.js";

const PAYLOAD_TYPES = ["base64", "raw", "ignore"];

export async function render(view) {
  const status = notice();
  const list = h("div", { id: "webhook-list" });
  const editor = h("div", { id: "webhook-editor" });
  replace(view,
    h("h1", {}, "Webhooks"),
    h("p", { className: "lead" }, "Each webhook is a URL partners call; its event key is what pipelines listen to."),
    h("div", { className: "toolbar" },
      h("button", { type: "button", id: "new-webhook", onclick: () => showEditor(editor, null, reload) }, "New webhook")),
    status, editor, list);

  async function reload() {
    try {
      const { data } = await command("webhook.get");
      replace(list, webhookTable(data, status, editor, reload));
    } catch (err) {
      status.show(err);
    }
  }
  await reload();
}

function webhookTable(webhooks, status, editor, reload) {
  return table([
    ["Event key", (w) => h("strong", { className: "event-key" }, w.eventKey)],
    ["Description", (w) => w.description || ""],
    ["State", (w) => (w.enabled ? badge("enabled", "ok") : badge("disabled", "muted"))],
    ["Created", (w) => time(w.createdAt)],
    ["URL", (w) => h("div", { className: "url-cell" },
      h("code", { className: "url" }, w.webhookUrl),
      h("button", { type: "button", className: "small secondary", "aria-label": `Copy the URL of ${w.eventKey}`,
        onclick: (e) => copy(w.webhookUrl, e.currentTarget) }, "Copy"))],
    ["Actions", (w) => h("div", { className: "actions" },
      h("button", { type: "button", className: "small", "aria-label": `Edit ${w.eventKey}`,
        onclick: (e) => busy(e.currentTarget, status, async () => {
          // The one webhook, with its refusal counter (the list leaves it out).
          const { data } = await command("webhook.get", { uuid: w.uuid });
          showEditor(editor, data, reload);
        }) }, "Edit"),
      h("button", { type: "button", className: "small secondary", "aria-label": `${w.enabled ? "Disable" : "Enable"} ${w.eventKey}`,
        onclick: (e) => busy(e.currentTarget, status, async () => {
          await command("webhook.put", { uuid: w.uuid, enabled: String(!w.enabled) });
          status.ok(`${w.eventKey} is ${w.enabled ? "disabled" : "enabled"}.`);
          await reload();
        }) }, w.enabled ? "Disable" : "Enable"),
      h("a", { className: "button small secondary", href: `#/events?eventKey=${encodeURIComponent(w.eventKey)}` }, "Events"),
      h("button", { type: "button", className: "small danger", "aria-label": `Delete ${w.eventKey}`,
        onclick: async (e) => {
          const button = e.currentTarget;
          if (!(await confirmDialog(`Delete the webhook ${w.eventKey}? Calls to its URL will get 404.`))) return;
          await busy(button, status, async () => {
            await command("webhook.delete", { uuid: w.uuid });
            status.ok(`${w.eventKey} was deleted.`);
            replace(editor);
            await reload();
          });
        } }, "Delete"))],
  ], webhooks, { empty: "No webhooks yet. Create one with “New webhook”.", rowAttrs: (w) => ({ dataset: { eventKey: w.eventKey } }) });
}

/** The create/edit form. Only fields that changed are sent, so masked secrets stay as they are. */
function showEditor(editor, webhook, reload) {
  const editing = webhook !== null;
  const initial = {
    eventKey: webhook?.eventKey ?? "",
    description: webhook?.description ?? "",
    payloadType: webhook?.payloadType ?? "base64",
    maxPayloadLength: String(webhook?.maxPayloadLength ?? 512000),
    allowedSources: (webhook?.allowedSources ?? []).join(", "),
    verify: webhook?.verify ? JSON.stringify(webhook.verify) : "",
    dedup: webhook?.dedup ? JSON.stringify(webhook.dedup) : "",
  };
  const inputs = {
    eventKey: h("input", { name: "eventKey", value: initial.eventKey, required: true, placeholder: "webhook.lead.created", spellcheck: "false" }),
    description: h("input", { name: "description", value: initial.description }),
    payloadType: h("select", { name: "payloadType" },
      PAYLOAD_TYPES.map((t) => h("option", { value: t, selected: t === initial.payloadType }, t))),
    maxPayloadLength: h("input", { name: "maxPayloadLength", type: "number", min: 1, max: 4194304, value: initial.maxPayloadLength }),
    allowedSources: h("input", { name: "allowedSources", value: initial.allowedSources, placeholder: "192.30.252.0/22, 185.199.108.0/22" }),
    verify: h("textarea", { name: "verify", rows: 3, spellcheck: "false", placeholder: '{"scheme":"standard-webhooks","secret":"whsec_…"}' }),
    dedup: h("input", { name: "dedup", value: initial.dedup, placeholder: '{"header":"Idempotency-Key"}', spellcheck: "false" }),
  };
  inputs.verify.value = initial.verify;
  const status = notice();
  const form = h("form", { className: "panel", id: "webhook-form", "aria-label": editing ? "Edit webhook" : "New webhook" },
    h("h2", {}, editing ? `Edit ${webhook.eventKey}` : "New webhook"),
    field("Event key", inputs.eventKey, "lower case, dot-separated: what pipelines listen to"),
    field("Description", inputs.description),
    h("div", { className: "row" },
      field("Payload type", inputs.payloadType, "how the body is stored: base64 (default), raw JSON/text, or ignored"),
      field("Max payload bytes", inputs.maxPayloadLength)),
    h("details", { open: Boolean(initial.allowedSources || initial.verify || initial.dedup) },
      h("summary", {}, "Inbound security"),
      field("Allowed sources", inputs.allowedSources, "IP addresses or CIDR ranges, comma-separated; empty allows any"),
      field("Signature check (verify)", inputs.verify, "JSON; secrets are shown masked and kept unless you replace them; empty removes it"),
      field("Deduplication (dedup)", inputs.dedup, 'JSON, e.g. {"header":"Idempotency-Key","windowSeconds":86400}; empty removes it')),
    h("div", { className: "actions" },
      h("button", { type: "submit" }, editing ? "Save" : "Create"),
      h("button", { type: "button", className: "secondary", onclick: () => replace(editor) }, "Cancel")),
    status);
  form.addEventListener("submit", (e) => {
    e.preventDefault();
    const params = editing ? { uuid: webhook.uuid } : {};
    for (const [name, input] of Object.entries(inputs)) {
      const value = input.value.trim();
      if (!editing && value === "") continue;
      if (editing && value === initial[name]) continue;
      // An emptied field is sent empty: hookflow removes that setting.
      params[name] = value;
    }
    const submit = form.querySelector("button[type=submit]");
    busy(submit, status, async () => {
      const { data } = await command("webhook.put", params);
      replace(editor, created(data, editing));
      await reload();
    });
  });
  const extras = editing ? [rotatePanel(webhook, editor, reload), curlExample(webhook)] : [];
  replace(editor, form, ...extras);
  inputs.eventKey.focus();
}

function created(webhook, edited) {
  return h("div", { className: "panel", id: "webhook-saved", role: "status" },
    h("h2", {}, edited ? `Saved ${webhook.eventKey}` : `Created ${webhook.eventKey}`),
    h("p", {}, "Its URL:"),
    h("div", { className: "url-cell" }, h("code", { className: "url", id: "new-webhook-url" }, webhook.webhookUrl),
      h("button", { type: "button", className: "small secondary", onclick: (e) => copy(webhook.webhookUrl, e.currentTarget) }, "Copy")),
    curlExample(webhook));
}

function curlExample(webhook) {
  const base = new URL(webhook.webhookUrl, location.href);
  const example = `curl -X POST '${base.origin}/api/v3/webhook.receive' \\\n  -H 'token: ${webhook.uuid}' \\\n  -H 'content-type: application/json' \\\n  -d '{"hello":"world"}'`;
  return h("div", { className: "panel" },
    h("h3", {}, "Try it with curl"),
    h("p", {}, "The token goes in a header, so it stays out of URLs and logs:"),
    h("pre", { className: "curl" }, example),
    h("button", { type: "button", className: "small secondary", onclick: (e) => copy(example, e.currentTarget) }, "Copy curl"));
}

function rotatePanel(webhook, editor, reload) {
  const grace = h("input", { type: "number", min: 0, max: 2592000, value: 86400, name: "graceSeconds" });
  const status = notice();
  const result = h("div");
  const button = h("button", { type: "button", className: "secondary" }, "Rotate token");
  button.addEventListener("click", async () => {
    if (!(await confirmDialog(`Give ${webhook.eventKey} a new token? The old one keeps working for the grace period.`, "Rotate"))) return;
    busy(button, status, async () => {
      const { data } = await command("webhook.rotate", { uuid: webhook.uuid, graceSeconds: grace.value });
      replace(result, h("p", { role: "status" }, "New URL: ", h("code", { className: "url" }, data.webhookUrl),
        data.previousTokenExpiresAt ? h("span", {}, " — the old token works until ", time(data.previousTokenExpiresAt)) : null));
      await reload();
    });
  });
  return h("div", { className: "panel" }, h("h3", {}, "Rotate the token"),
    field("Grace seconds", grace, "how long the old token keeps working (0…2 592 000)"), button, status, result,
    webhook.verification ? h("p", {}, `Refused calls: ${webhook.verification.refused}`,
      webhook.verification.lastRefusal ? ` (last: ${webhook.verification.lastRefusal.code})` : "") : null);
}
