// The dashboard's entry: a hash router over four pages and the server's status line.
//   #/            overview: queries, streams, sources, sinks
//   #/query/NAME  one query, live
//   #/health[/NAME]  batch health (Spark's Streaming tab)
//   #/sql         the SQL editor

import { getJson, getToken, setToken, forgetToken, onUnauthorized } from "./api.js";
import { h, text, fmtMs, fmtTime } from "./dom.js";
import { overviewPage } from "./overview.js";
import { queryPage } from "./query.js";
import { healthPage } from "./health.js";
import { editorPage } from "./editor.js";

/** What every page may read: the server's batch interval, clock and auth, refreshed every 2 s. */
export const server = { intervalMs: null, clock: null, authReads: false };

const main = document.getElementById("main");
const status = document.getElementById("server");
let leave = null;

/** Runs `task` now and then `ms` after each run ends; returns a stop function. */
export function every(ms, task) {
  let timer = null;
  let stopped = false;
  const run = async () => {
    try {
      await task();
    } finally {
      if (!stopped) timer = setTimeout(run, ms);
    }
  };
  run();
  return () => {
    stopped = true;
    clearTimeout(timer);
  };
}

function route() {
  const path = location.hash.replace(/^#\/?/, "");
  const [page, ...rest] = path.split("/");
  const arg = rest.length > 0 ? decodeURIComponent(rest.join("/")) : null;
  leave?.();
  leave = null;
  main.replaceChildren();
  for (const link of document.querySelectorAll("[data-nav]")) {
    if (link.dataset.nav === (page || "overview")) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
  if (page === "" || page === "overview") leave = overviewPage(main);
  else if (page === "query" && arg) leave = queryPage(main, arg);
  else if (page === "health") leave = healthPage(main, arg);
  else if (page === "sql") leave = editorPage(main);
  else {
    main.append(Object.assign(document.createElement("h1"), { textContent: "Not found" }));
    main.append(Object.assign(document.createElement("p"), { textContent: `No page '${path}'.` }));
  }
}

/**
 * Asks for the token once, when a request is refused with 401: the answer is kept
 * in this browser (localStorage) and sent as `Authorization: Bearer` from then on.
 */
function askForToken(reason) {
  if (document.getElementById("token-form")) return;
  const input = h("input", { id: "token-input", type: "password", autocomplete: "current-password", required: true });
  const form = h(
    "form",
    { id: "token-form", class: "token-form", "aria-labelledby": "token-title" },
    h("h2", { id: "token-title" }, "This server needs an access token"),
    h("p", {}, getToken() ? `The saved token was refused: ${reason}` : `${reason}.`),
    h("label", { for: "token-input" }, "Token (the server's --auth-token)"),
    " ",
    input,
    " ",
    h("button", { type: "submit", class: "primary" }, "Save"),
  );
  form.addEventListener("submit", (e) => {
    e.preventDefault();
    setToken(input.value.trim());
    form.remove();
    route();
  });
  if (getToken()) forgetToken();
  document.body.insertBefore(form, main);
  input.focus();
}
onUnauthorized(askForToken);

async function pollServer() {
  try {
    const health = await getJson("/health");
    server.intervalMs = health.batch_interval_ms;
    server.clock = health.clock;
    server.authReads = health.auth?.reads ?? false;
    status.classList.remove("down");
    const last = health.last_batch_time === null ? "no batch yet" : `last batch ${fmtTime(health.last_batch_time)}`;
    text(status, `server ok · T = ${fmtMs(health.batch_interval_ms)} ms · ${health.clock} clock · ${last}`);
  } catch (e) {
    status.classList.add("down");
    text(status, `server unreachable, retrying (${e.message})`);
  }
}

window.addEventListener("hashchange", () => {
  route();
  main.focus();
});
every(2000, pollServer);
route();
