// Scenario 9: the broker runs with --max-message-size 4096. It advertises that limit on the
// sender link (createMessageBatch sizes itself by it and refuses an 8 KiB message client-side),
// and a single 8 KiB message, which @azure/service-bus 7.9.5 sends without a client-side size
// check, is refused by the broker with code MessageSizeExceeded. The same sender then still
// delivers a small message.
import { check, createClient, expectEq, expectErrorCode, expectNoMessage, log, receiveExactly, runScenario, scenarioArgs } from "./common.mjs";

const BROKER_LIMIT = 4096;
const BIG_BODY = "x".repeat(8192);

runScenario(async () => {
  const { conn, queue } = scenarioArgs();
  const client = createClient(conn, { maxRetries: 0 });
  try {
    const sender = client.createSender(queue);
    await expectErrorCode(() => sender.sendMessages({ body: BIG_BODY, messageId: "big-single" }), "MessageSizeExceeded", "single 8 KiB message");

    const batch = await sender.createMessageBatch();
    expectEq(batch.maxSizeInBytes, BROKER_LIMIT, "batch limit taken from the broker's advertised max-message-size");
    check(!batch.tryAddMessage({ body: BIG_BODY }), "an 8 KiB message fitted a batch limited to 4096 bytes");
    log("8 KiB message refused by the batch, as the advertised limit requires");

    await sender.sendMessages({ body: "small enough", messageId: "small-1" });
    log("small message sent on the same sender");
    await sender.close();

    const receiver = client.createReceiver(queue, { maxAutoLockRenewalDurationInMs: 0 });
    const [message] = await receiveExactly(receiver, 1);
    expectEq(message.messageId, "small-1", "the only stored message");
    expectEq(message.body, "small enough", "body");
    await receiver.completeMessage(message);
    await expectNoMessage(receiver);
    await receiver.close();
  } finally {
    await client.close();
  }
});
