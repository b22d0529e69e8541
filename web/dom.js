// Building DOM nodes. Text from the server always goes in as text, never as HTML.

/** h("td", {class: "num"}, "12") — attributes, then children (nodes, strings, arrays). */
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) continue;
    if (key.startsWith("on")) el.addEventListener(key.slice(2), value);
    else el.setAttribute(key, value === true ? "" : value);
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const child of children) {
    if (child === undefined || child === null || child === false) continue;
    if (Array.isArray(child)) append(el, child);
    else el.append(child instanceof Node ? child : String(child));
  }
}

const SVG = "http://www.w3.org/2000/svg";

/** An SVG element with attributes. */
export function s(tag, attrs = {}, ...children) {
  const el = document.createElementNS(SVG, tag);
  for (const [key, value] of Object.entries(attrs)) el.setAttribute(key, value);
  append(el, children);
  return el;
}

/**
 * Keeps one row per item in `tbody`, matched by `key`, so rows (and the focus on
 * their buttons) survive refreshes. `make(item)` builds a new row; `update(row, item)`
 * refreshes its cells.
 */
export function syncRows(tbody, items, key, make, update) {
  const old = new Map();
  for (const row of tbody.rows) old.set(row.dataset.key, row);
  let at = tbody.firstElementChild;
  for (const item of items) {
    const k = key(item);
    let row = old.get(k);
    if (row) old.delete(k);
    else {
      row = make(item);
      row.dataset.key = k;
    }
    update(row, item);
    if (row !== at) tbody.insertBefore(row, at);
    else at = at.nextElementSibling;
  }
  for (const row of old.values()) row.remove();
}

/** Sets a node's text only when it changed (no needless layout work). */
export function text(el, value) {
  const t = value === undefined || value === null ? "" : String(value);
  if (el.textContent !== t) el.textContent = t;
}

export function fmtInt(n) {
  return n === undefined || n === null ? "" : Number(n).toLocaleString("en-US");
}

export function fmtMs(ms) {
  if (ms === undefined || ms === null) return "";
  return ms < 10 ? ms.toFixed(2) : ms < 100 ? ms.toFixed(1) : Math.round(ms).toLocaleString("en-US");
}

/** A batch time (ms since the epoch) as UTC time of day, or the raw number on a clock near 0. */
export function fmtTime(ms) {
  if (ms === undefined || ms === null) return "";
  if (ms < 86_400_000 * 365) return `t=${ms} ms`;
  return new Date(ms).toISOString().replace("T", " ").replace(/\.000Z$/, "Z").replace(/Z$/, " UTC");
}

/** The status cell of a query, source or sink: `{state, error?}`. */
export function statusCell(td, status) {
  const state = status?.state ?? "unknown";
  const span = td.firstElementChild ?? td.appendChild(h("span"));
  span.className = `state ${state}`;
  text(span, state);
  const error = status?.error ?? "";
  let note = span.nextElementSibling;
  if (error && !note) note = td.appendChild(h("div", { class: "error-text" }));
  if (note) text(note, error);
}
