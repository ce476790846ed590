// Rules on the console: a subscription's rules are listed with their filters and actions;
// a rule is created from the page; the topic's rule tester shows, for a composed message,
// which subscriptions receive it, which rules match and what their actions set (nothing is
// sent); the rule is deleted again.
import { check, expectEq } from "./common.mjs";
import { confirmDialog, consoleArgs, eventually, lastReport, runConsoleScenario, screenshot } from "./console_common.mjs";

const { base } = consoleArgs();

const ruleNames = (page) => page.locator("#rules tbody tr[data-rule]").evaluateAll((rows) => rows.map((row) => row.dataset.rule));
const resultOf = async (page, selector) => (await page.locator(`#rule-test-results ${selector}`).textContent()).trim();

await runConsoleScenario("console_rules", async ({ page }) => {
  await page.goto(`${base}/#/topic/events/subscription/audit`);
  await page.locator('.tabs button[data-tab="rules"]').click();
  await eventually("audit's rules", () => ruleNames(page), (names) => names.length === 1);
  const big = await page.locator('#rules tr[data-rule="big"]').textContent();
  check(big.includes("amount > 100") && big.includes("SET priority = 'high'"), `rule big shows filter and action: ${big}`);

  await page.getByRole("button", { name: "New rule" }).click();
  await page.locator('#dialog[open] input[name="rule_name"]').fill("eu");
  await page.locator('#dialog[open] textarea[name="sql_filter"]').fill("region = 'eu'");
  await page.locator('#dialog[open] textarea[name="sql_action"]').fill("SET routed = 'eu'");
  await confirmDialog(page, "Create rule");
  check((await lastReport(page)).includes("Created rule eu"), "the new rule is reported");
  await eventually("audit's rules after creating eu", () => ruleNames(page), (names) => names.includes("eu") && names.includes("big"));

  // The tester across the topic's subscriptions.
  await page.goto(`${base}/#/topic/events`);
  await page.locator('.tabs button[data-tab="rule-tester"]').click();
  await page.locator('textarea[name="body"]').fill('{"orderId": 7}');
  await page.locator('input[name="subject"]').fill("order");
  await page.locator('textarea[name="application_properties"]').fill('{"amount": 150, "region": "us"}');
  await page.locator("#test-rules").click();
  await page.locator('#rule-test-results tr[data-subscription="audit"]').waitFor();
  expectEq(await resultOf(page, 'tr[data-subscription="audit"] .pill'), "receives it", "audit");
  expectEq(await resultOf(page, 'tr[data-subscription="billing"] .pill'), "receives it", "billing ($Default)");
  const bigRow = await resultOf(page, 'tr[data-rule="big"]');
  check(bigRow.includes("matches") && bigRow.includes('priority = "high"'), `big matches and sets priority: ${bigRow}`);
  expectEq(await resultOf(page, 'tr[data-rule="eu"] .pill'), "no match", "eu for a US order");
  await screenshot(page, "rule-tester", { fullPage: true });

  await page.locator('textarea[name="application_properties"]').fill('{"amount": 5, "region": "us"}');
  await page.locator("#test-rules").click();
  await eventually("audit after a small US order", () => resultOf(page, 'tr[data-subscription="audit"] .pill'), (text) => text === "does not receive it");

  // Nothing was sent by testing.
  await page.goto(`${base}/#/`);
  const auditActive = await page.locator('#entities tr[data-path="events/Subscriptions/audit"] td').nth(2).textContent();
  expectEq(auditActive.trim(), "0", "audit's active messages after testing");

  await page.goto(`${base}/#/topic/events/subscription/audit`);
  await page.locator('.tabs button[data-tab="rules"]').click();
  await page.locator('#rules tr[data-rule="eu"]').getByRole("button", { name: "Delete" }).click();
  await confirmDialog(page, "Delete rule");
  check((await lastReport(page)).includes("Deleted rule eu"), "the deletion is reported");
  await eventually("audit's rules after deleting eu", () => ruleNames(page), (names) => names.length === 1 && names[0] === "big");
  await screenshot(page, "subscription-rules");
});
