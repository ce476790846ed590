// Scenario 11: each abandon raises deliveryCount by exactly one (MaxDeliveryCount is 10).
import { createClient, expectEq, expectNoMessage, log, receiveExactly, runScenario, scenarioArgs, toNumber } from "./common.mjs";

const ROUNDS = 5;

runScenario(async () => {
  const { conn, queue } = scenarioArgs();
  const client = createClient(conn);
  try {
    const sender = client.createSender(queue);
    await sender.sendMessages({ body: "retry me", messageId: "retry-1" });
    await sender.close();

    const receiver = client.createReceiver(queue, { maxAutoLockRenewalDurationInMs: 0 });
    const counts = [];
    const sequenceNumbers = new Set();
    for (let round = 0; round < ROUNDS; round++) {
      const [message] = await receiveExactly(receiver, 1);
      counts.push(message.deliveryCount);
      sequenceNumbers.add(toNumber(message.sequenceNumber));
      await receiver.abandonMessage(message);
    }
    const [last] = await receiveExactly(receiver, 1);
    counts.push(last.deliveryCount);
    sequenceNumbers.add(toNumber(last.sequenceNumber));
    log(`delivery counts: ${JSON.stringify(counts)}`);
    expectEq(counts, [...Array(ROUNDS + 1).keys()], "delivery counts across abandons");
    expectEq(sequenceNumbers.size, 1, "distinct sequence numbers across redeliveries");
    await receiver.completeMessage(last);
    await expectNoMessage(receiver);
    await receiver.close();
  } finally {
    await client.close();
  }
});
