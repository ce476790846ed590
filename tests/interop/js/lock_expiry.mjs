// Scenario 5: with LockDuration PT5S (auto lock renewal off), completing after the lock expired
// fails with code MessageLockLost, and the message comes back with deliveryCount 1.
import { check, createClient, expectEq, expectErrorCode, expectNoMessage, log, receiveExactly, runScenario, scenarioArgs } from "./common.mjs";

const LOCK_MS = 5000;
const SLEEP_MS = 6500;
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

runScenario(async () => {
  const { conn, queue } = scenarioArgs();
  const client = createClient(conn, { maxRetries: 0 });
  try {
    const sender = client.createSender(queue);
    await sender.sendMessages({ body: "slow worker", messageId: "slow-1" });
    await sender.close();

    const receiver = client.createReceiver(queue, { maxAutoLockRenewalDurationInMs: 0 });
    const [first] = await receiveExactly(receiver, 1);
    expectEq(first.deliveryCount, 0, "first deliveryCount");
    const remaining = first.lockedUntilUtc.getTime() - Date.now();
    check(remaining >= LOCK_MS - 2500 && remaining <= LOCK_MS + 1500, `lock should last about ${LOCK_MS} ms, lockedUntilUtc is ${remaining} ms away`);
    await sleep(SLEEP_MS);
    await expectErrorCode(() => receiver.completeMessage(first), "MessageLockLost", "complete after lock expiry");

    const [second] = await receiveExactly(receiver, 1);
    expectEq(second.messageId, "slow-1", "redelivered messageId");
    expectEq(second.deliveryCount, 1, "deliveryCount after one lock expiry");
    check(second.lockToken !== first.lockToken, "redelivery reused the expired lock token");
    await receiver.completeMessage(second);
    await expectNoMessage(receiver);
    await receiver.close();
  } finally {
    await client.close();
  }
});
