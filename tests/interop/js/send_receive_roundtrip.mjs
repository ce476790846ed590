// Scenario 1: one message with body, application properties and standard properties survives
// the round trip; peek-lock metadata is well formed; after complete the queue is empty.
import {
  UUID_PATTERN, check, createClient, expectEq, expectNoMessage, log, receiveExactly, runScenario,
  scenarioArgs, toNumber,
} from "./common.mjs";

runScenario(async () => {
  const { conn, queue } = scenarioArgs();
  const client = createClient(conn);
  try {
    const sentProps = { color: "blue", count: 42, urgent: true };
    const sender = client.createSender(queue);
    const beforeSend = Date.now();
    for (let index = 0; index < 2; index++) {
      await sender.sendMessages({
        body: `hello busbar ${index}`,
        applicationProperties: sentProps,
        subject: "greeting",
        contentType: "text/plain",
        correlationId: `corr-${index}`,
        messageId: `roundtrip-${index}`,
      });
    }
    await sender.close();
    log("sent 2 messages");

    const receiver = client.createReceiver(queue, { receiveMode: "peekLock", maxAutoLockRenewalDurationInMs: 0 });
    for (let index = 0; index < 2; index++) {
      const [message] = await receiveExactly(receiver, 1);
      log(`received seq=${message.sequenceNumber} id=${message.messageId} deliveryCount=${message.deliveryCount} lockToken=${message.lockToken}`);
      expectEq(message.body, `hello busbar ${index}`, "body");
      expectEq(message.messageId, `roundtrip-${index}`, "messageId");
      expectEq(message.applicationProperties, sentProps, "applicationProperties");
      expectEq(message.subject, "greeting", "subject");
      expectEq(message.contentType, "text/plain", "contentType");
      expectEq(message.correlationId, `corr-${index}`, "correlationId");
      expectEq(toNumber(message.sequenceNumber), index + 1, "sequenceNumber");
      expectEq(message.deliveryCount, 0, "deliveryCount");
      const enqueued = message.enqueuedTimeUtc;
      check(enqueued instanceof Date, `enqueuedTimeUtc is not set: ${enqueued}`);
      const now = Date.now();
      check(
        enqueued.getTime() >= beforeSend - 5000 && enqueued.getTime() <= now + 5000,
        `enqueuedTimeUtc ${enqueued.toISOString()} is outside the send window`,
      );
      check(UUID_PATTERN.test(message.lockToken ?? ""), `lock token ${message.lockToken} is not a UUID`);
      check(
        message.lockedUntilUtc instanceof Date && message.lockedUntilUtc.getTime() > now,
        `lockedUntilUtc ${message.lockedUntilUtc} should be in the future`,
      );
      await receiver.completeMessage(message);
    }
    log("completed both; checking the queue is empty");
    await expectNoMessage(receiver, 2000);
    await receiver.close();
  } finally {
    await client.close();
  }
});
