// The SQL editor: statements go to POST /sql; each result is shown, or the error
// with its line and column marked in the text (and the caret moved there).

import { postSql, ApiError } from "./api.js";
import { h, text } from "./dom.js";
import { ResultTable } from "./table.js";

const KEPT = "sluice.editor";

/** Offset in `sql` of 1-based `line` and `column`. */
function offsetOf(sql, line, column) {
  const lines = sql.split("\n");
  let offset = 0;
  for (let i = 0; i < line - 1 && i < lines.length; i += 1) offset += lines[i].length + 1;
  return Math.min(sql.length, offset + Math.max(0, column - 1));
}

/** The lines around the error, numbered, with the error line and column marked. */
function errorListing(sql, line, column) {
  const lines = sql.split("\n");
  const first = Math.max(1, line - 2);
  const last = Math.min(lines.length, line + 2);
  const items = [];
  for (let n = first; n <= last; n += 1) {
    const content = lines[n - 1];
    if (n === line) {
      const at = Math.min(Math.max(column - 1, 0), content.length);
      const mark = content.slice(at, at + 1) || " ";
      items.push(
        h(
          "li",
          { value: n, class: "at", "aria-current": "true" },
          content.slice(0, at),
          h("mark", { title: `line ${line}, column ${column}` }, mark),
          content.slice(at + 1),
        ),
      );
    } else {
      items.push(h("li", { value: n }, content));
    }
  }
  return h("ol", { start: first }, items);
}

function showResult(result) {
  const heading = [result.statement];
  if (result.name) heading.push(" ", h("span", { class: "mono" }, result.name));
  const parts = [h("h3", {}, heading)];
  if (result.statement === "CREATE QUERY" && result.name) {
    parts.push(h("p", {}, h("a", { href: `#/query/${encodeURIComponent(result.name)}` }, `Watch ${result.name} live`)));
  }
  if (Array.isArray(result.rows)) {
    const names = [...new Set(result.rows.flatMap((r) => Object.keys(r)))];
    const table = new ResultTable({ label: `${result.statement} result`, pageSize: 100 });
    table.setColumns(names.map((name) => ({ name, numeric: result.rows.every((r) => typeof r[name] === "number") })));
    table.setRows(result.rows);
    parts.push(table.el);
  } else {
    const rest = Object.fromEntries(Object.entries(result).filter(([k]) => k !== "statement"));
    if (Object.keys(rest).length > 0) parts.push(h("pre", {}, JSON.stringify(rest, null, 2)));
  }
  return h("section", { class: "result" }, parts);
}

export function editorPage(main) {
  const input = h("textarea", {
    id: "sql-input",
    spellcheck: "false",
    autocapitalize: "off",
    "aria-describedby": "sql-hint",
  });
  input.value = sessionStorage.getItem(KEPT) ?? "SHOW SOURCES;";
  const run = h("button", { type: "button", class: "primary", id: "sql-run" }, "Run");
  const output = h("div", { id: "sql-output", "aria-live": "polite" });
  main.append(
    h("h1", {}, "SQL editor"),
    h(
      "div",
      { class: "editor" },
      h("label", { for: "sql-input" }, "Statements"),
      h(
        "p",
        { id: "sql-hint", class: "muted" },
        "Separate statements with ';'. Ctrl+Enter (⌘+Enter) runs them; Tab moves on to the Run button. See docs/sql.md for the dialect.",
      ),
      input,
      h("p", {}, run),
    ),
    output,
  );

  input.addEventListener("input", () => sessionStorage.setItem(KEPT, input.value));
  input.addEventListener("keydown", (e) => {
    if (e.key === "Enter" && (e.ctrlKey || e.metaKey)) {
      e.preventDefault();
      submit();
    }
  });
  run.addEventListener("click", submit);

  async function submit() {
    const sql = input.value;
    if (!sql.trim()) return;
    run.disabled = true;
    text(run, "Running…");
    try {
      const { results } = await postSql(sql);
      output.replaceChildren(...results.map(showResult));
      if (results.length === 0) output.replaceChildren(h("p", { class: "muted" }, "Nothing to run."));
    } catch (e) {
      output.replaceChildren(failure(sql, e));
    } finally {
      run.disabled = false;
      text(run, "Run");
    }
  }

  function failure(sql, e) {
    const body = e instanceof ApiError ? e.body : { message: String(e) };
    const box = h("div", { class: "sql-error", role: "alert", id: "sql-error" }, h("strong", {}, "Error: "), body.message);
    if (body.line) {
      const where = `line ${body.line}, column ${body.column}`;
      box.append(
        h("p", { class: "where" }, `At ${where}${body.statement ? ` (statement ${body.statement})` : ""}.`),
        errorListing(sql, body.line, body.column),
      );
      const at = offsetOf(sql, body.line, body.column);
      input.focus();
      input.setSelectionRange(at, Math.min(sql.length, at + 1));
    }
    if (Array.isArray(body.applied) && body.applied.length > 0) {
      box.append(
        h("p", {}, `Applied before the error (${body.applied.length}):`),
        h("ul", {}, body.applied.map((r) => h("li", {}, [r.statement, r.name].filter(Boolean).join(" ")))),
      );
    }
    return box;
  }

  return () => {};
}
