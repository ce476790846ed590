// A queue's page walked as an operator repairing dead letters: the Python SDK dead-letters
// four orders; the page lists them, shows one's reason, description, body (JSON and hex)
// and properties; one is resubmitted and is back among the active messages; one is
// repaired (edited body) and resubmitted; one is resubmitted as a selection; the last goes
// with "resubmit all matching"; then a
// message is sent from the page, one is deleted, one is scheduled and cancelled, and the
// queue is purged with progress.
import { check, expectEq, log } from "./common.mjs";
import {
  confirmDialog, consoleArgs, entityStat, eventually, lastReport, listedSequenceNumbers, openState,
  pythonTraffic, runConsoleScenario, screenshot,
} from "./console_common.mjs";

const { base, conn } = consoleArgs();

await runConsoleScenario("console_dead_letters", async ({ page }) => {
  pythonTraffic(conn, "orders", "dead-letter", 4);
  pythonTraffic(conn, "orders", "send", 2, 10);
  await page.goto(`${base}/#/queue/orders`);
  await eventually("4 dead letters on the page", () => entityStat(page, "dead_letter"), (n) => n === 4);
  expectEq(await entityStat(page, "active"), 2, "active messages");

  // Peek: the dead-letter list, then one message in full.
  await openState(page, "deadletter");
  const dead = await listedSequenceNumbers(page);
  expectEq(dead.length, 4, "dead-lettered messages listed");
  await page.locator(`#messages tr[data-seq="${dead[0]}"]`).click();
  const reason = await page.locator("#dead-letter-reason").textContent();
  check(reason.includes("InvalidOrderTotal"), `the reason shows: ${reason}`);
  check(reason.includes("order total -3.5 is negative"), `the description shows: ${reason}`);
  const body = await page.locator("#message-body").textContent();
  check(body.includes('"orderId": 1') && body.includes('"total": -3.5'), `the body is pretty JSON: ${body}`);
  const properties = await page.locator("#application-properties").textContent();
  check(properties.includes("amount") && properties.includes("region"), `application properties: ${properties}`);
  await screenshot(page, "dead-letter-message");
  await page.locator('#message-details button[data-view="hex"]').click();
  const hex = await page.locator("#message-body").textContent();
  check(hex.startsWith("00000000  7b 22 6f 72 64 65 72 49 64 22"), `the hex view: ${hex.slice(0, 80)}`);
  log(`peeked #${dead[0]}: ${reason}`);
  // Peeking changed nothing.
  expectEq(await entityStat(page, "dead_letter"), 4, "dead letters after peeking");

  // Resubmit one: it leaves the dead-letter queue and is back in the queue.
  await page.locator("#message-details").getByRole("button", { name: "Resubmit", exact: true }).click();
  await confirmDialog(page, "Resubmit");
  check((await lastReport(page)).includes("Resubmitted 1 message"), "the resubmit is reported");
  await eventually("dead letters after resubmitting one", () => entityStat(page, "dead_letter"), (n) => n === 3);
  await eventually("active after resubmitting one", () => entityStat(page, "active"), (n) => n === 3);
  await openState(page, "active");
  const active = await page.locator("#messages tbody").textContent();
  check(active.includes("order-1"), "order-1 is back among the active messages");

  // Repair and resubmit: the edited body is what arrives.
  await openState(page, "deadletter");
  const [second] = await listedSequenceNumbers(page);
  await page.locator(`#messages tr[data-seq="${second}"]`).click();
  await page.getByRole("button", { name: "Repair and resubmit…" }).click();
  const editor = page.locator('#dialog[open] textarea[name="body"]');
  check((await editor.inputValue()).includes('"total": -3.5'), "the editor holds the body");
  await editor.fill('{"orderId": 2, "total": 3.5, "currency": "EUR"}');
  await screenshot(page, "repair-and-resubmit");
  await confirmDialog(page, "Resubmit edited");
  check((await lastReport(page)).includes("Resubmitted 1 message"), "the repair is reported");
  await eventually("dead letters after the repair", () => entityStat(page, "dead_letter"), (n) => n === 2);
  await openState(page, "active");
  const newest = Math.max(...(await listedSequenceNumbers(page)));
  await page.locator(`#messages tr[data-seq="${newest}"]`).click();
  const repaired = await page.locator("#message-body").textContent();
  check(repaired.includes('"total": 3.5'), `the repaired body arrived: ${repaired}`);

  // Resubmit a selection.
  await openState(page, "deadletter");
  const [selected] = await listedSequenceNumbers(page);
  await page.locator(`#messages tr[data-seq="${selected}"] input[type=checkbox]`).check();
  await page.getByRole("button", { name: "Resubmit selected" }).click();
  await confirmDialog(page, "Resubmit");
  check((await lastReport(page)).includes("Resubmitted 1 message"), "resubmitting a selection is reported");
  await eventually("dead letters after resubmitting the selection", () => entityStat(page, "dead_letter"), (n) => n === 1);

  // Resubmit all matching a reason.
  await openState(page, "deadletter");
  await page.getByRole("button", { name: "Resubmit all matching…" }).click();
  await page.locator("#dialog[open] input[name=reason]").fill("InvalidOrderTotal");
  await confirmDialog(page, "Resubmit all matching");
  check((await lastReport(page)).includes("Resubmitted 1 message"), "resubmit all matching is reported");
  await eventually("no dead letters left", () => entityStat(page, "dead_letter"), (n) => n === 0);
  expectEq(await entityStat(page, "active"), 6, "active after resubmitting all");

  // Send from the page.
  await page.getByRole("button", { name: "Send message" }).click();
  await page.locator('#dialog[open] textarea[name="body"]').fill('{"orderId": 99, "total": 10}');
  await page.locator('#dialog[open] input[name="subject"]').fill("manual");
  await page.locator('#dialog[open] textarea[name="application_properties"]').fill('{"source": "console"}');
  await screenshot(page, "send-message");
  await confirmDialog(page, "Send");
  const sent = await lastReport(page);
  check(/sequence number \d+/.test(sent), `the send is reported: ${sent}`);
  await eventually("active after sending", () => entityStat(page, "active"), (n) => n === 7);
  await openState(page, "active");
  const listed = await page.locator("#messages tbody").textContent();
  check(listed.includes("manual"), "the sent message is listed with its subject");
  await screenshot(page, "queue-messages");

  // Delete a selection.
  const [first] = await listedSequenceNumbers(page);
  await page.locator(`#messages tr[data-seq="${first}"] input[type=checkbox]`).check();
  await page.getByRole("button", { name: "Delete selected" }).click();
  await confirmDialog(page, "Delete");
  check((await lastReport(page)).includes("Deleted 1 message"), "the delete is reported");
  await eventually("active after deleting one", () => entityStat(page, "active"), (n) => n === 6);

  // Schedule one from the page an hour ahead, then cancel it.
  await page.getByRole("button", { name: "Send message" }).click();
  await page.locator('#dialog[open] textarea[name="body"]').fill('{"reminder": true}');
  const inAnHour = new Date(Date.now() + 3600_000);
  const local = new Date(inAnHour.getTime() - inAnHour.getTimezoneOffset() * 60000).toISOString().slice(0, 19);
  await page.locator('#dialog[open] input[name="scheduled_enqueue_time"]').fill(local);
  await confirmDialog(page, "Send");
  await lastReport(page);
  await eventually("one scheduled message", () => entityStat(page, "scheduled"), (n) => n === 1);
  await openState(page, "scheduled");
  const [scheduled] = await listedSequenceNumbers(page);
  await page.locator(`#messages tr[data-seq="${scheduled}"]`).click();
  const when = await page.locator("#message-details").textContent();
  check(when.includes("Scheduled for"), "the scheduled time shows");
  await page.getByRole("button", { name: "Cancel scheduled" }).click();
  await confirmDialog(page, "Cancel them");
  check((await lastReport(page)).includes("Cancelled 1 scheduled message"), "the cancellation is reported");
  await eventually("no scheduled message left", () => entityStat(page, "scheduled"), (n) => n === 0);
  await openState(page, "active");

  // Purge, with the job's progress.
  await page.getByRole("button", { name: "Purge messages" }).click();
  await confirmDialog(page, "Purge messages");
  const purged = await lastReport(page);
  check(purged.includes("Purged 6 messages"), `the purge is reported: ${purged}`);
  expectEq(await page.locator("#purge-progress").count(), 0, "progress left on the page after the purge");
  await eventually("active after the purge", () => entityStat(page, "active"), (n) => n === 0);
});
