// Charts drawn as SVG by hand: a horizontal bar chart of the top rows, and a
// per-batch series (Spark's Streaming tab) with an optional limit line.

import { s, fmtInt, fmtMs, fmtTime } from "./dom.js";

const WIDTH = 480;

/** An SVG root that scales to its container's width. */
function svgRoot(width, height, title, cls) {
  return s("svg", { viewBox: `0 0 ${width} ${height}`, width: "100%", role: "img", "aria-label": title, class: cls });
}

/** Horizontal bars, largest first: items are `{label, value}`. */
export function barChart(items, { title }) {
  const rowHeight = 20;
  const labelWidth = 130;
  const valueWidth = 60;
  const height = Math.max(1, items.length) * rowHeight + 8;
  const max = Math.max(...items.map((i) => Math.abs(i.value)), 1);
  const span = WIDTH - labelWidth - valueWidth;
  const svg = svgRoot(WIDTH, height, title, "bar-chart");
  items.forEach((item, i) => {
    const y = 4 + i * rowHeight;
    const w = Math.max(1, (Math.abs(item.value) / max) * span);
    const label = item.label.length > 26 ? `${item.label.slice(0, 25)}…` : item.label;
    svg.append(
      s(
        "g",
        { class: "item", "data-label": item.label, "data-value": String(item.value) },
        s("title", {}, `${item.label}: ${item.value}`),
        s("text", { x: labelWidth - 6, y: y + 14, "text-anchor": "end" }, label),
        s("rect", { class: "bar", x: labelWidth, y: y + 2, width: w.toFixed(1), height: rowHeight - 5 }),
        s("text", { x: labelWidth + w + 4, y: y + 14 }, fmtInt(item.value)),
      ),
    );
  });
  return svg;
}

/**
 * One bar per batch, oldest on the left: points are `{batch_time, value}`.
 * `limit` draws a dashed line (the batch interval) and colours bars above it.
 */
export function seriesChart(points, { title, unit, limit, limitLabel, format = fmtInt }) {
  const WIDTH = 400;
  const height = 150;
  const left = 48;
  const top = 14;
  const bottom = 20;
  const plot = height - top - bottom;
  const max = Math.max(...points.map((p) => p.value), limit ?? 0, 1) * 1.1;
  const y = (v) => top + plot - (v / max) * plot;
  const slots = Math.max(points.length, 30);
  const step = (WIDTH - left - 4) / slots;
  const svg = svgRoot(WIDTH, height, title, "series-chart");
  svg.append(
    s("line", { class: "axis", x1: left, x2: WIDTH, y1: top + plot, y2: top + plot }),
    s("text", { x: left - 4, y: top + 4, "text-anchor": "end" }, format(max / 1.1)),
    s("text", { x: left - 4, y: top + plot, "text-anchor": "end" }, "0"),
    s("text", { x: WIDTH - 2, y: height - 4, "text-anchor": "end" }, unit),
  );
  if (points.length > 0) {
    svg.append(s("text", { x: left, y: height - 4 }, fmtTime(points[0].batch_time)));
  }
  points.forEach((p, i) => {
    const over = limit !== undefined && p.value > limit;
    const barTop = y(p.value);
    svg.append(
      s(
        "rect",
        {
          class: over ? "bar over" : "bar",
          x: (left + i * step + 1).toFixed(1),
          y: barTop.toFixed(1),
          width: Math.max(1, step - 2).toFixed(1),
          height: Math.max(0.5, top + plot - barTop).toFixed(1),
          "data-batch-time": String(p.batch_time),
          "data-value": String(p.value),
        },
        s("title", {}, `${fmtTime(p.batch_time)}: ${format(p.value)} ${unit}`),
      ),
    );
  });
  if (limit !== undefined) {
    svg.append(
      s("line", { class: "limit", x1: left, x2: WIDTH, y1: y(limit), y2: y(limit) }),
      s("text", { class: "limit-label", x: WIDTH - 2, y: y(limit) - 4, "text-anchor": "end" }, limitLabel),
    );
  }
  return svg;
}

/** The three charts of a query's batch health from its metrics history. */
export function healthCharts(history, intervalMs) {
  const pick = (f) => history.map((m) => ({ batch_time: m.batch_time, value: f(m) }));
  const interval = intervalMs ? `batch interval ${fmtMs(intervalMs)} ms` : "";
  return [
    ["Input rows per batch", seriesChart(pick((m) => m.input_rows), { title: "Input rows per batch", unit: "rows" })],
    [
      "Processing time",
      seriesChart(pick((m) => m.processing_us / 1000), {
        title: "Processing time per batch",
        unit: "ms",
        limit: intervalMs,
        limitLabel: interval,
        format: fmtMs,
      }),
    ],
    [
      "Scheduling delay",
      seriesChart(pick((m) => m.scheduling_delay_ms), {
        title: "Scheduling delay per batch",
        unit: "ms",
        limit: intervalMs,
        limitLabel: interval,
        format: fmtMs,
      }),
    ],
  ];
}
