// Every call the console makes to hookflow's API: the same /api/v3 commands as
// curl and the CLI. The admin token lives in this tab's sessionStorage only
// and goes out as `Authorization: Bearer`; parameters travel in a form body,
// never in the URL, so no webhook token lands in an access log or history.

const TOKEN_KEY = "hookflow.adminToken";

/** An error answer of the API (or a failure to reach it), with its stable code. */
export class ApiError extends Error {
  constructor(status, code, message, details = {}) {
    super(message);
    this.status = status;
    this.code = code;
    this.details = details;
  }
}

export function token() {
  return sessionStorage.getItem(TOKEN_KEY);
}

export function signIn(value) {
  sessionStorage.setItem(TOKEN_KEY, value);
}

export function signOut() {
  sessionStorage.removeItem(TOKEN_KEY);
}

/** Called when the API answers 401: the token is wrong or was changed. */
let onUnauthorized = () => {};
export function whenUnauthorized(handler) {
  onUnauthorized = handler;
}

/** Runs command `name` with `params` (strings; undefined ones left out) as a form body. */
export function command(name, params = {}) {
  const form = new URLSearchParams();
  for (const [key, value] of Object.entries(params)) {
    if (value !== undefined && value !== null) form.set(key, String(value));
  }
  return send(name, "application/x-www-form-urlencoded", form.toString());
}

/** Runs command `name` with a JSON body (`outgoing.put`, `webhook.send`). */
export function commandJson(name, body) {
  return send(name, "application/json", JSON.stringify(body));
}

async function send(name, contentType, body) {
  const answer = await call(`/api/v3/command/${encodeURIComponent(name)}`, {
    method: "POST",
    headers: { Authorization: `Bearer ${token()}`, "Content-Type": contentType },
    body,
  });
  if (answer.status === 401) onUnauthorized(answer.error);
  if (answer.error) throw answer.error;
  return answer;
}

/** `GET /api/v3/health`: true when storage answers. */
export async function health() {
  const answer = await call("/api/v3/health", { method: "GET" });
  return answer.status === 200;
}

/**
 * One request. Resolves to {status, data, headers}, with `error` (an ApiError)
 * for a 4xx/5xx answer; a network failure is an ApiError with status 0.
 */
async function call(path, init) {
  let response;
  try {
    response = await fetch(path, { ...init, cache: "no-store", credentials: "omit" });
  } catch (e) {
    const error = new ApiError(0, "network_error", `hookflow did not answer: ${e.message}`);
    return { status: 0, error };
  }
  const text = await response.text();
  let data = null;
  try {
    data = text === "" ? null : JSON.parse(text);
  } catch {
    data = text;
  }
  const answer = { status: response.status, data, headers: response.headers };
  if (!response.ok) {
    const err = data && typeof data === "object" && data.error ? data.error : {};
    answer.error = new ApiError(
      response.status,
      err.code || `http_${response.status}`,
      err.message || `hookflow answered ${response.status}`,
      err,
    );
  }
  return answer;
}
