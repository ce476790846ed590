// The overview, live: opened on loopback with the development key (no key form), it shows
// every queue, topic and subscription; while the Python SDK sends, the counts, the totals
// and the incoming rate move on the page without a reload.
import { check, log } from "./common.mjs";
import { consoleArgs, eventually, overviewCount, pythonTraffic, runConsoleScenario, screenshot } from "./console_common.mjs";

const { base, conn } = consoleArgs();

await runConsoleScenario("console_live_counts", async ({ page }) => {
  await page.goto(`${base}/`);
  await page.locator('#entities tr[data-path="orders"]').waitFor();
  check(await page.locator("#signin").isHidden(), "the key form shows on loopback with the development key");
  for (const path of ["payments", "events", "events/Subscriptions/audit", "events/Subscriptions/billing"]) {
    await page.locator(`#entities tr[data-path="${path}"]`).waitFor();
  }
  check(await overviewCount(page, "orders", "active") === 0, "orders starts empty");

  pythonTraffic(conn, "orders", "send", 5);
  await eventually("orders' active count after 5 sends", () => overviewCount(page, "orders", "active"), (n) => n === 5);
  pythonTraffic(conn, "orders", "send", 7);
  await eventually("orders' active count after 12 sends", () => overviewCount(page, "orders", "active"), (n) => n === 12);
  const incoming = await eventually("orders' incoming rate",
    () => page.locator('#entities tr[data-path="orders"] td').nth(7).textContent(), (text) => Number(text) > 0);
  log(`orders: 12 active, incoming ${incoming}/s`);

  pythonTraffic(conn, "events", "publish", 4);
  await eventually("billing gets every published message", () => overviewCount(page, "events/Subscriptions/billing", "active"), (n) => n === 4);
  // audit's rule takes amount > 100: the even orders (120 + n).
  await eventually("audit gets the big ones", () => overviewCount(page, "events/Subscriptions/audit", "active"), (n) => n === 2);
  pythonTraffic(conn, "payments", "dead-letter", 3);
  await eventually("payments' dead letters", () => overviewCount(page, "payments", "dead_letter"), (n) => n === 3);

  const total = (key) => page.locator(`[data-total="${key}"] .value`).textContent();
  await eventually("the namespace's active total", () => total("active"), (text) => text === "18");
  await eventually("the namespace's dead-letter total", () => total("dead_letter"), (text) => text === "3");
  check(await page.locator('[data-total="dead_letter"]').evaluate((e) => e.classList.contains("alert")), "dead letters are flagged");

  await page.locator("input[type=search]").fill("pay");
  await eventually("the filter keeps only payments", () => page.locator("#entities tbody tr").count(), (n) => n === 1);
  await page.locator("input[type=search]").fill("");
  await eventually("the filter cleared", () => page.locator("#entities tbody tr").count(), (n) => n === 5);
  await screenshot(page, "overview");
});
