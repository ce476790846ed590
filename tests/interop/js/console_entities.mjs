// Entities from the console: a queue is created from the overview with its properties, its
// properties are edited on its page, and it is deleted (the name typed back); a topic and
// a subscription of it are created and the subscription deleted. The broker's own API
// confirms each change.
import { check, expectEq } from "./common.mjs";
import { confirmDialog, consoleArgs, dismissReports, eventually, lastReport, runConsoleScenario, screenshot } from "./console_common.mjs";

const { base } = consoleArgs();

await runConsoleScenario("console_entities", async ({ page }) => {
  await page.goto(`${base}/`);
  await page.locator('#entities tr[data-path="orders"]').waitFor();
  // What the broker says, read with the page's own token.
  const api = (path) => page.evaluate(async (url) => {
    const response = await fetch(url, { headers: { Authorization: sessionStorage.getItem("busbar.console.token") } });
    return { status: response.status, body: response.ok ? await response.json() : null };
  }, path);

  await page.getByRole("button", { name: "New queue" }).click();
  await page.locator('#dialog[open] input[name="name"]').fill("invoices");
  await page.locator('#dialog[open] input[name="max_delivery_count"]').fill("4");
  await page.locator('#dialog[open] input[name="lock_duration_s"]').fill("45");
  await screenshot(page, "new-queue");
  await confirmDialog(page, "Create queue");
  check((await lastReport(page)).includes("Created queue invoices"), "the creation is reported");
  await page.locator('#entities tr[data-path="invoices"]').waitFor();
  const created = await api("/api/queues/invoices");
  expectEq([created.body.max_delivery_count, created.body.lock_duration_ms], [4, 45000], "invoices as created");

  await page.locator('#entities tr[data-path="invoices"] a').click();
  await page.locator('.tabs button[data-tab="properties"]').click();
  const maxDelivery = page.locator('input[name="max_delivery_count"]');
  expectEq(await maxDelivery.inputValue(), "4", "the form shows the queue's max delivery count");
  await maxDelivery.fill("7");
  await page.locator('input[name="dead_lettering_on_message_expiration"]').check();
  await screenshot(page, "queue-properties");
  await dismissReports(page);
  await page.getByRole("button", { name: "Save changes" }).click();
  check((await lastReport(page)).includes("Saved the properties of invoices"), "the save is reported");
  const edited = await api("/api/queues/invoices");
  expectEq([edited.body.max_delivery_count, edited.body.dead_lettering_on_message_expiration, edited.body.lock_duration_ms],
    [7, true, 45000], "invoices after editing");

  await page.getByRole("button", { name: "Delete queue" }).click();
  await page.locator('#dialog[open] input[aria-label="Name to confirm"]').fill("invoice");
  await confirmDialog(page, "Delete queue");
  await page.locator("#dialog[open] .error").waitFor();
  expectEq((await api("/api/queues/invoices")).status, 200, "invoices after a refused delete");
  await page.locator('#dialog[open] input[aria-label="Name to confirm"]').fill("invoices");
  await confirmDialog(page, "Delete queue");
  check((await lastReport(page)).includes("Deleted queue invoices"), "the deletion is reported");
  await eventually("the overview without invoices", () => page.locator('#entities tr[data-path="invoices"]').count(), (n) => n === 0);
  expectEq((await api("/api/queues/invoices")).status, 404, "invoices after deleting");

  await page.getByRole("button", { name: "New topic" }).click();
  await page.locator('#dialog[open] input[name="name"]').fill("alerts");
  await confirmDialog(page, "Create topic");
  await page.locator('#entities tr[data-path="alerts"] a').click();
  await page.getByRole("button", { name: "New subscription" }).click();
  await page.locator('#dialog[open] input[name="name"]').fill("ops");
  await confirmDialog(page, "Create subscription");
  check((await lastReport(page)).includes("Created subscription ops"), "the subscription's creation is reported");
  await page.locator('#subscriptions a', { hasText: "ops" }).waitFor();
  await page.locator('#subscriptions a', { hasText: "ops" }).click();
  await page.getByRole("button", { name: "Delete subscription" }).click();
  await page.locator('#dialog[open] input[aria-label="Name to confirm"]').fill("ops");
  await confirmDialog(page, "Delete subscription");
  await eventually("alerts without subscriptions", () => api("/api/topics/alerts"), (topic) => topic.body?.subscriptions.length === 0);
});
