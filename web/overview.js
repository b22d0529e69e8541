// The overview: every query (with a stop button), stream, source and sink, refreshed
// every second. Rows are kept by name between refreshes, so a focused button stays
// focused; 100 queries are 100 rows updated in place.

import { getJson, dropQuery } from "./api.js";
import { h, syncRows, text, statusCell, fmtInt, fmtMs, fmtTime } from "./dom.js";
import { every, server } from "./app.js";

function table(label, headers) {
  const body = h("tbody");
  const el = h(
    "table",
    { "aria-label": label },
    h("thead", {}, h("tr", {}, headers.map(([name, cls]) => h("th", { scope: "col", class: cls }, name)))),
    body,
  );
  return { el, body };
}

/** A row of empty cells with the classes of `headers`. */
function blankRow(headers) {
  return h("tr", {}, headers.map(([, cls]) => h("td", { class: cls })));
}

/** Makes rows whose first cell is the item's name as text. */
const namedRow = (headers) => (x) => {
  const row = blankRow(headers);
  text(row.cells[0], x.name);
  return row;
};

const QUERY_COLUMNS = [
  ["name"],
  ["kind"],
  ["status"],
  ["last batch"],
  ["processing ms", "num"],
  ["rows in", "num"],
  ["rows out", "num"],
  ["total rows out", "num"],
  ["actions"],
];
const STREAM_COLUMNS = QUERY_COLUMNS.slice(0, 7);
const SOURCE_COLUMNS = [
  ["name"],
  ["kind"],
  ["address"],
  ["status"],
  ["rows/s", "num"],
  ["rows", "num"],
  ["bad rows", "num"],
  ["latest bad records"],
];
const SINK_COLUMNS = [["name"], ["kind"], ["query"], ["status"], ["rows", "num"], ["batches", "num"], ["failed batches", "num"]];

export function overviewPage(main) {
  const filter = h("input", {
    type: "search",
    placeholder: "filter by name",
    "aria-label": "Filter queries by name",
    oninput: () => refresh(),
  });
  const message = h("p", { role: "status", "aria-live": "polite", class: "error-text" });
  const queries = table("Queries", QUERY_COLUMNS);
  const streams = table("Streams", STREAM_COLUMNS);
  const sources = table("Sources", SOURCE_COLUMNS);
  const sinks = table("Sinks", SINK_COLUMNS);
  const queryCount = h("span", { class: "muted" });
  main.append(
    h("h1", {}, "Overview"),
    h("div", { class: "row" }, h("h2", {}, "Queries ", queryCount), filter),
    message,
    queries.el,
    h("h2", {}, "Sources"),
    sources.el,
    h("h2", {}, "Streams"),
    streams.el,
    h("h2", {}, "Sinks"),
    sinks.el,
  );

  const stopButton = (name) => {
    let armed = null;
    const button = h("button", { type: "button", class: "danger", "aria-label": `Stop query ${name}` }, "Stop");
    button.addEventListener("click", async () => {
      if (!armed) {
        // A second click within 5 s confirms: no modal dialog, keyboard-friendly.
        button.classList.add("confirm");
        button.textContent = "Confirm stop";
        armed = setTimeout(() => {
          armed = null;
          button.classList.remove("confirm");
          button.textContent = "Stop";
        }, 5000);
        return;
      }
      clearTimeout(armed);
      button.disabled = true;
      try {
        await dropQuery(name);
        text(message, "");
        await refresh();
      } catch (e) {
        text(message, `Could not stop ${name}: ${e.message}`);
        button.disabled = false;
      }
    });
    return button;
  };

  const fillQuery = (row, q, withActions) => {
    const c = row.cells;
    const last = q.last_batch;
    text(c[1], q.kind);
    statusCell(c[2], q.status);
    text(c[3], last ? fmtTime(last.batch_time) : "none yet");
    text(c[4], last ? fmtMs(last.processing_us / 1000) : "");
    text(c[5], last ? fmtInt(last.input_rows) : "");
    text(c[6], last ? fmtInt(last.output_rows) : "");
    if (withActions) text(c[7], fmtInt(q.output_rows_total));
  };

  const sourceRate = (s) => {
    if (!server.intervalMs || !s.last_batch) return "";
    return fmtInt(Math.round((s.last_batch.rows * 1000) / server.intervalMs));
  };

  async function refresh() {
    let q, st, so, si;
    try {
      [q, st, so, si] = await Promise.all([
        getJson("/queries"),
        getJson("/streams"),
        getJson("/sources"),
        getJson("/sinks"),
      ]);
    } catch (e) {
      text(message, `Cannot refresh: ${e.message}`);
      return;
    }
    const wanted = filter.value.trim().toLowerCase();
    const shown = q.queries.filter((x) => x.name.toLowerCase().includes(wanted));
    text(queryCount, `(${shown.length === q.queries.length ? q.queries.length : `${shown.length} of ${q.queries.length}`})`);
    syncRows(
      queries.body,
      shown,
      (x) => x.name,
      (x) => {
        const row = blankRow(QUERY_COLUMNS);
        row.cells[0].append(h("a", { href: `#/query/${encodeURIComponent(x.name)}` }, x.name));
        row.cells[8].append(stopButton(x.name));
        return row;
      },
      (row, x) => fillQuery(row, x, true),
    );
    syncRows(
      streams.body,
      st.streams,
      (x) => x.name,
      namedRow(STREAM_COLUMNS),
      (row, x) => fillQuery(row, x, false),
    );
    syncRows(
      sources.body,
      so.sources,
      (x) => x.name,
      namedRow(SOURCE_COLUMNS),
      (row, x) => {
        const c = row.cells;
        text(c[1], x.kind);
        text(c[2], [x.address, x.topic].filter(Boolean).join(" · "));
        statusCell(c[3], x.status);
        text(c[4], sourceRate(x));
        text(c[5], fmtInt(x.counters.rows));
        text(c[6], fmtInt(x.counters.bad_rows));
        const samples = x.bad_samples.slice(-3).reverse();
        const key = JSON.stringify(samples);
        if (c[7].dataset.samples !== key) {
          c[7].dataset.samples = key;
          c[7].replaceChildren(
            samples.length === 0
              ? ""
              : h(
                  "details",
                  {},
                  h("summary", {}, `${samples.length} latest`),
                  samples.map((b) => h("pre", {}, `${b.kind}: ${b.error}\n${b.record}`)),
                ),
          );
        }
      },
    );
    syncRows(
      sinks.body,
      si.sinks,
      (x) => x.name,
      namedRow(SINK_COLUMNS),
      (row, x) => {
        const c = row.cells;
        text(c[1], x.kind);
        text(c[2], x.query);
        statusCell(c[3], x.status);
        text(c[4], fmtInt(x.counters.rows));
        text(c[5], fmtInt(x.counters.batches));
        text(c[6], fmtInt(x.counters.failed_batches));
      },
    );
  }

  return every(1000, refresh);
}
