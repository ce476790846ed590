// Scenario 3: abandoning until MaxDeliveryCount (3) moves the message to the dead-letter
// subqueue with reason MaxDeliveryCountExceeded; the DLQ copy can be completed.
import { check, createClient, expectEq, expectNoMessage, log, receiveExactly, runScenario, scenarioArgs } from "./common.mjs";

const MAX_DELIVERY_COUNT = 3;

runScenario(async () => {
  const { conn, queue } = scenarioArgs();
  const client = createClient(conn);
  try {
    const sender = client.createSender(queue);
    await sender.sendMessages({ body: "poison", messageId: "poison-1" });
    await sender.close();

    const receiver = client.createReceiver(queue, { maxAutoLockRenewalDurationInMs: 0 });
    const seenCounts = [];
    for (let round = 0; round < MAX_DELIVERY_COUNT; round++) {
      const [message] = await receiveExactly(receiver, 1);
      expectEq(message.messageId, "poison-1", "messageId");
      seenCounts.push(message.deliveryCount);
      await receiver.abandonMessage(message);
    }
    log(`delivery counts seen: ${JSON.stringify(seenCounts)}`);
    expectEq(seenCounts, [0, 1, 2], "delivery counts before dead-lettering");
    await expectNoMessage(receiver, 3000);
    await receiver.close();

    const dlq = client.createReceiver(queue, { subQueueType: "deadLetter", maxAutoLockRenewalDurationInMs: 0 });
    const [dead] = await receiveExactly(dlq, 1);
    log(`DLQ: id=${dead.messageId} reason=${dead.deadLetterReason} description=${dead.deadLetterErrorDescription}`);
    expectEq(dead.messageId, "poison-1", "dead-lettered messageId");
    expectEq(dead.body, "poison", "dead-lettered body");
    expectEq(dead.deadLetterReason, "MaxDeliveryCountExceeded", "deadLetterReason");
    check(Boolean(dead.deadLetterErrorDescription), `deadLetterErrorDescription should explain the move, got ${dead.deadLetterErrorDescription}`);
    await dlq.completeMessage(dead);
    await expectNoMessage(dlq);
    await dlq.close();
  } finally {
    await client.close();
  }
});
