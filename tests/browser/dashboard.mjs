// The dashboard in a real browser: Debian's headless Chromium driven by playwright-core,
// against the real sluice binary on the manual clock. Run by tests/integration/dashboard.rs
// (so by `cargo test` and scripts/test.sh); by hand:
//   SLUICE_BIN=target/debug/sluice node tests/browser/dashboard.mjs
//
// Environment: SLUICE_BIN (the binary, required), SLUICE_CHROMIUM (default /usr/bin/chromium),
// SLUICE_WORK (a scratch directory), SLUICE_SCREENSHOT (where to save the screenshot).

import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { mkdtempSync, writeFileSync, existsSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createRequire } from "node:module";
import { chromium } from "playwright-core";

const AXE = createRequire(import.meta.url).resolve("axe-core/axe.min.js");

const BIN = process.env.SLUICE_BIN;
const CHROMIUM = process.env.SLUICE_CHROMIUM ?? "/usr/bin/chromium";
const WORK = process.env.SLUICE_WORK ?? mkdtempSync(join(tmpdir(), "sluice-dashboard-"));
const SCREENSHOT = process.env.SLUICE_SCREENSHOT ?? join(WORK, "dashboard.png");
assert.ok(BIN, "SLUICE_BIN must name the sluice binary");
assert.ok(existsSync(CHROMIUM), `no Chromium at ${CHROMIUM}: scripts/test.sh installs Debian's chromium`);

// The whole run is bounded: a hung browser or server fails the test, never stalls CI.
const deadline = setTimeout(() => fail(new Error("the browser test took over 240 s")), 240_000);

let server = null;
let browser = null;
let step = "start";
function log(message) {
  console.log(`[dashboard] ${message}`);
}
async function fail(error) {
  console.error(`[dashboard] FAILED during '${step}': ${error.stack ?? error}`);
  server?.kill("SIGKILL");
  await browser?.close().catch(() => {});
  process.exit(1);
}
process.on("unhandledRejection", fail);

const freePort = () =>
  new Promise((resolve) => {
    const probe = createServer();
    probe.listen(0, "127.0.0.1", () => {
      const { port } = probe.address();
      probe.close(() => resolve(port));
    });
  });
const port = await freePort();
const BASE = `http://127.0.0.1:${port}`;
const INIT = join(WORK, "init.sql");
writeFileSync(
  INIT,
  `CREATE SOURCE demo (line TEXT) FROM GENERATOR WITH (rate = '200');
CREATE STREAM words AS SELECT unnest(string_to_array(line, ' ')) AS word FROM demo;
`,
);

/** Starts the binary on the manual clock (T = 1 s) and waits until /health answers. */
async function startServer(at = port, data = "data", extra = []) {
  const child = spawn(
    BIN,
    ["serve", "--clock", "manual", "--batch-interval", "1s", "--addr", `127.0.0.1:${at}`, "--data-dir", join(WORK, data), "--init", INIT, ...extra],
    { stdio: ["ignore", "ignore", "inherit"], env: { ...process.env, RUST_LOG: "warn" } },
  );
  const exited = new Promise((resolve) => child.on("exit", resolve));
  for (let i = 0; i < 200; i += 1) {
    try {
      const r = await fetch(`http://127.0.0.1:${at}/health`);
      if (r.ok) return { child, exited };
    } catch {
      // not listening yet
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error("the server did not answer /health within 20 s");
}

async function api(path, options) {
  const r = await fetch(`${BASE}${path}`, options);
  return { status: r.status, body: await r.json() };
}
const advance = (batches) => api("/clock/advance", { method: "POST", body: JSON.stringify({ batches }) });
const sql = (text) => api("/sql", { method: "POST", body: text });

server = (await startServer()).child;
let running = server;

browser = await chromium.launch({
  executablePath: CHROMIUM,
  // As root in a sandbox-less VM with no network beyond loopback.
  args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync"],
});
const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
page.setDefaultTimeout(20_000);

// Every console error and uncaught exception fails the test, except those a step
// expects: the 400 of bad SQL, and refused connections while the server restarts.
const consoleErrors = [];
let allowed = [];
page.on("console", (m) => {
  if (m.type() !== "error") return;
  const entry = `${m.text()} (${m.location().url})`;
  if (!allowed.some((re) => re.test(entry))) consoleErrors.push(`[${step}] ${entry}`);
});
page.on("pageerror", (e) => consoleErrors.push(`[${step}] uncaught: ${e.message}`));

/** The results table: its batch time and rows as `[{cell...}]` by header name. */
async function tableRows() {
  return page.evaluate(() => {
    const table = document.querySelector("#results");
    const names = [...table.querySelectorAll("thead th")].map((th) => th.textContent.trim());
    const rows = [...table.querySelectorAll("tbody tr")].map((tr) =>
      Object.fromEntries([...tr.cells].map((td, i) => [names[i], td.textContent])),
    );
    return { batchTime: Number(table.dataset.batchTime), rows };
  });
}

async function barItems() {
  return page.$$eval("#bar-chart g.item", (gs) => gs.map((g) => ({ label: g.dataset.label, value: Number(g.dataset.value) })));
}

/** axe-core's WCAG 2 A and AA rules (contrast, labels, names, ARIA) on the page as it is now. */
async function checkAccessibility(what) {
  await page.addScriptTag({ path: AXE });
  const result = await page.evaluate(() =>
    window.axe.run(document, { runOnly: { type: "tag", values: ["wcag2a", "wcag2aa"] } }),
  );
  const problems = result.violations.map(
    (v) => `${v.id} (${v.impact}): ${v.help}; ${v.nodes.slice(0, 3).map((n) => n.target.join(" ")).join(", ")}`,
  );
  assert.deepEqual(problems, [], `accessibility of ${what}`);
  accessibilityChecks.push(what);
}
const accessibilityChecks = [];

const waitBatch = (t) =>
  page.waitForFunction((t) => document.querySelector("#results")?.dataset.batchTime === String(t), t);

/** The page's table and chart hold exactly the batch `t` of GET /queries/{name}/results. */
async function checkAgainstApi(name, t) {
  const { body } = await api(`/queries/${name}/results?after=${t - 1}&limit=1`);
  const batch = body.batches[0];
  assert.equal(batch.batch_time, t);
  const shown = await tableRows();
  assert.equal(shown.batchTime, t);
  assert.deepEqual(
    shown.rows.map((r) => [r.word, Number(r.n)]),
    batch.rows.map((r) => [r.word, r.n]),
    "the table shows the API's rows in its order",
  );
  const top = [...batch.rows].sort((a, b) => b.n - a.n).slice(0, 20);
  const bars = await barItems();
  assert.equal(bars.length, top.length, "one bar per top row");
  assert.deepEqual(
    bars.map((b) => b.value),
    top.map((r) => r.n),
    "bars are the top counts, largest first",
  );
  const byWord = new Map(batch.rows.map((r) => [r.word, r.n]));
  for (const bar of bars) assert.equal(bar.value, byWord.get(bar.label), `the bar of '${bar.label}'`);
  return batch;
}

try {
  step = "overview";
  await page.goto(`${BASE}/`);
  await page.locator("table[aria-label=Sources] tbody tr", { hasText: "demo" }).waitFor();
  const sourceRow = await page.locator("table[aria-label=Sources] tbody tr").first().innerText();
  assert.match(sourceRow, /demo\s+generator/);
  assert.match(sourceRow, /connected/);
  await checkAccessibility("the overview");
  log("overview lists the generator source");

  step = "editor: create a query";
  await page.getByRole("link", { name: "SQL editor" }).click();
  await page.locator("#sql-input").fill(
    "CREATE QUERY top_words AS\n  SELECT word, count(*) AS n FROM words GROUP BY word\n  WINDOW SLIDING 3s EVERY 1s",
  );
  await page.locator("#sql-input").press("Control+Enter");
  await page.locator("#sql-output h3", { hasText: "CREATE QUERY top_words" }).waitFor();
  await page.getByRole("link", { name: "Watch top_words live" }).click();
  await page.locator("#live-status", { hasText: /^live$/ }).waitFor();
  log("the editor created top_words; its page is live");

  step = "live results";
  await advance(3);
  await waitBatch(3000);
  let batch = await checkAgainstApi("top_words", 3000);
  assert.ok(batch.rows.length > 0, "the generator's words are counted");
  assert.match(await page.locator("#batch-info").innerText(), /window \[t=0 ms, t=3000 ms\)/);
  const first = (await tableRows()).rows[0];
  assert.equal(first.window_start, "t=0 ms");
  assert.equal(first.window_end, "t=3000 ms");
  await advance(1);
  await waitBatch(4000);
  await checkAgainstApi("top_words", 4000);
  await checkAccessibility("a query's live page");
  log(`table and chart match GET /results at batches 3000 and 4000 (${batch.rows.length} rows)`);

  step = "sort";
  await page.locator("#results thead button", { hasText: /^n$/ }).click();
  await page.waitForFunction(() => document.querySelector("#results thead th:last-child").getAttribute("aria-sort") === "descending");
  const sorted = (await tableRows()).rows.map((r) => Number(r.n));
  assert.deepEqual(sorted, [...sorted].sort((a, b) => b - a), "sorted by n, descending");

  step = "cumulative state";
  await sql("CREATE QUERY totals AS SELECT word, count(*) AS n FROM words GROUP BY word WINDOW CUMULATIVE EMIT UPDATES");
  await page.goto(`${BASE}/#/query/totals`);
  await page.locator("#live-status", { hasText: /^live$/ }).waitFor();
  await advance(2);
  await waitBatch(6000);
  const state = (await api("/queries/totals/state")).body;
  assert.equal(state.batch_time, 6000);
  const byWord = (a, b) => a[0].localeCompare(b[0]);
  assert.deepEqual(
    (await tableRows()).rows.map((r) => [r.word, Number(r.n)]).sort(byWord),
    state.rows.map((r) => [r.word, r.n]).sort(byWord),
    "an EMIT UPDATES query shows its whole current table",
  );
  assert.match(await page.locator(".facts").innerText(), /emit updates/);
  log(`the cumulative query shows its whole state (${state.rows.length} keys) at batch 6000`);

  step = "batch health";
  await page.goto(`${BASE}/#/query/top_words`);
  await page.locator("#live-status", { hasText: /^live$/ }).waitFor();
  await advance(6);
  await waitBatch(12000);
  await page.waitForFunction(() => document.querySelectorAll("#health-charts figure:nth-child(2) rect.bar").length === 12);
  assert.equal(await page.locator("#health-charts line.limit").count(), 2, "the interval line on processing time and delay");
  await page.locator("#server", { hasText: "last batch t=12000 ms" }).waitFor();
  await page.screenshot({ path: SCREENSHOT, fullPage: true });
  log(`screenshot saved to ${SCREENSHOT}`);
  await page.getByRole("link", { name: "Batch health" }).click();
  await page.locator("table[aria-label='Queries and streams'] tbody tr", { hasText: "top_words" }).waitFor();
  await page.getByRole("link", { name: "top_words", exact: true }).click();
  await page.waitForURL(/#\/health\/top_words$/);
  await page.locator("h2", { hasText: "top_words: the last 12 batches" }).waitFor();
  // One read of the DOM: the bars once there are 12 of them.
  const bars12 = await page.waitForFunction(() => {
    const rects = [...document.querySelectorAll("#health-charts figure:first-child rect.bar")];
    return rects.length === 12 && rects.map((r) => Number(r.dataset.value));
  });
  const inputBars = await bars12.jsonValue();
  const history = (await api("/queries/top_words")).body.metrics.history.map((m) => m.input_rows);
  assert.deepEqual(inputBars, history, "input rows per batch as the API reports them");
  await checkAccessibility("batch health");
  log("batch health charts show the query's 12 batches");

  step = "restart";
  allowed = [/ERR_CONNECTION_REFUSED/, /Failed to load resource/];
  await page.goto(`${BASE}/#/query/top_words`);
  await page.locator("#live-status", { hasText: /^live$/ }).waitFor();
  await waitBatch(12000);
  const stopped = new Promise((resolve) => running.on("exit", resolve));
  running.kill("SIGTERM");
  await stopped;
  await page.locator("#live-status", { hasText: "reconnecting" }).waitFor();
  server = running = (await startServer()).child;
  await page.locator("#live-status", { hasText: /^live$/ }).waitFor({ timeout: 30_000 });
  allowed = [];
  await advance(1);
  await waitBatch(13000);
  await checkAgainstApi("top_words", 13000);
  log("after SIGTERM and a restart the page reconnected and shows batch 13000");

  step = "bad SQL";
  const bad = "SELECT word,\n  count(* FROM words";
  const expected = (await sql(bad)).body.error;
  allowed = [/status of 400.*\/sql\)$/];
  await page.getByRole("link", { name: "SQL editor" }).click();
  await page.locator("#sql-input").fill(bad);
  await page.getByRole("button", { name: "Run", exact: true }).click();
  const error = page.locator("#sql-error");
  await error.waitFor();
  allowed = [];
  assert.ok((await error.innerText()).includes(expected.message), "the server's message");
  assert.match(await error.innerText(), new RegExp(`line ${expected.line}, column ${expected.column}`));
  assert.equal(await page.locator("#sql-error li.at").getAttribute("value"), String(expected.line));
  assert.equal(await page.locator("#sql-error li.at mark").innerText(), bad.split("\n")[expected.line - 1][expected.column - 1]);
  const caret = await page.locator("#sql-input").evaluate((t) => [t.selectionStart, document.activeElement === t]);
  const lines = bad.split("\n");
  const offset = lines.slice(0, expected.line - 1).reduce((n, l) => n + l.length + 1, 0) + expected.column - 1;
  assert.deepEqual(caret, [offset, true], "the caret is put at the error");
  await checkAccessibility("the editor showing an error");
  log(`bad SQL shows '${expected.message}' at line ${expected.line}, column ${expected.column}`);

  step = "10k rows per batch";
  await sql("CREATE SOURCE big (line TEXT) FROM GENERATOR WITH (rate = '10000'); CREATE QUERY every_line AS SELECT line, length(line) AS len FROM big");
  await page.goto(`${BASE}/#/query/every_line`);
  await page.locator("#live-status", { hasText: /^live$/ }).waitFor();
  assert.ok(await page.evaluate(() => PerformanceObserver.supportedEntryTypes.includes("longtask")), "long tasks are observable");
  await page.evaluate(() => {
    window.longTasks = [];
    new PerformanceObserver((list) => window.longTasks.push(...list.getEntries().map((e) => e.duration))).observe({ type: "longtask" });
  });
  await advance(1);
  await page.locator(".pager", { hasText: "Rows 1–50 of 10,000" }).waitFor();
  assert.equal(await page.locator("#results tbody tr").count(), 50, "one page of rows in the DOM");
  await page.getByRole("button", { name: "Next page" }).click();
  await page.locator(".pager", { hasText: "Rows 51–100 of 10,000" }).waitFor();
  assert.equal(await page.locator("#bar-chart g.item").count(), 20);
  const longest = await page.evaluate(() => Math.max(0, ...window.longTasks));
  assert.ok(longest < 500, `the page stays responsive: longest task ${longest} ms`);
  log(`10 000 rows: 50 rendered, paginated; longest main-thread task ${Math.round(longest)} ms`);

  step = "100 queries";
  const many = Array.from({ length: 97 }, (_, i) => `CREATE QUERY q${String(i).padStart(3, "0")} AS SELECT count(*) AS n FROM demo;`);
  assert.equal((await sql(many.join("\n"))).status, 200);
  await page.getByRole("link", { name: "Overview" }).click();
  await page.waitForFunction(() => document.querySelectorAll("table[aria-label=Queries] tbody tr").length === 100);
  await advance(1);
  await page.waitForFunction(() => [...document.querySelectorAll("table[aria-label=Queries] tbody tr")].every((tr) => tr.cells[3].textContent === "t=15000 ms"));
  log("the overview lists 100 queries and follows their batches");

  step = "stop a query";
  await page.getByLabel("Filter queries by name").fill("top_words");
  await page.waitForFunction(() => document.querySelectorAll("table[aria-label=Queries] tbody tr").length === 1);
  const stop = page.getByRole("button", { name: "Stop query top_words" });
  await stop.focus();
  await page.keyboard.press("Enter");
  await page.locator("table[aria-label=Queries] button", { hasText: "Confirm stop" }).waitFor();
  await page.keyboard.press("Enter");
  await page.waitForFunction(() => document.querySelectorAll("table[aria-label=Queries] tbody tr").length === 0);
  assert.equal((await api("/queries/top_words")).status, 404, "the query is dropped");
  log("Stop (from the keyboard) dropped top_words");

  step = "token";
  // A server with --auth-token and --auth-reads: the dashboard asks once, then
  // sends the token with every request and on its event stream.
  const TOKEN = "dashboard-t0ken";
  const securePort = await freePort();
  const SECURE = `http://127.0.0.1:${securePort}`;
  const secure = (await startServer(securePort, "secure", ["--auth-token", TOKEN, "--auth-reads"])).child;
  const authed = { authorization: `Bearer ${TOKEN}` };
  await fetch(`${SECURE}/sql`, { method: "POST", headers: authed, body: "CREATE QUERY lines AS SELECT count(*) AS n FROM demo" });
  allowed = [/status of 401/];
  await page.goto(`${SECURE}/`);
  await page.locator("#token-form").waitFor();
  await checkAccessibility("the token form");
  await page.getByLabel("Token (the server's --auth-token)").fill(TOKEN);
  await page.keyboard.press("Enter");
  await page.locator("table[aria-label=Sources] tbody tr", { hasText: "demo" }).waitFor();
  allowed = [];
  assert.equal(await page.locator("#token-form").count(), 0, "asked once");
  await page.goto(`${SECURE}/#/query/lines`);
  await page.locator("#live-status", { hasText: /^live$/ }).waitFor();
  await fetch(`${SECURE}/clock/advance`, { method: "POST", headers: authed, body: "{}" });
  await page.waitForFunction(() => document.querySelector("#results")?.dataset.batchTime === "1000");
  assert.deepEqual((await tableRows()).rows, [{ n: "200" }]);
  secure.kill("SIGTERM");
  log("with --auth-token --auth-reads the dashboard asked for the token once and streamed with it");

  step = "console";
  assert.deepEqual(consoleErrors, [], "no console errors");
  log(`no console errors; no axe-core WCAG 2 A/AA violations on ${accessibilityChecks.join(", ")}`);
} catch (e) {
  await page.screenshot({ path: join(WORK, "failure.png"), fullPage: true }).catch(() => {});
  await fail(e);
}

await browser.close();
running.kill("SIGTERM");
clearTimeout(deadline);
log("all checks passed");
