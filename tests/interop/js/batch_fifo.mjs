// Scenario 2: a batch of 10 built with createMessageBatch arrives complete and in order.
import { check, createClient, expectEq, expectNoMessage, log, receiveExactly, runScenario, scenarioArgs, toNumber } from "./common.mjs";

const COUNT = 10;

runScenario(async () => {
  const { conn, queue } = scenarioArgs();
  const client = createClient(conn);
  try {
    const sender = client.createSender(queue);
    const batch = await sender.createMessageBatch();
    for (let index = 0; index < COUNT; index++) {
      check(batch.tryAddMessage({ body: `batch-${index}`, messageId: `batch-${index}` }), `message ${index} did not fit the batch`);
    }
    expectEq(batch.count, COUNT, "messages in the batch");
    await sender.sendMessages(batch);
    await sender.close();
    log(`sent a batch of ${COUNT}`);

    const receiver = client.createReceiver(queue, { maxAutoLockRenewalDurationInMs: 0 });
    const received = await receiveExactly(receiver, COUNT);
    const indexes = [...Array(COUNT).keys()];
    expectEq(received.map((m) => m.messageId), indexes.map((i) => `batch-${i}`), "messageIds in order");
    expectEq(received.map((m) => m.body), indexes.map((i) => `batch-${i}`), "bodies in order");
    expectEq(received.map((m) => toNumber(m.sequenceNumber)), indexes.map((i) => i + 1), "sequence numbers");
    check(received.every((m) => m.deliveryCount === 0), "every deliveryCount should be 0");
    for (const message of received) {
      await receiver.completeMessage(message);
    }
    log("completed all");
    await expectNoMessage(receiver);
    await receiver.close();
  } finally {
    await client.close();
  }
});
