// Scenario 4: deadLetterMessage(reason, description) puts the message in the DLQ with both.
import { createClient, expectEq, expectNoMessage, log, receiveExactly, runScenario, scenarioArgs } from "./common.mjs";

const REASON = "InvalidOrderTotal";
const DESCRIPTION = "order total -3.50 is negative";

runScenario(async () => {
  const { conn, queue } = scenarioArgs();
  const client = createClient(conn);
  try {
    const sender = client.createSender(queue);
    await sender.sendMessages({ body: "order 17", messageId: "order-17", applicationProperties: { kind: "order" } });
    await sender.close();

    const receiver = client.createReceiver(queue, { maxAutoLockRenewalDurationInMs: 0 });
    const [message] = await receiveExactly(receiver, 1);
    await receiver.deadLetterMessage(message, { deadLetterReason: REASON, deadLetterErrorDescription: DESCRIPTION });
    log("dead-lettered order-17");
    await expectNoMessage(receiver);
    await receiver.close();

    const dlq = client.createReceiver(queue, { subQueueType: "deadLetter", maxAutoLockRenewalDurationInMs: 0 });
    const [dead] = await receiveExactly(dlq, 1);
    log(`DLQ: reason=${dead.deadLetterReason} description=${dead.deadLetterErrorDescription}`);
    expectEq(dead.messageId, "order-17", "messageId");
    expectEq(dead.body, "order 17", "body");
    expectEq(dead.applicationProperties?.kind, "order", "applicationProperties.kind");
    expectEq(dead.deadLetterReason, REASON, "deadLetterReason");
    expectEq(dead.deadLetterErrorDescription, DESCRIPTION, "deadLetterErrorDescription");
    await dlq.completeMessage(dead);
    await expectNoMessage(dlq);
    await dlq.close();
  } finally {
    await client.close();
  }
});
