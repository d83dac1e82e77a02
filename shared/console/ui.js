// Small DOM helpers. Every text goes in through textContent (never innerHTML),
// so nothing from an event, a pipeline or an endpoint can become markup.

/** An element: h("button", {type: "button", onclick: f}, "Save"). */
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) continue;
    if (key.startsWith("on") && typeof value === "function") {
      el.addEventListener(key.slice(2), value);
    } else if (key === "className") {
      el.className = value;
    } else if (key === "dataset") {
      Object.assign(el.dataset, value);
    } else if (key === "value" || key === "checked") {
      el[key] = value;
    } else {
      el.setAttribute(key, value === true ? "" : String(value));
    }
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const child of children.flat()) {
    if (child === undefined || child === null || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
}

/** Empties `el` and fills it with `children`. */
export function replace(el, ...children) {
  el.replaceChildren();
  append(el, children);
  return el;
}

let nextId = 0;
/** A labelled control: the label names it for screen readers and clicks. */
export function field(labelText, control, hint) {
  if (!control.id) control.id = `field-${++nextId}`;
  const hintEl = hint ? h("small", { id: `${control.id}-hint`, className: "hint" }, hint) : null;
  if (hintEl) control.setAttribute("aria-describedby", hintEl.id);
  return h("div", { className: "field" }, h("label", { for: control.id }, labelText), control, hintEl);
}

/** The box showing an API error: its code and message, never swallowed. */
export function errorBox(error) {
  const code = error && error.code ? error.code : "error";
  const message = error && error.message ? error.message : String(error);
  const extra = [];
  if (error && error.details && error.details.line) extra.push(` (line ${error.details.line})`);
  return h("div", { className: "error", role: "alert" },
    h("code", { className: "error-code" }, code), " ", h("span", { className: "error-message" }, message), extra);
}

/** A place for the outcome of an action: an error, or a short confirmation. */
export function notice() {
  const el = h("div", { className: "notice-area", "aria-live": "polite" });
  el.show = (error) => replace(el, errorBox(error));
  el.ok = (text) => replace(el, h("div", { className: "ok", role: "status" }, text));
  el.clear = () => replace(el);
  return el;
}

/** A table; `columns` are [header, (row) => cell] pairs. Wrapped to scroll on narrow screens. */
export function table(columns, rows, { empty = "Nothing here yet.", caption, rowAttrs } = {}) {
  if (rows.length === 0) return h("p", { className: "empty" }, empty);
  return h("div", { className: "table-wrap" },
    h("table", {},
      caption ? h("caption", {}, caption) : null,
      h("thead", {}, h("tr", {}, columns.map(([title]) => h("th", { scope: "col" }, title)))),
      h("tbody", {}, rows.map((row) =>
        h("tr", rowAttrs ? rowAttrs(row) : {}, columns.map(([, cell]) => h("td", {}, cell(row))))))));
}

/** A status as a coloured badge (ok, error, processing, enabled…). */
export function badge(text, kind = text) {
  return h("span", { className: `badge badge-${kind}` }, text);
}

/** Pretty JSON in a <pre>. */
export function jsonBlock(value, attrs = {}) {
  return h("pre", { className: "json", ...attrs }, JSON.stringify(value, null, 2));
}

/** An ISO time in the reader's local time, with the exact value on hover. */
export function time(iso) {
  if (!iso) return "—";
  const date = new Date(iso);
  return h("time", { datetime: iso, title: iso }, date.toLocaleString());
}

/** A modal question; resolves true when confirmed. Keyboard: Enter confirms, Escape cancels. */
export function confirmDialog(question, confirmText = "Delete") {
  return new Promise((resolve) => {
    const dialog = h("dialog", { className: "confirm", "aria-label": "Confirm" },
      h("p", {}, question),
      h("form", { method: "dialog" },
        h("button", { value: "cancel", className: "secondary" }, "Cancel"),
        " ",
        h("button", { value: "confirm", className: "danger", autofocus: true }, confirmText)));
    dialog.addEventListener("close", () => {
      resolve(dialog.returnValue === "confirm");
      dialog.remove();
    });
    document.body.append(dialog);
    dialog.showModal();
  });
}

/** Copies `text`; says so on `button`. */
export async function copy(text, button) {
  const label = button.textContent;
  try {
    await navigator.clipboard.writeText(text);
    button.textContent = "Copied";
  } catch {
    // Not a secure context (http on another host): select it for Ctrl+C instead.
    window.prompt("Copy with Ctrl+C:", text);
  }
  setTimeout(() => (button.textContent = label), 1500);
}

/** Runs `action` with `button` disabled, showing any error in `where`. */
export async function busy(button, where, action) {
  button.disabled = true;
  if (where) where.clear();
  try {
    return await action();
  } catch (e) {
    if (where) where.show(e);
    else throw e;
  } finally {
    button.disabled = false;
  }
}

/**
 * A stored body decoded for reading: pretty JSON, text, or a hex dump for
 * bytes. `origin` is base64 (payloadType base64), a JSON value (raw), or null.
 */
export function decodePayload(origin, contentType = "") {
  if (origin === null || origin === undefined) return { kind: "empty", text: "(no body)" };
  if (typeof origin !== "string") return { kind: "json", text: JSON.stringify(origin, null, 2) };
  let bytes;
  try {
    bytes = Uint8Array.from(atob(origin), (c) => c.charCodeAt(0));
  } catch {
    return { kind: "text", text: origin };
  }
  let text;
  try {
    text = new TextDecoder("utf-8", { fatal: true }).decode(bytes);
  } catch {
    return { kind: "hex", text: hexDump(bytes) };
  }
  if (/json/i.test(contentType) || /^\s*[[{]/.test(text)) {
    try {
      return { kind: "json", text: JSON.stringify(JSON.parse(text), null, 2) };
    } catch {
      // Not JSON after all: shown as text.
    }
  }
  return { kind: "text", text };
}

/** Offset, 16 bytes in hex, and their printable characters, per line (first 4 KiB). */
export function hexDump(bytes) {
  const lines = [];
  const shown = bytes.subarray(0, 4096);
  for (let offset = 0; offset < shown.length; offset += 16) {
    const row = shown.subarray(offset, offset + 16);
    const hex = Array.from(row, (b) => b.toString(16).padStart(2, "0")).join(" ");
    const chars = Array.from(row, (b) => (b >= 32 && b < 127 ? String.fromCharCode(b) : ".")).join("");
    lines.push(`${offset.toString(16).padStart(8, "0")}  ${hex.padEnd(47)}  ${chars}`);
  }
  if (bytes.length > shown.length) lines.push(`… ${bytes.length - shown.length} more bytes`);
  return lines.join("\n");
}

/** `key=value` pairs of the page's hash (#/page/id?key=value). */
export function hashQuery() {
  const at = location.hash.indexOf("?");
  return new URLSearchParams(at < 0 ? "" : location.hash.slice(at + 1));
}
