// Shared helpers of the console's browser scenarios: headless Chromium through
// playwright-core (the system's browser: CHROMIUM, else /usr/bin/chromium), SAS tokens
// signed as the SDKs sign them, and screenshots for the docs.
//
// Every console scenario takes the connection string as argv[2] and the broker's HTTP base
// URL as argv[3]; the Python SDK's traffic runs with BUSBAR_PYTHON; screenshots go to
// BUSBAR_SCREENSHOTS when set (docs/console holds the ones the docs show).
import { createHmac } from "node:crypto";
import { mkdirSync } from "node:fs";
import { spawnSync } from "node:child_process";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { chromium } from "playwright-core";
import { ScenarioFailure, log } from "./common.mjs";

export function consoleArgs() {
  const conn = process.argv[2];
  const base = process.argv[3];
  if (!base || !conn) throw new ScenarioFailure("usage: node <script> CONNECTION_STRING HTTP_BASE_URL");
  return { base: base.replace(/\/$/, ""), conn };
}

/**
 * Runs the Python SDK traffic script (python/console_page_traffic.py) to completion: the
 * official SDK sending or dead-lettering while the page watches.
 */
export function pythonTraffic(conn, entity, mode, count, ...more) {
  const python = process.env.BUSBAR_PYTHON;
  if (!python) throw new ScenarioFailure("BUSBAR_PYTHON must name the virtualenv's python");
  const script = fileURLToPath(new URL("../python/console_page_traffic.py", import.meta.url));
  log(`python: ${mode} ${count} to ${entity}`);
  const result = spawnSync(python, ["-u", script, conn, entity, mode, String(count), ...more.map(String)], {
    cwd: dirname(script), encoding: "utf8", timeout: 60000,
  });
  if (result.status !== 0) {
    throw new ScenarioFailure(`console_page_traffic.py ${mode} failed (${result.status}):\n${result.stdout}${result.stderr}`);
  }
}

/** A namespace token as the SDKs make one: HMAC-SHA256 over the encoded URI and expiry. */
export function sasToken(base, keyName, key, lifetimeSeconds = 3600) {
  const uri = encodeURIComponent(base);
  const expiry = Math.floor(Date.now() / 1000) + lifetimeSeconds;
  const signature = createHmac("sha256", key).update(`${uri}\n${expiry}`).digest("base64");
  return `SharedAccessSignature sr=${uri}&sig=${encodeURIComponent(signature)}&se=${expiry}&skn=${encodeURIComponent(keyName)}`;
}

export async function launch() {
  const browser = await chromium.launch({
    executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
    args: ["--no-sandbox", "--disable-dev-shm-usage"],
  });
  const context = await browser.newContext({ viewport: { width: 1360, height: 860 }, deviceScaleFactor: 1 });
  const page = await context.newPage();
  const problems = [];
  page.on("pageerror", (error) => problems.push(`page error: ${error.message}`));
  page.on("console", (message) => {
    if (message.type() === "error" && !/status of 40[14]/.test(message.text())) problems.push(`console error: ${message.text()}`);
  });
  page.setDefaultTimeout(20000);
  return { browser, context, page, problems };
}

/** Saves a screenshot named `name` when the run asks for them. */
export async function screenshot(page, name, options = {}) {
  const dir = process.env.BUSBAR_SCREENSHOTS;
  if (!dir) return;
  mkdirSync(dir, { recursive: true });
  await dismissReports(page);
  await page.screenshot({ path: join(dir, `${name}.png`), ...options });
  log(`screenshot ${name}.png`);
}

/** Waits until `read()` answers a value `accept` takes, polling the page; fails naming `what`. */
export async function eventually(what, read, accept, { timeoutMs = 20000 } = {}) {
  const deadline = Date.now() + timeoutMs;
  let last;
  for (;;) {
    last = await read();
    if (accept(last)) return last;
    if (Date.now() > deadline) throw new ScenarioFailure(`${what}: still ${JSON.stringify(last)} after ${timeoutMs / 1000}s`);
    await new Promise((resolve) => setTimeout(resolve, 250));
  }
}

/** The number in an overview cell of entity `path` and `column` (0 when it shows "–" or nothing). */
export async function overviewCount(page, path, column) {
  const columns = { active: 2, dead_letter: 3, scheduled: 4, deferred: 5, transfer: 6 };
  const text = await page.locator(`#entities tr[data-path="${path}"] td`).nth(columns[column]).textContent();
  return Number(text.replace(/[^0-9]/g, "") || 0);
}

/**
 * Confirms the open dialog with the button labelled `label`, after dismissing earlier
 * reports (a click closes one), so `lastReport` reads this action's.
 */
export async function confirmDialog(page, label) {
  await dismissReports(page);
  await page.locator(`#dialog[open] button[data-action="${label}"]`).click();
}

/** Dismisses the reports on screen (a click closes one; dispatched, as a modal may be open). */
export async function dismissReports(page) {
  for (const toast of await page.locator("#toasts .toast").all()) await toast.dispatchEvent("click").catch(() => {});
  await eventually("reports dismissed", () => page.locator("#toasts .toast").count(), (n) => n === 0);
}

/** The text of the newest report (toast). */
export async function lastReport(page) {
  await page.locator("#toasts .toast").last().waitFor();
  return page.locator("#toasts .toast").last().textContent();
}

/** Runs a scenario: the browser is closed, page errors fail it, exit codes as in common.mjs. */
export async function runConsoleScenario(name, body) {
  let session;
  try {
    session = await launch();
    await body(session);
    if (session.problems.length) throw new ScenarioFailure(session.problems.join("\n"));
    log(`PASS ${name}`);
    await session.browser.close();
    process.exit(0);
  } catch (error) {
    await session?.browser.close().catch(() => {});
    if (error instanceof ScenarioFailure) {
      console.error(`FAIL ${name}: ${error.message}`);
      process.exit(1);
    }
    console.error(`ERROR ${name}: ${error.stack ?? error}`);
    process.exit(2);
  }
}

/** The number an entity page shows for `key` (active, dead_letter, ...). */
export async function entityStat(page, key) {
  const text = await page.locator(`#entity-stats [data-stat="${key}"] .value`).textContent();
  return Number(text.replace(/[^0-9]/g, "") || 0);
}

/** The sequence numbers the message browser lists, in order. */
export async function listedSequenceNumbers(page) {
  return page.locator("#messages tbody tr[data-seq]").evaluateAll((rows) => rows.map((row) => Number(row.dataset.seq)));
}

/** Opens a state tab of the message browser and waits for its list. */
export async function openState(page, state) {
  await page.locator(`#states button[data-state="${state}"]`).click();
  await page.locator(`#states button[data-state="${state}"][aria-selected="true"]`).waitFor();
  await page.locator("#messages tbody tr").first().waitFor();
  await eventually(`the ${state} list loaded`, () => page.locator("#messages tbody").textContent(), (text) => !text.includes("Loading"));
}
