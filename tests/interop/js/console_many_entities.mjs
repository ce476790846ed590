// 1,000 queues on the overview: all listed, filtered, and updated every 2 s by two requests
// (not one per entity). Measures how long the first full render takes and the longest task
// the page runs while it keeps updating (printed, not asserted: the machine varies).
import { check, expectEq, log } from "./common.mjs";
import { consoleArgs, eventually, runConsoleScenario } from "./console_common.mjs";

const { base } = consoleArgs();

await runConsoleScenario("console_many_entities", async ({ page }) => {
  const requests = [];
  page.on("request", (request) => requests.push(new URL(request.url()).pathname));
  await page.addInitScript(() => {
    window.__longest = 0;
    new PerformanceObserver((list) => {
      for (const entry of list.getEntries()) window.__longest = Math.max(window.__longest, entry.duration);
    }).observe({ type: "longtask", buffered: true });
  });
  const started = Date.now();
  await page.goto(`${base}/`);
  await eventually("1,000 rows", () => page.locator("#entities tbody tr").count(), (n) => n === 1000, { timeoutMs: 30000 });
  const firstRender = Date.now() - started;
  check(await page.locator('#entities tr[data-path="queue-0999"]').count() === 1, "the last queue is listed");

  // Let it poll a few times, then count what it asked for.
  requests.length = 0;
  await page.evaluate(() => { window.__longest = 0; });
  const before = await page.locator("#live-text").textContent();
  await eventually("three more polls", () => page.evaluate(() => performance.getEntriesByType("resource")
    .filter((entry) => entry.name.endsWith("/api/queues")).length), (n) => n >= 4);
  const perEntity = requests.filter((path) => /\/api\/queues\/./.test(path) || path.includes("/messages"));
  expectEq(perEntity, [], "per-entity requests from the overview");
  const longest = await page.evaluate(() => window.__longest);
  log(`1,000 queues: first full render ${firstRender} ms after navigation; longest task while updating ${Math.round(longest)} ms (was live: ${before})`);

  await page.locator("input[type=search]").fill("queue-050");
  await eventually("the filter narrows to 10", () => page.locator("#entities tbody tr").count(), (n) => n === 10);
});
