// Topics and filtered subscriptions, through the JS SDK. The topic is the one
// tests/topics.rs configures ("orders" with subscriptions all, created, big, tagged, audit;
// see python/topic_subscriptions.py for their rules); argv[3] names the topic.
import {
  createClient,
  expectEq,
  expectErrorCode,
  expectNoMessage,
  log,
  receiveExactly,
  runScenario,
  scenarioArgs,
  toNumber,
} from "./common.mjs";

function order(messageId, subject, applicationProperties) {
  return { body: `order ${messageId}`, messageId, subject, applicationProperties };
}

async function drain(client, topic, subscription, count) {
  const receiver = client.createReceiver(topic, subscription);
  const messages = await receiveExactly(receiver, count);
  for (const message of messages) {
    await receiver.completeMessage(message);
  }
  await expectNoMessage(receiver, 1000);
  await receiver.close();
  return messages;
}

async function main() {
  const { conn, queue: topic } = scenarioArgs();
  const client = createClient(conn);
  const sender = client.createSender(topic);
  await sender.sendMessages(order("js-1", "created", { amount: 150, region: "eu", vip: true, internal: "secret" }));
  await sender.sendMessages([order("js-2", "updated", { amount: 50, region: "us" }), order("js-3", "deleted")]);
  await sender.sendMessages(order("js-1", "created", { amount: 999 }));
  await sender.close();

  const all = await drain(client, topic, "all", 3);
  expectEq(all.map((m) => m.messageId), ["js-1", "js-2", "js-3"], "ids in 'all'");
  expectEq(toNumber(all[0].applicationProperties.amount), 150, "the first js-1 is the one kept");
  expectEq((await drain(client, topic, "created", 1)).map((m) => m.messageId), ["js-1"], "ids in 'created'");
  expectEq((await drain(client, topic, "big", 1)).map((m) => m.messageId), ["js-1"], "ids in 'big'");
  const tagged = await drain(client, topic, "tagged", 3);
  const annotated = tagged.filter((m) => m.applicationProperties?.RuleName === "vip");
  expectEq(annotated.length, 1, "copies made by the rule with an action");
  expectEq(annotated[0].applicationProperties.priority, "high", "property set by the action");
  expectEq("internal" in annotated[0].applicationProperties, false, "property removed by the action");
  expectEq(tagged.map((m) => m.messageId).sort(), ["js-1", "js-1", "js-2"], "ids in 'tagged'");
  const audit = client.createReceiver("auditq");
  const forwarded = await receiveExactly(audit, 3);
  for (const message of forwarded) {
    await audit.completeMessage(message);
  }
  await audit.close();
  log("filters selected, the action annotated, the duplicate was dropped, audit forwarded");

  const strict = createClient(conn, { maxRetries: 0 });
  await expectErrorCode(
    async () => {
      const receiver = strict.createReceiver(topic, "missing");
      await receiver.receiveMessages(1, { maxWaitTimeInMs: 2000 });
    },
    "MessagingEntityNotFound",
    "receive from a missing subscription",
  );
  await strict.close();
  await client.close();
}

runScenario(main);
