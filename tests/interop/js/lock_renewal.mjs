// Lock renewal on a queue with LockDuration PT5S. renewMessageLock twice moves lockedUntilUtc
// forward each time (about 5 s past the renewal), so a complete 8 s after the receive, well past
// the original lock, succeeds. Renewing the completed message reaches the broker (the JS SDK
// does not check settlement first) and fails with code MessageLockLost. A receiver with
// automatic lock renewal (maxAutoLockRenewalDurationInMs) then keeps a second message for 8 s
// while another receiver gets nothing, and completes it.
import { check, createClient, expectEq, expectErrorCode, expectNoMessage, log, receiveExactly, runScenario, scenarioArgs } from "./common.mjs";

const LOCK_MS = 5000;
const HOLD_MS = 8000;
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

function checkLockAhead(lockedUntil, what) {
  const ahead = lockedUntil.getTime() - Date.now();
  check(ahead >= LOCK_MS - 2000 && ahead <= LOCK_MS + 1500, `${what}: expected about ${LOCK_MS} ms ahead, got ${ahead} ms`);
}

async function manualRenewal(client, queue) {
  const sender = client.createSender(queue);
  await sender.sendMessages({ body: "renew me", messageId: "renew-1" });
  await sender.close();

  const receiver = client.createReceiver(queue, { maxAutoLockRenewalDurationInMs: 0 });
  const receivedAt = Date.now();
  const [message] = await receiveExactly(receiver, 1);
  check(message.lockedUntilUtc instanceof Date, `lockedUntilUtc is not set: ${message.lockedUntilUtc}`);
  checkLockAhead(message.lockedUntilUtc, "initial lock");

  let previous = message.lockedUntilUtc;
  for (const round of [1, 2]) {
    await sleep(3000);
    const renewed = await receiver.renewMessageLock(message);
    log(`renewal ${round}: lockedUntil ${previous.toISOString()} -> ${renewed.toISOString()}`);
    check(renewed.getTime() > previous.getTime(), `renewal ${round}: expected lockedUntil after ${previous.toISOString()}, got ${renewed.toISOString()}`);
    checkLockAhead(renewed, `renewal ${round}`);
    expectEq(message.lockedUntilUtc.getTime(), renewed.getTime(), `renewal ${round}: message.lockedUntilUtc`);
    previous = renewed;
  }

  await sleep(Math.max(0, HOLD_MS - (Date.now() - receivedAt)));
  const held = Date.now() - receivedAt;
  check(held > LOCK_MS, `held only ${held} ms, not past the lock duration`);
  await receiver.completeMessage(message);
  log(`completed ${held} ms after receipt, past the ${LOCK_MS} ms lock`);
  await expectNoMessage(receiver, 1000);

  await expectErrorCode(() => receiver.renewMessageLock(message), "MessageLockLost", "renewing a completed message");
  await receiver.close();
}

async function autoRenewal(client, queue) {
  const sender = client.createSender(queue);
  await sender.sendMessages({ body: "keep me", messageId: "auto-1" });
  await sender.close();

  const receiver = client.createReceiver(queue, { maxAutoLockRenewalDurationInMs: 60000 });
  const other = client.createReceiver(queue, { maxAutoLockRenewalDurationInMs: 0 });
  const receivedAt = Date.now();
  const [message] = await receiveExactly(receiver, 1);
  expectEq(message.messageId, "auto-1", "auto-renewed messageId");
  const original = message.lockedUntilUtc.getTime();
  while (Date.now() - receivedAt < HOLD_MS) {
    await expectNoMessage(other, 1000);
  }
  check(message.lockedUntilUtc.getTime() > original, `automatic renewal did not move lockedUntilUtc past ${new Date(original).toISOString()}`);
  check(message.lockedUntilUtc.getTime() > Date.now(), `lock ran out: lockedUntilUtc ${message.lockedUntilUtc.toISOString()} is in the past`);
  await receiver.completeMessage(message);
  log(`auto-renewed message completed ${Date.now() - receivedAt} ms after receipt`);
  expectEq(message.deliveryCount, 0, "deliveryCount of the auto-renewed message");
  await expectNoMessage(other, 1000);
  await receiver.close();
  await other.close();
}

runScenario(async () => {
  const { conn, queue } = scenarioArgs();
  const client = createClient(conn, { maxRetries: 0 });
  try {
    await manualRenewal(client, queue);
    await autoRenewal(client, queue);
  } finally {
    await client.close();
  }
});
