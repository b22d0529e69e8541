// The JSON API (docs/http-api.md), as the dashboard uses it.

export class ApiError extends Error {
  /** `status`: the HTTP status (0 when the server could not be reached); `body`: the error object. */
  constructor(status, body) {
    super(body?.message ?? `HTTP ${status}`);
    this.status = status;
    this.body = body ?? {};
  }
}

// The server's --auth-token, asked for once and kept in this browser.
const TOKEN = "sluice.token";
export const getToken = () => localStorage.getItem(TOKEN);
export const setToken = (token) => localStorage.setItem(TOKEN, token);
export const forgetToken = () => localStorage.removeItem(TOKEN);

/** Called on a 401, so the page can ask for the token. */
let unauthorized = () => {};
export const onUnauthorized = (handler) => {
  unauthorized = handler;
};

async function request(path, options = {}) {
  const token = getToken();
  const headers = { ...(options.headers ?? {}) };
  if (token) headers.authorization = `Bearer ${token}`;
  let response;
  try {
    response = await fetch(path, { ...options, headers });
  } catch (e) {
    throw new ApiError(0, { message: `the server cannot be reached (${e.message})` });
  }
  const body = await response.json().catch(() => null);
  if (response.status === 401) unauthorized(body?.error?.message ?? "this server needs a token");
  if (!response.ok) throw new ApiError(response.status, body?.error ?? { message: response.statusText });
  return body;
}

/** A URL for EventSource, which cannot send headers: the token goes in the query when reads need it. */
export function streamUrl(path, readsNeedToken) {
  const token = getToken();
  if (!token || !readsNeedToken) return path;
  return `${path}${path.includes("?") ? "&" : "?"}access_token=${encodeURIComponent(token)}`;
}

export const getJson = (path) => request(path);

/** POST /sql: `{results}`, or an ApiError whose body has message, line, column, statement, applied. */
export const postSql = (sql) =>
  request("/sql", { method: "POST", headers: { "content-type": "text/plain" }, body: sql });

export const dropQuery = (name) => request(`/queries/${encodeURIComponent(name)}`, { method: "DELETE" });

export const queryPath = (name, rest = "") => `/queries/${encodeURIComponent(name)}${rest}`;
