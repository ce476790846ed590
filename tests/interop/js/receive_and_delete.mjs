// Scenario 6: in receiveAndDelete mode a received message is gone from the queue.
import { createClient, expectEq, expectNoMessage, log, receiveExactly, runScenario, scenarioArgs } from "./common.mjs";

runScenario(async () => {
  const { conn, queue } = scenarioArgs();
  const client = createClient(conn);
  try {
    const sender = client.createSender(queue);
    await sender.sendMessages({ body: "read once", messageId: "rad-1" });
    await sender.close();

    const receiver = client.createReceiver(queue, { receiveMode: "receiveAndDelete" });
    const [message] = await receiveExactly(receiver, 1);
    expectEq(message.messageId, "rad-1", "messageId");
    expectEq(message.body, "read once", "body");
    expectEq(message.lockToken, undefined, "lockToken in receiveAndDelete mode");
    log("received rad-1 in receiveAndDelete mode");
    await expectNoMessage(receiver, 2000);
    await receiver.close();

    const peekLock = client.createReceiver(queue, { maxAutoLockRenewalDurationInMs: 0 });
    await expectNoMessage(peekLock, 2000);
    await peekLock.close();
  } finally {
    await client.close();
  }
});
