// Scenario 8: a queue that does not exist: code MessagingEntityNotFound for send and receive.
import { createClient, expectErrorCode, runScenario, scenarioArgs } from "./common.mjs";

runScenario(async () => {
  const { conn, queue } = scenarioArgs();
  const client = createClient(conn, { maxRetries: 0 });
  try {
    const sender = client.createSender(queue);
    await expectErrorCode(() => sender.sendMessages({ body: "nobody home" }), "MessagingEntityNotFound", "send");
    await sender.close();
    const receiver = client.createReceiver(queue, { maxAutoLockRenewalDurationInMs: 0 });
    await expectErrorCode(() => receiver.receiveMessages(1, { maxWaitTimeInMs: 5000 }), "MessagingEntityNotFound", "receive");
    await receiver.close();
  } finally {
    await client.close();
  }
});
