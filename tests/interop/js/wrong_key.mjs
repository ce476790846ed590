// Scenario 7: a wrong key is refused at put-token (CBS status 401): code UnauthorizedAccess.
import { createClient, expectErrorCode, runScenario, scenarioArgs } from "./common.mjs";

runScenario(async () => {
  const { conn, queue } = scenarioArgs();
  const client = createClient(conn, { maxRetries: 0 });
  try {
    const sender = client.createSender(queue);
    await expectErrorCode(() => sender.sendMessages({ body: "should not be accepted" }), "UnauthorizedAccess", "send");
    await sender.close();
    const receiver = client.createReceiver(queue, { maxAutoLockRenewalDurationInMs: 0 });
    await expectErrorCode(() => receiver.receiveMessages(1, { maxWaitTimeInMs: 5000 }), "UnauthorizedAccess", "receive");
    await receiver.close();
  } finally {
    await client.close();
  }
});
