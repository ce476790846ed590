// Access to the console on a broker without the development key (three policies: listener,
// sender, manager). Without a token the page shows the key form and nothing else, and the
// broker's console API refuses everything; a wrong key is refused; a key without Listen
// (the sender's) gets the key form back and sees no entity; its token changes nothing.
// The listener reads but every change it tries is refused and reported, and nothing changes.
import { check, expectEq, log } from "./common.mjs";
import { confirmDialog, consoleArgs, eventually, lastReport, pythonTraffic, runConsoleScenario, sasToken, screenshot } from "./console_common.mjs";

const { base, conn } = consoleArgs();
const withKey = (name, key) => conn.replace(/SharedAccessKeyName=[^;]+/, `SharedAccessKeyName=${name}`).replace(/SharedAccessKey=[^;]+/, `SharedAccessKey=${key}`);
const manager = sasToken(base, "manager", "manage-key");

async function call(method, path, token, body) {
  const headers = token ? { Authorization: token } : {};
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const response = await fetch(`${base}${path}`, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  return { status: response.status, text: await response.text() };
}

const CHANGES = [
  ["POST", "/api/console/send", { entity: "guarded", body: "x" }],
  ["POST", "/api/console/purge", { entity: "guarded", dead_letter: false }],
  ["POST", "/api/console/delete", { entity: "guarded", state: "active", sequence_numbers: [1] }],
  ["POST", "/api/console/resubmit", { entity: "guarded", all: true }],
  ["POST", "/api/console/cancel-scheduled", { entity: "guarded", sequence_numbers: [1] }],
  ["PUT", "/api/console/queues/intruder", {}],
  ["DELETE", "/api/console/queues/guarded", undefined],
];
const READS = ["/api/queues", "/api/topics", "/api/console/history", "/api/console/messages?entity=guarded&state=active"];

async function expectRefused(token, requests, who) {
  for (const [method, path, body] of requests) {
    const { status, text } = await call(method, path, token, body);
    expectEq(status, 401, `${who}: ${method} ${path} (${text})`);
  }
}

async function guardedActive() {
  const { status, text } = await call("GET", "/api/queues/guarded", manager);
  expectEq(status, 200, "the manager reads guarded");
  return JSON.parse(text).active_message_count;
}

async function signIn(page, name, key) {
  await page.locator('#signin input[name="key_name"]').fill(name);
  await page.locator('#signin input[name="key"]').fill(key);
  await page.getByRole("button", { name: "Sign in" }).click();
}

async function seesNothing(page, who) {
  check(await page.locator("#signin").isVisible(), `${who}: the key form shows`);
  check(await page.locator("#view").isHidden(), `${who}: no page beside the key form`);
  const text = await page.locator("body").textContent();
  check(!text.includes("guarded"), `${who}: no entity name on the page`);
}

await runConsoleScenario("console_access", async ({ page }) => {
  pythonTraffic(withKey("manager", "manage-key"), "guarded", "send", 3);
  expectEq(await guardedActive(), 3, "guarded's messages");

  expectEq((await call("GET", "/api/console/token")).status, 401, "the development token without the development key");
  await expectRefused(null, [...READS.map((path) => ["GET", path]), ...CHANGES], "no token");

  await page.goto(`${base}/`);
  await page.locator("#signin").waitFor();
  await seesNothing(page, "before signing in");
  await screenshot(page, "sign-in");

  await signIn(page, "listener", "not-the-key");
  await page.locator("#signin-error").waitFor();
  check((await page.locator("#signin-error").textContent()).includes("refused"), "a wrong key is refused");
  await seesNothing(page, "wrong key");

  // A real key without Listen: whatever token it gets reads nothing.
  await signIn(page, "sender", "send-only-key");
  // The key is right, so the broker mints a token; every read with it is refused.
  await eventually("the sender is shown the key form again", async () => (await page.locator("#signin-error").isVisible())
    && (await page.locator("#signin-error").textContent()), (text) => Boolean(text) && text.startsWith("Not authorized"));
  await seesNothing(page, "sender");
  const sender = sasToken(base, "sender", "send-only-key");
  await expectRefused(sender, [...READS.map((path) => ["GET", path]), ...CHANGES], "sender");
  // A forged token (the listener's name, a made-up key) is refused everything too.
  await expectRefused(sasToken(base, "listener", "forged"), [...READS.map((path) => ["GET", path]), ...CHANGES], "forged");

  // The listener reads; its changes are refused (by the broker, reported by the page).
  await signIn(page, "listener", "listen-only-key");
  await page.locator('#entities tr[data-path="guarded"]').waitFor();
  const listener = sasToken(base, "listener", "listen-only-key");
  await expectRefused(listener, CHANGES, "listener");
  await page.locator('#entities tr[data-path="guarded"] a').click();
  await page.getByRole("button", { name: "Purge messages" }).click();
  await confirmDialog(page, "Purge messages");
  check((await lastReport(page)).includes("Purge failed"), "the refused purge is reported");
  await page.getByRole("button", { name: "Send message" }).click();
  await page.locator('#dialog[open] textarea[name="body"]').fill("from a listener");
  await confirmDialog(page, "Send");
  await page.locator("#dialog[open] .error").waitFor();
  const refusal = await page.locator("#dialog[open] .error").textContent();
  check(refusal.length > 0, "the refused send shows in the dialog");
  log(`listener's send: ${refusal}`);
  await page.locator("#dialog[open]").getByRole("button", { name: "Cancel" }).click();
  check(await page.locator("#view").isVisible(), "a listener whose change is refused keeps reading");
  expectEq(await guardedActive(), 3, "guarded's messages after the listener's attempts");
  expectEq((await call("GET", "/api/queues/intruder", manager)).status, 404, "no queue created by the listener");
  log("listener: reads, and its changes were refused");

  await page.getByRole("button", { name: "Sign out" }).click();
  await seesNothing(page, "after signing out");
  check(await page.evaluate(() => sessionStorage.length === 0), "signing out forgets the token");
});
