// The JSON API (docs/http-api.md), as the dashboard uses it.

export class ApiError extends Error {
  /** `status`: the HTTP status (0 when the server could not be reached); `body`: the error object. */
  constructor(status, body) {
    super(body?.message ?? `HTTP ${status}`);
    this.status = status;
    this.body = body ?? {};
  }
}

async function request(path, options = {}) {
  let response;
  try {
    response = await fetch(path, options);
  } catch (e) {
    throw new ApiError(0, { message: `the server cannot be reached (${e.message})` });
  }
  const body = await response.json().catch(() => null);
  if (!response.ok) throw new ApiError(response.status, body?.error ?? { message: response.statusText });
  return body;
}

export const getJson = (path) => request(path);

/** POST /sql: `{results}`, or an ApiError whose body has message, line, column, statement, applied. */
export const postSql = (sql) =>
  request("/sql", { method: "POST", headers: { "content-type": "text/plain" }, body: sql });

export const dropQuery = (name) => request(`/queries/${encodeURIComponent(name)}`, { method: "DELETE" });

export const queryPath = (name, rest = "") => `/queries/${encodeURIComponent(name)}${rest}`;
