// Rule management over the subscription's $management node (ServiceBusRuleManager), through
// the JS SDK. argv[3] is the topic ("orders"), argv[4] the phase:
//   rules          list the default rule, replace it with a SQL rule and a correlation rule
//                  with an action, refuse a duplicate and an unknown name, check what the
//                  subscription then takes
//   after-restart  the rules added at run time are still there and still filter
// The subscription is "ruled", configured without rules.
import { createClient, expectEq, expectErrorCode, expectNoMessage, log, receiveExactly, runScenario, scenarioArgs } from "./common.mjs";

// The SDK's pager yields one undefined item when a subscription has no rules at all (its
// first page is empty); skip it.
async function listRules(manager) {
  const rules = [];
  for await (const rule of manager.listRules()) {
    if (rule !== undefined) {
      rules.push(rule);
    }
  }
  return rules;
}

async function ruleNames(manager) {
  return (await listRules(manager)).map((rule) => rule.name);
}

async function sendAndCheck(client, topic, prefix) {
  const sender = client.createSender(topic);
  await sender.sendMessages([
    { body: "eu", messageId: `${prefix}-eu`, applicationProperties: { region: "eu" } },
    { body: "correlated", messageId: `${prefix}-c`, correlationId: "c1" },
    { body: "neither", messageId: `${prefix}-us`, applicationProperties: { region: "us" } },
  ]);
  await sender.close();
  const receiver = client.createReceiver(topic, "ruled");
  const got = await receiveExactly(receiver, 2);
  for (const message of got) {
    await receiver.completeMessage(message);
  }
  await expectNoMessage(receiver, 1000);
  await receiver.close();
  const byId = Object.fromEntries(got.map((m) => [m.messageId, m]));
  expectEq(Object.keys(byId).sort(), [`${prefix}-c`, `${prefix}-eu`], "ids taken by the rules");
  expectEq(byId[`${prefix}-c`].applicationProperties?.tagged, "yes", "property set by the correlation rule's action");
  expectEq(byId[`${prefix}-c`].applicationProperties?.RuleName, "tagger", "RuleName of the annotated copy");
  expectEq(byId[`${prefix}-eu`].applicationProperties?.RuleName, undefined, "the plain copy has no RuleName");
}

async function main() {
  const { conn, queue: topic } = scenarioArgs();
  const phase = process.argv[4];
  const client = createClient(conn);
  const manager = client.createRuleManager(topic, "ruled");
  if (phase === "rules") {
    expectEq(await ruleNames(manager), ["$Default"], "rules of a new subscription");
    await manager.deleteRule("$Default");
    expectEq(await ruleNames(manager), [], "rules after deleting $Default");
    await manager.createRule("eu", { sqlExpression: "region = 'eu'" });
    await manager.createRule("tagger", { correlationId: "c1" }, { sqlExpression: "SET tagged = 'yes'" });
    await expectErrorCode(() => manager.createRule("EU", { sqlExpression: "1=1" }), "MessagingEntityAlreadyExists", "duplicate rule name");
    await expectErrorCode(() => manager.deleteRule("nope"), "MessagingEntityNotFound", "deleting an unknown rule");
    const listed = await listRules(manager);
    expectEq(listed.map((r) => r.name), ["eu", "tagger"], "rule names");
    expectEq(listed[0].filter.sqlExpression, "region = 'eu'", "SQL filter as listed");
    expectEq(listed[1].filter.correlationId, "c1", "correlation filter as listed");
    expectEq(listed[1].action.sqlExpression, "SET tagged = 'yes'", "action as listed");
    await sendAndCheck(client, topic, "before");
    log("rules added, listed, refused when duplicated or unknown, and filtering");
  } else if (phase === "after-restart") {
    expectEq(await ruleNames(manager), ["eu", "tagger"], "rule names after restart");
    await sendAndCheck(client, topic, "after");
    log("rules added at run time survived the restart");
  } else {
    throw new Error(`unknown phase ${phase}`);
  }
  await manager.close?.();
  await client.close();
}

runScenario(main);
