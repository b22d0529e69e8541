// Batch health, as Spark's Streaming tab: for every query and stream whether it keeps
// up with the batch interval, and for the chosen one, charts over its last batches
// of input rows, processing time and scheduling delay with the interval drawn as a line.

import { getJson, queryPath } from "./api.js";
import { h, syncRows, text, statusCell, fmtInt, fmtMs } from "./dom.js";
import { healthCharts } from "./chart.js";
import { every, server } from "./app.js";

const COLUMNS = [
  ["name"],
  ["kind"],
  ["status"],
  ["batches", "num"],
  ["processing ms", "num"],
  ["scheduling delay ms", "num"],
  ["verdict"],
];

/** Behind when the last batch started more than one interval late, or took longer than one. */
function verdict(last, intervalMs) {
  if (!last || !intervalMs) return ["", "waiting for a batch"];
  if (last.scheduling_delay_ms > intervalMs || last.processing_us / 1000 > intervalMs) {
    return ["behind", "falling behind"];
  }
  return ["ok", "keeping up"];
}

export function healthPage(main, chosen) {
  const body = h("tbody");
  const title = h("h2", {});
  const charts = h("div", { class: "charts", id: "health-charts" });
  const note = h("p", { class: "muted" });
  main.append(
    h("h1", {}, "Batch health"),
    h(
      "p",
      { class: "muted" },
      "Each batch must finish within the batch interval T; a query whose processing time or scheduling delay stays above the dashed line falls further behind with every batch.",
    ),
    h(
      "table",
      { "aria-label": "Queries and streams" },
      h("thead", {}, h("tr", {}, COLUMNS.map(([n, cls]) => h("th", { scope: "col", class: cls }, n)))),
      body,
    ),
    title,
    note,
    charts,
  );

  async function refresh() {
    let all;
    try {
      const [q, s] = await Promise.all([getJson("/queries"), getJson("/streams")]);
      all = [...q.queries, ...s.streams];
    } catch (e) {
      text(note, `Cannot refresh: ${e.message}`);
      return;
    }
    syncRows(
      body,
      all,
      (x) => x.name,
      (x) => {
        const row = h("tr", {}, COLUMNS.map(([, cls]) => h("td", { class: cls })));
        row.cells[0].append(h("a", { href: `#/health/${encodeURIComponent(x.name)}` }, x.name));
        return row;
      },
      (row, x) => {
        const c = row.cells;
        const last = x.last_batch;
        const [cls, words] = verdict(last, server.intervalMs);
        text(c[1], x.kind);
        statusCell(c[2], x.status);
        text(c[3], fmtInt(x.batches));
        text(c[4], last ? fmtMs(last.processing_us / 1000) : "");
        text(c[5], last ? fmtInt(last.scheduling_delay_ms) : "");
        c[6].className = `state ${cls}`;
        text(c[6], words);
      },
    );
    const name = chosen ?? all[0]?.name;
    if (!name) {
      text(title, "");
      text(note, "No query runs yet: create one in the SQL editor.");
      charts.replaceChildren();
      return;
    }
    const entry = all.find((x) => x.name === name);
    if (!entry) {
      text(title, "");
      text(note, `There is no query or stream '${name}'.`);
      charts.replaceChildren();
      return;
    }
    const isStream = entry.kind === "stream";
    try {
      const details = await getJson(isStream ? `/streams/${encodeURIComponent(name)}` : queryPath(name));
      text(title, `${name}: the last ${details.metrics.history.length} batches`);
      text(note, server.intervalMs ? `T = ${fmtMs(server.intervalMs)} ms` : "");
      charts.replaceChildren(
        ...healthCharts(details.metrics.history, server.intervalMs ?? undefined).map(([caption, svg]) =>
          h("figure", {}, h("figcaption", {}, caption), svg),
        ),
      );
    } catch (e) {
      text(note, e.message);
      charts.replaceChildren();
    }
  }

  return every(1000, refresh);
}
