// Duplicate detection, time to live and forwarding, through the JS SDK. The queues are the
// ones tests/queue_features.rs configures (dedup, ttl, ttldrop, front -> middle -> back,
// poison -> graveyard); the queue argument is ignored.
import { createClient, expectEq, expectNoMessage, log, receiveExactly, runScenario, scenarioArgs } from "./common.mjs";

async function duplicates(client) {
  const sender = client.createSender("dedup");
  await sender.sendMessages({ body: "first", messageId: "js-order-1" });
  await sender.sendMessages({ body: "repeat", messageId: "js-order-1" });
  await sender.sendMessages({ body: "other", messageId: "js-order-2" });
  await sender.close();
  const receiver = client.createReceiver("dedup");
  const messages = await receiveExactly(receiver, 2);
  expectEq(messages.map((m) => m.messageId), ["js-order-1", "js-order-2"], "ids received");
  expectEq(messages[0].body, "first", "the first copy is the one kept");
  for (const message of messages) {
    await receiver.completeMessage(message);
  }
  await expectNoMessage(receiver, 1000);
  await receiver.close();
  log("duplicate detection dropped the repeat");
}

async function expiry(client) {
  await client.createSender("ttl").sendMessages({ body: "short-lived", messageId: "js-ttl-1" });
  await client.createSender("ttldrop").sendMessages({ body: "short-lived", messageId: "js-ttl-2" });
  await new Promise((resolve) => setTimeout(resolve, 3000));
  const dlq = client.createReceiver("ttl", { subQueueType: "deadLetter" });
  const [dead] = await receiveExactly(dlq, 1);
  expectEq(dead.messageId, "js-ttl-1", "expired message id in the DLQ");
  expectEq(dead.deadLetterReason, "TTLExpiredException", "deadLetterReason");
  await dlq.completeMessage(dead);
  await dlq.close();
  for (const [queue, options] of [["ttl", {}], ["ttldrop", {}], ["ttldrop", { subQueueType: "deadLetter" }]]) {
    const receiver = client.createReceiver(queue, options);
    await expectNoMessage(receiver, 1000);
    await receiver.close();
  }
  log("expired messages were dead-lettered or dropped without a receiver");
}

async function forwarding(client) {
  await client.createSender("front").sendMessages({ body: "routed", messageId: "js-fwd-1" });
  const back = client.createReceiver("back");
  const [message] = await receiveExactly(back, 1);
  expectEq(message.messageId, "js-fwd-1", "forwarded message id");
  await back.completeMessage(message);
  await back.close();

  await client.createSender("poison").sendMessages({ body: "bad", messageId: "js-dl-1" });
  const poison = client.createReceiver("poison");
  const [bad] = await receiveExactly(poison, 1);
  await poison.deadLetterMessage(bad, { deadLetterReason: "Broken", deadLetterErrorDescription: "cannot parse" });
  await poison.close();
  const graveyard = client.createReceiver("graveyard");
  const [moved] = await receiveExactly(graveyard, 1);
  expectEq(moved.messageId, "js-dl-1", "forwarded dead letter id");
  expectEq(moved.applicationProperties?.DeadLetterReason, "Broken", "DeadLetterReason kept");
  await graveyard.completeMessage(moved);
  await graveyard.close();
  log("forwarding delivered to back and graveyard");
}

runScenario(async () => {
  const { conn } = scenarioArgs();
  const client = createClient(conn);
  try {
    await duplicates(client);
    await expiry(client);
    await forwarding(client);
  } finally {
    await client.close();
  }
});
