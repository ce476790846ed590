// Requests to the broker's JSON APIs with the console's token. The token lives in
// sessionStorage only (gone when the tab closes); a read refused with 401 means the token
// is missing, expired or without rights, and the page falls back to the sign-in form.

const TOKEN_KEY = "busbar.console.token";

export class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

let onUnauthorized = () => {};

/** Called when a read is refused with 401 (the app shows the sign-in form). */
export function setUnauthorizedHandler(handler) {
  onUnauthorized = handler;
}

export function token() {
  return sessionStorage.getItem(TOKEN_KEY);
}

export function forgetToken() {
  sessionStorage.removeItem(TOKEN_KEY);
}

function keep(answer) {
  const value = String(answer.token ?? "");
  const header = value.startsWith("SharedAccessSignature") ? value : `SharedAccessSignature ${value}`;
  sessionStorage.setItem(TOKEN_KEY, header);
}

/** The development shortcut: on loopback with the development key the broker hands out a token. */
export async function tryDevelopmentToken() {
  try {
    const response = await fetch("/api/console/token", { headers: { Accept: "application/json" } });
    if (!response.ok) return false;
    keep(await response.json());
    return true;
  } catch {
    return false;
  }
}

/** Exchanges a key for a token; throws ApiError when the broker refuses the key. */
export async function signIn(keyName, key) {
  const response = await fetch("/api/console/token", {
    method: "POST",
    headers: { "Content-Type": "application/json", Accept: "application/json" },
    body: JSON.stringify({ key_name: keyName, key }),
  });
  if (!response.ok) throw new ApiError(response.status, await errorText(response));
  keep(await response.json());
}

async function errorText(response) {
  const text = await response.text();
  try {
    const parsed = JSON.parse(text);
    if (parsed && typeof parsed.error === "string") return parsed.error;
  } catch {
    // Not JSON: the text itself, or the status.
  }
  return text.trim() || `${response.status} ${response.statusText}`;
}

/**
 * One request. `body` (when given) is sent as JSON. Answers the parsed JSON (or text for
 * non-JSON answers); throws ApiError with the broker's `error` otherwise.
 */
export async function request(method, path, body) {
  const headers = { Accept: "application/json" };
  const stored = token();
  if (stored) headers.Authorization = stored;
  if (body !== undefined) headers["Content-Type"] = "application/json";
  let response;
  try {
    response = await fetch(path, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
    });
  } catch (error) {
    throw new ApiError(0, `the broker did not answer (${error.message})`);
  }
  if (!response.ok) {
    const message = await errorText(response);
    if (response.status === 401 && method === "GET") onUnauthorized(message);
    throw new ApiError(response.status, message);
  }
  if (response.status === 204) return null;
  const type = response.headers.get("Content-Type") ?? "";
  return type.includes("json") ? response.json() : response.text();
}

export const get = (path) => request("GET", path);
export const post = (path, body) => request("POST", path, body ?? {});
export const put = (path, body) => request("PUT", path, body ?? {});
export const del = (path) => request("DELETE", path);

/** `?a=1&b=2` from an object, leaving out null and undefined values. */
export function query(params) {
  const search = new URLSearchParams();
  for (const [name, value] of Object.entries(params)) {
    if (value !== null && value !== undefined && value !== "") search.set(name, String(value));
  }
  const text = search.toString();
  return text ? `?${text}` : "";
}

/** A path segment for an entity, rule or subscription name. */
export const seg = (name) => encodeURIComponent(name);
