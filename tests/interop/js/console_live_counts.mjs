// The overview, live: opened on loopback with the development key (no key form), it shows
// every queue, topic and subscription; while the Python SDK sends, the counts, the totals
// and the incoming rate move on the page without a reload. Then a queue's messages are
// browsed page by page (25 a page, next and previous, from a chosen sequence number).
import { check, log } from "./common.mjs";
import { consoleArgs, eventually, listedSequenceNumbers, overviewCount, pythonTraffic, runConsoleScenario, screenshot } from "./console_common.mjs";

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
  await page.locator('#entities tr[data-path="events"] a').click();
  await page.locator('#subscriptions a', { hasText: "billing" }).waitFor();
  await screenshot(page, "topic");
  await page.locator('.crumbs a[href="#/"]').click();

  pythonTraffic(conn, "payments", "send", 30, 100);
  await page.locator('#entities tr[data-path="payments"] a').click();
  await page.locator("#messages tbody tr[data-seq]").first().waitFor();
  await page.locator('select[aria-label="Page size"]').selectOption("25");
  const firstPage = await eventually("the first page", () => listedSequenceNumbers(page), (seqs) => seqs.length === 25);
  await page.getByRole("button", { name: "Next ›" }).click();
  const secondPage = await eventually("the second page", () => listedSequenceNumbers(page), (seqs) => seqs.length === 5);
  check(secondPage[0] > firstPage[24], `the second page goes on after the first: ${firstPage[24]} then ${secondPage[0]}`);
  check(await page.getByRole("button", { name: "Next ›" }).isDisabled(), "the last page has no next");
  await page.getByRole("button", { name: "‹ Previous" }).click();
  await eventually("back on the first page", () => listedSequenceNumbers(page), (seqs) => seqs[0] === firstPage[0] && seqs.length === 25);
  await page.locator('input[aria-label="From sequence number"]').fill(String(firstPage[10]));
  await page.getByRole("button", { name: "Go" }).click();
  await eventually("the page from a sequence number", () => listedSequenceNumbers(page), (seqs) => seqs[0] === firstPage[10] && seqs.length === 20);
});
