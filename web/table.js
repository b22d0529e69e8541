// A results table: sortable by any column, one page of rows in the DOM at a time,
// so a batch of 10 000 rows costs one sort and 50 rows of rendering.

import { h, text, fmtInt } from "./dom.js";

const NUMERIC = /^(U?Int|Float|Decimal)/;

/** Columns of a schema (`[{name, type}]`) as `{name, numeric}`. */
export function columnsOf(schema) {
  return (schema ?? []).map((f) => ({ name: f.name, numeric: NUMERIC.test(f.type) }));
}

function compare(a, b) {
  if (a === b) return 0;
  if (a === null || a === undefined) return -1;
  if (b === null || b === undefined) return 1;
  if (typeof a === "number" && typeof b === "number") return a - b;
  return String(a).localeCompare(String(b));
}

function show(value) {
  if (value === null || value === undefined) return "null";
  if (typeof value === "object") return JSON.stringify(value);
  return String(value);
}

export class ResultTable {
  constructor({ label, pageSize = 50 }) {
    this.pageSize = pageSize;
    this.columns = [];
    this.rows = [];
    this.view = [];
    this.sort = null; // {column, descending}
    this.page = 0;
    this.head = h("thead");
    this.body = h("tbody");
    this.table = h("table", { "aria-label": label }, this.head, this.body);
    this.count = h("span", { "aria-live": "polite" });
    this.prev = h("button", { type: "button", onclick: () => this.turn(-1) }, "Previous page");
    this.next = h("button", { type: "button", onclick: () => this.turn(1) }, "Next page");
    this.el = h("div", { class: "result-table" }, this.table, h("div", { class: "pager" }, this.count, this.prev, this.next));
  }

  setColumns(columns) {
    const same =
      columns.length === this.columns.length && columns.every((c, i) => c.name === this.columns[i].name);
    this.columns = columns;
    if (this.sort && !columns.some((c) => c.name === this.sort.column)) this.sort = null;
    if (!same) this.renderHead();
    this.reorder();
  }

  setRows(rows) {
    this.rows = rows ?? [];
    this.reorder();
  }

  sortBy(column, descending) {
    this.sort = { column, descending };
    this.page = 0;
    this.renderHead();
    this.reorder();
  }

  turn(step) {
    this.page += step;
    this.render();
  }

  reorder() {
    if (this.sort) {
      const { column, descending } = this.sort;
      const sign = descending ? -1 : 1;
      this.view = [...this.rows].sort((a, b) => sign * compare(a[column], b[column]));
    } else {
      this.view = this.rows;
    }
    this.render();
  }

  renderHead() {
    const cells = this.columns.map((c) => {
      const sorted = this.sort?.column === c.name;
      const next = sorted ? !this.sort.descending : c.numeric;
      return h(
        "th",
        {
          scope: "col",
          class: c.numeric ? "num" : null,
          "aria-sort": sorted ? (this.sort.descending ? "descending" : "ascending") : "none",
        },
        h(
          "button",
          {
            type: "button",
            class: "sort",
            title: `Sort by ${c.name}`,
            onclick: () => this.sortBy(c.name, next),
          },
          c.name,
        ),
      );
    });
    this.head.replaceChildren(h("tr", {}, cells));
  }

  render() {
    const pages = Math.max(1, Math.ceil(this.view.length / this.pageSize));
    this.page = Math.min(Math.max(this.page, 0), pages - 1);
    const first = this.page * this.pageSize;
    const slice = this.view.slice(first, first + this.pageSize);
    this.body.replaceChildren(
      ...slice.map((row) =>
        h(
          "tr",
          {},
          this.columns.map((c) => h("td", { class: c.numeric ? "num" : null }, show(row[c.name]))),
        ),
      ),
    );
    text(
      this.count,
      this.view.length === 0
        ? "No rows"
        : `Rows ${fmtInt(first + 1)}–${fmtInt(first + slice.length)} of ${fmtInt(this.view.length)}`,
    );
    this.prev.disabled = this.page === 0;
    this.next.disabled = this.page >= pages - 1;
  }
}
