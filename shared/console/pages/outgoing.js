// Outgoing webhooks: registrations (secrets and header values come masked
// from the API), each one's invocation records, an invocation's attempts as a
// timeline, and resend.

import { command, commandJson } from "../api.js";
import { badge, busy, errorBox, h, jsonBlock, notice, replace, table, time } from "../ui.js";

export async function render(view, [webhookId, referenceId]) {
  if (webhookId && referenceId) return invocation(view, webhookId, referenceId);
  if (webhookId) return invocations(view, webhookId);
  return registrations(view);
}

async function registrations(view) {
  const status = notice();
  const list = h("div", { id: "outgoing-list" });
  const reload = async () => {
    const { data } = await command("outgoing.get");
    replace(list, table([
      ["Id", (o) => h("a", { href: `#/outgoing/${encodeURIComponent(o.id)}` }, o.id)],
      ["Request", (o) => h("code", {}, `${o.method} ${o.url}`)],
      ["Headers", (o) => Object.entries(o.headers || {}).map(([k, v]) => h("div", {}, h("code", {}, `${k}: ${v}`)))],
      ["State", (o) => [o.enabled ? badge("enabled", "ok") : badge("disabled", "muted"), o.signed ? [" ", badge("signed", "muted")] : null]],
      ["Invocations", (o) => h("a", { className: "button small", href: `#/outgoing/${encodeURIComponent(o.id)}` }, "Invocations")],
    ], data, { empty: "No outgoing webhooks registered.", rowAttrs: (o) => ({ dataset: { outgoing: o.id } }) }));
  };
  const registration = h("textarea", { id: "registration", rows: 8, spellcheck: "false" });
  registration.value = JSON.stringify({ id: "crm-leads", url: "https://crm.example.com/api/leads", method: "POST", secret: "generate" }, null, 2);
  const register = h("button", { type: "button", id: "register" }, "Register");
  const registered = notice();
  register.addEventListener("click", () => busy(register, registered, async () => {
    let body;
    try {
      body = JSON.parse(registration.value);
    } catch (e) {
      throw { code: "invalid_json", message: `the registration is not JSON: ${e.message}` };
    }
    const { data } = await commandJson("outgoing.put", body);
    replace(registered, h("div", { className: "ok", role: "status" }, `Registered ${data.id}.`,
      data.secret ? [" Its signing secret, shown only now: ", h("code", {}, data.secret)] : null));
    await reload();
  }));
  replace(view,
    h("h1", {}, "Outgoing webhooks"),
    h("p", { className: "lead" }, "Registered endpoints that pipelines call with webhook.send. Credentials stay masked."),
    status, list,
    h("details", { className: "panel" }, h("summary", {}, "Register or change one (JSON, as outgoing.put takes it)"),
      h("label", { for: registration.id }, "Registration"), registration, h("div", { className: "actions" }, register), registered));
  try {
    await reload();
  } catch (err) {
    status.show(err);
  }
}

async function invocations(view, webhookId) {
  const { data } = await command("invocation.get", { webhookId, limit: 100 });
  replace(view,
    h("p", {}, h("a", { href: "#/outgoing" }, "← Outgoing webhooks")),
    h("h1", {}, "Invocations of ", h("code", {}, webhookId)),
    table([
      ["Created", (i) => h("a", { href: `#/outgoing/${encodeURIComponent(webhookId)}/${i.referenceId}`, className: "invocation-link" }, time(i.createdAt))],
      ["State", (i) => badge(i.state, i.state === "succeeded" ? "ok" : i.state === "failed" ? "error" : "processing")],
      ["Status", (i) => (i.status === undefined || i.status === null ? "—" : String(i.status))],
      ["Attempts", (i) => String((i.attempts || []).length)],
      ["Caller", (i) => i.caller || ""],
      ["Reference", (i) => h("code", {}, i.referenceId)],
    ], data, { empty: "No invocations in the last days.", rowAttrs: (i) => ({ dataset: { referenceId: i.referenceId } }) }));
}

async function invocation(view, webhookId, referenceId) {
  const { data: record } = await command("invocation.get", { referenceId });
  const status = notice();
  const resent = h("div", { id: "resend-result", "aria-live": "polite" });
  const resend = h("button", { type: "button", id: "resend" }, "Resend");
  resend.addEventListener("click", () => busy(resend, status, async () => {
    const { data } = await command("invocation.resend", { referenceId });
    replace(resent, h("div", { className: "panel" }, "Sent again as ",
      h("a", { href: `#/outgoing/${encodeURIComponent(webhookId)}/${data.referenceId}` }, data.referenceId), ": ",
      data.status === "processing" ? badge("processing") : badge(String(data.status), data.error ? "error" : "ok")));
  }));
  const request = record.request || {};
  replace(view,
    h("p", {}, h("a", { href: `#/outgoing/${encodeURIComponent(webhookId)}` }, `← Invocations of ${webhookId}`)),
    h("h1", {}, "Invocation ", h("code", {}, referenceId)),
    h("dl", { className: "facts" },
      h("dt", {}, "State"), h("dd", {}, badge(record.state, record.state === "succeeded" ? "ok" : record.state === "failed" ? "error" : "processing")),
      h("dt", {}, "Caller"), h("dd", {}, record.caller || "—"),
      h("dt", {}, "Request"), h("dd", {}, h("code", {}, `${request.method || ""} ${request.url || ""}`)),
      h("dt", {}, "Headers sent"), h("dd", {}, (request.headers || []).join(", ") || "—"),
      h("dt", {}, "Body"), h("dd", {}, `${request.bodyBytes ?? 0} B ${request.contentType || ""}`),
      record.correlationId ? [h("dt", {}, "Event"), h("dd", {}, h("a", { href: `#/events/${record.correlationId}` }, record.correlationId))] : null,
      record.resendOf ? [h("dt", {}, "Resend of"), h("dd", {}, h("a", { href: `#/outgoing/${encodeURIComponent(webhookId)}/${record.resendOf}` }, record.resendOf))] : null,
      record.nextAttemptAt ? [h("dt", {}, "Next attempt"), h("dd", {}, time(record.nextAttemptAt))] : null),
    h("div", { className: "toolbar" }, resend), status, resent,
    h("section", { className: "panel" }, h("h2", {}, "Attempts"),
      h("ol", { className: "timeline", id: "attempts" }, (record.attempts || []).map((a, i) =>
        h("li", { className: a.status >= 200 && a.status < 300 ? "attempt attempt-ok" : "attempt attempt-error" },
          h("strong", {}, `Attempt ${i + 1}`), " ", time(a.at), " · ",
          a.status ? badge(String(a.status), a.status < 300 ? "ok" : "error") : badge("no answer", "error"),
          a.durationMs !== undefined ? ` · ${a.durationMs} ms` : "",
          a.errorMessage ? h("div", { className: "muted" }, a.errorMessage) : null)))),
    record.errorMessage ? errorBox({ code: "failed", message: record.errorMessage }) : null,
    record.data !== undefined ? h("section", { className: "panel" }, h("h2", {}, "Answer"), jsonBlock(record.data)) : null);
}
