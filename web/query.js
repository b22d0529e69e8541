// One query, live: its SQL, a results table fed by the SSE stream, a bar chart of the
// top rows by a chosen numeric column, and its batch health. The stream reconnects
// with `?after=` the last batch seen, so a server restart loses nothing retained.

import { getJson, dropQuery, queryPath, streamUrl, ApiError } from "./api.js";
import { h, text, fmtInt, fmtMs, fmtTime } from "./dom.js";
import { ResultTable, columnsOf } from "./table.js";
import { barChart, healthCharts } from "./chart.js";
import { every, server } from "./app.js";

/** Rows drawn in the bar chart. */
const TOP = 20;
/** Rows fetched for a cumulative query that emits only its updates. */
const STATE_ROWS = 10000;

export function queryPage(main, name) {
  const heading = h("h1", {}, "Query ", h("span", { class: "mono" }, name));
  const message = h("p", { role: "alert", class: "error-text" });
  const facts = h("ul", { class: "facts" });
  const sql = h("pre", { class: "sql" });
  const live = h("span", { class: "state", id: "live-status", role: "status", "aria-live": "polite" }, "connecting");
  const batchInfo = h("span", { id: "batch-info", class: "muted" });
  const lagNote = h("p", { class: "muted", "aria-live": "polite" });
  const stop = h("button", { type: "button", class: "danger" }, "Stop query");
  const chartColumn = h("select", { id: "chart-column" });
  const chartBox = h("div", { id: "bar-chart" });
  const results = new ResultTable({ label: `Results of ${name}` });
  results.table.id = "results";
  const health = h("div", { class: "charts", id: "health-charts" });
  main.append(
    h("div", { class: "row" }, heading, stop),
    message,
    facts,
    sql,
    h("h2", {}, "Latest results"),
    h("p", { class: "row" }, live, batchInfo),
    lagNote,
    h(
      "div",
      { class: "row" },
      h("label", { for: "chart-column" }, `Top ${TOP} rows by`),
      chartColumn,
    ),
    h("div", { class: "live-grid" }, chartBox, results.el),
    h("h2", {}, "Batch health"),
    health,
  );

  let details = null;
  let latest = null;
  let columns = [];
  let source = null;
  let lastId = null;
  let retryMs = 1000;
  let retryTimer = null;
  let stateTimer = null;
  let left = false;

  const setLive = (state, note = "") => {
    live.className = `state ${state}`;
    text(live, note ? `${state}: ${note}` : state);
  };

  /** The table and chart for one result batch (`{batch_time, [window_start, window_end,] rows}`). */
  function show(batch) {
    latest = batch;
    const windowed = batch.window_start !== undefined;
    const shownColumns = windowed
      ? [{ name: "window_start", numeric: false }, { name: "window_end", numeric: false }, ...columns]
      : columns;
    const rows = windowed
      ? batch.rows.map((r) => ({ window_start: fmtTime(batch.window_start), window_end: fmtTime(batch.window_end), ...r }))
      : batch.rows;
    results.setColumns(shownColumns);
    results.setRows(rows);
    results.table.dataset.batchTime = batch.batch_time ?? "";
    const parts = [];
    if (batch.batch_time !== null && batch.batch_time !== undefined) parts.push(`batch ${fmtTime(batch.batch_time)}`);
    if (windowed) parts.push(`window [${fmtTime(batch.window_start)}, ${fmtTime(batch.window_end)})`);
    parts.push(`${fmtInt(batch.rows.length)} rows`);
    text(batchInfo, parts.join(" · "));
    drawChart();
  }

  function drawChart() {
    const numeric = columns.filter((c) => c.numeric);
    const labels = columns.filter((c) => !c.numeric);
    const by = chartColumn.value;
    if (!latest || !by) {
      chartBox.replaceChildren(h("p", { class: "muted" }, numeric.length ? "No rows yet." : "No numeric column to chart."));
      return;
    }
    const label = (row, i) =>
      labels.length ? labels.map((c) => String(row[c.name] ?? "null")).join(" · ") : `row ${i + 1}`;
    const items = latest.rows
      .map((row, i) => ({ label: label(row, i), value: Number(row[by]) }))
      .filter((item) => Number.isFinite(item.value))
      .sort((a, b) => b.value - a.value)
      .slice(0, TOP);
    chartBox.replaceChildren(barChart(items, { title: `Top ${items.length} rows of ${name} by ${by}` }));
  }
  chartColumn.addEventListener("change", drawChart);

  /** A cumulative query emitting only updates: the table is its state, refetched at most once a second. */
  const emitsUpdates = () => details?.cumulative?.emit === "updates";
  function refetchState() {
    if (stateTimer) return;
    stateTimer = setTimeout(async () => {
      stateTimer = null;
      const by = chartColumn.value ? `&order_by=${encodeURIComponent(`${chartColumn.value} desc`)}` : "";
      try {
        show(await getJson(queryPath(name, `/state?limit=${STATE_ROWS}${by}`)));
      } catch (e) {
        text(message, `Cannot read the state: ${e.message}`);
      }
    }, 1000);
  }

  function connect() {
    if (left) return;
    const after = lastId !== null ? `?after=${lastId}` : "";
    source = new EventSource(streamUrl(queryPath(name, `/stream${after}`), server.authReads));
    source.addEventListener("open", () => {
      retryMs = 1000;
      setLive("live");
    });
    source.addEventListener("batch", (e) => {
      lastId = Number(e.lastEventId);
      if (emitsUpdates()) refetchState();
      else show(JSON.parse(e.data));
    });
    source.addEventListener("lagged", (e) => {
      const lag = JSON.parse(e.data);
      text(lagNote, `This page fell behind: ${fmtInt(lag.missed)} batches were skipped.`);
    });
    source.addEventListener("end", (e) => {
      source.close();
      if (JSON.parse(e.data).code === "shutdown") retry("the server is restarting");
      else {
        setLive("closed", "the query was dropped");
        stopPolling();
      }
    });
    source.addEventListener("error", () => {
      // Closed or refused (a restarting server): reconnect ourselves, after the
      // last batch seen.
      source.close();
      if (!left && !live.textContent.startsWith("closed")) retry();
    });
  }

  /** Reconnects after a pause that doubles up to 10 s. */
  function retry(note = "") {
    if (left) return;
    setLive("reconnecting", note);
    clearTimeout(retryTimer);
    retryTimer = setTimeout(reconnect, retryMs);
    retryMs = Math.min(retryMs * 2, 10000);
  }

  async function reconnect() {
    try {
      await load();
      connect();
    } catch (e) {
      if (e instanceof ApiError && e.status === 404) {
        setLive("closed", "the query no longer exists");
        stopPolling();
      } else retry(e.message);
    }
  }

  /** Reads the query's details; draws its facts, SQL, status and health charts. */
  async function load() {
    details = await getJson(queryPath(name));
    const newColumns = columnsOf(details.schema);
    if (JSON.stringify(newColumns) !== JSON.stringify(columns)) {
      columns = newColumns;
      const chosen = chartColumn.value;
      chartColumn.replaceChildren(
        ...columns.filter((c) => c.numeric).map((c) => h("option", { value: c.name }, c.name)),
      );
      if (columns.some((c) => c.numeric && c.name === chosen)) chartColumn.value = chosen;
    }
    text(sql, details.sql);
    const w = details.window;
    const m = details.metrics;
    const items = [
      ["kind", details.kind],
      ["status", details.status.state + (details.status.error ? `: ${details.status.error}` : "")],
      ["reads", details.inputs.join(", ")],
      w ? ["window", `${fmtMs(w.length_ms)} ms every ${fmtMs(w.slide_ms)} ms`] : null,
      details.cumulative ? ["state", `${fmtInt(details.cumulative.keys)} keys, emit ${details.cumulative.emit}`] : null,
      ["batches", fmtInt(m.batches)],
      ["rows out", fmtInt(m.output_rows_total)],
      ["subscribers", fmtInt(details.results.subscribers)],
    ].filter(Boolean);
    const key = JSON.stringify(items);
    if (facts.dataset.key !== key) {
      facts.dataset.key = key;
      facts.replaceChildren(...items.map(([k, v]) => h("li", {}, h("b", {}, `${k}: `), v)));
    }
    health.replaceChildren(
      ...healthCharts(m.history, server.intervalMs ?? undefined).map(([caption, svg]) =>
        h("figure", {}, h("figcaption", {}, caption), svg),
      ),
    );
  }

  stop.addEventListener("click", async () => {
    if (!stop.classList.contains("confirm")) {
      stop.classList.add("confirm");
      stop.textContent = "Confirm stop";
      setTimeout(() => {
        stop.classList.remove("confirm");
        stop.textContent = "Stop query";
      }, 5000);
      return;
    }
    stop.disabled = true;
    try {
      await dropQuery(name);
    } catch (e) {
      text(message, `Could not stop ${name}: ${e.message}`);
      stop.disabled = false;
    }
  });

  let stopPolling = () => {};
  (async () => {
    try {
      await load();
      const first = await getJson(queryPath(name, "/state"));
      if (first.batch_time !== null) {
        show(first);
        lastId = first.batch_time;
      } else {
        drawChart();
      }
      connect();
      // Status, facts and health charts; the table moves with the stream.
      stopPolling = every(1000, () => load().catch(() => {}));
    } catch (e) {
      setLive("closed");
      text(message, e instanceof ApiError && e.status === 404 ? `There is no query '${name}'.` : e.message);
    }
  })();

  return () => {
    left = true;
    source?.close();
    clearTimeout(retryTimer);
    clearTimeout(stateTimer);
    stopPolling();
  };
}
