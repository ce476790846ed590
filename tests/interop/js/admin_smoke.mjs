// The JS SDK's ServiceBusAdministrationClient against Busbar (the reference's test plan,
// §7 item 40), from the same connection string as a data-plane ServiceBusClient: namespace,
// create/get/update a queue, queueExists, paging, a subscription, SQL and correlation rules,
// listRules, runtime counts, and the errors the SDK names. The admin client speaks HTTPS to
// the Endpoint's port; run with NODE_EXTRA_CA_CERTS naming the broker's CA.
// Arguments: CONNECTION_STRING PREFIX.
import { ServiceBusAdministrationClient } from "@azure/service-bus";
import {
  check,
  createClient,
  expectEq,
  expectErrorCode,
  log,
  runScenario,
  scenarioArgs,
} from "./common.mjs";

runScenario(async () => {
  const { conn, queue: prefix } = scenarioArgs();
  const admin = new ServiceBusAdministrationClient(conn);
  const q1 = `${prefix}-jq1`;
  const q2 = `${prefix}-jq2`;
  const topic = `${prefix}-jt`;

  check((await admin.getNamespaceProperties()).name, "namespace name");
  const created = await admin.createQueue(q1, { lockDuration: "PT30S", maxDeliveryCount: 4 });
  expectEq([created.lockDuration, created.maxDeliveryCount], ["PT30S", 4], "created queue");
  await admin.createQueue(q2, { forwardTo: q1 });
  const got = await admin.getQueue(q2);
  check(got.forwardTo.endsWith(`/${q1}`), `forwardTo ${got.forwardTo}`);
  const queue = await admin.getQueue(q1);
  queue.maxDeliveryCount = 9;
  await admin.updateQueue(queue);
  expectEq((await admin.getQueue(q1)).maxDeliveryCount, 9, "updated maxDeliveryCount");
  expectEq([await admin.queueExists(q1), await admin.queueExists(`${prefix}-nope`)], [true, false], "queueExists");
  await expectErrorCode(() => admin.createQueue(q1), "MessageEntityAlreadyExistsError", "createQueue twice");
  await expectErrorCode(() => admin.getQueue(`${prefix}-nope`), "MessageEntityNotFoundError", "getQueue missing");

  const pages = [];
  for await (const page of admin.listQueues().byPage({ maxPageSize: 1 })) {
    pages.push(page.map((q) => q.name));
  }
  const paged = pages.flat().filter((name) => name.startsWith(prefix));
  expectEq(paged, [q1, q2], "listQueues one per page");
  check(pages.every((page) => page.length <= 1), `pages ${JSON.stringify(pages)}`);

  const client = createClient(conn);
  const sender = client.createSender(q1);
  await sender.sendMessages([{ body: "a" }, { body: "b" }]);
  await sender.close();
  const runtime = await admin.getQueueRuntimeProperties(q1);
  expectEq([runtime.activeMessageCount, runtime.totalMessageCount], [2, 2], "queue counts");

  await admin.createTopic(topic);
  await admin.createSubscription(topic, "js1");
  await admin.createRule(topic, "js1", "jr1", { sqlExpression: "a = @p", sqlParameters: { "@p": 3 } }, { sqlExpression: "SET b = 1" });
  await admin.createRule(topic, "js1", "jr2", { correlationId: "c", applicationProperties: { n: 3, s: "x", b: true } });
  const rules = [];
  for await (const rule of admin.listRules(topic, "js1")) {
    rules.push(rule);
  }
  expectEq(rules.map((r) => r.name), ["$Default", "jr1", "jr2"], "listRules");
  expectEq(rules[1].filter.sqlExpression, "a = 3.0", "SQL filter with its parameter (JS sends numbers as doubles)");
  expectEq(rules[1].action.sqlExpression, "SET b = 1", "SQL action");
  expectEq(rules[2].filter.correlationId, "c", "correlation id");
  expectEq(rules[2].filter.applicationProperties, { n: 3, s: "x", b: true }, "correlation properties");
  const subscriptions = [];
  for await (const s of admin.listSubscriptionsRuntimeProperties(topic)) {
    subscriptions.push([s.subscriptionName, s.topicName, s.activeMessageCount]);
  }
  expectEq(subscriptions, [["js1", topic, 0]], "listSubscriptionsRuntimeProperties");
  await admin.deleteRule(topic, "js1", "jr1");
  await expectErrorCode(() => admin.deleteRule(topic, "js1", "jr1"), "MessageEntityNotFoundError", "deleteRule twice");
  await admin.deleteTopic(topic);
  await admin.deleteQueue(q2);
  await admin.deleteQueue(q1);
  await client.close();
  log("admin smoke test done");
});
