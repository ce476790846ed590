// Entity status: a Disabled queue refuses sends and receives, a SendDisabled one sends,
// a ReceiveDisabled one receives, each with code MessagingEntityDisabled. Arguments: the
// Disabled queue, then SendDisabled and ReceiveDisabled ones.
import { createClient, expectEq, expectErrorCode, log, runScenario, scenarioArgs } from "./common.mjs";

async function receive(client, queue) {
  const receiver = client.createReceiver(queue, { maxAutoLockRenewalDurationInMs: 0 });
  try {
    return await receiver.receiveMessages(1, { maxWaitTimeInMs: 2000 });
  } finally {
    await receiver.close();
  }
}

async function send(client, queue) {
  const sender = client.createSender(queue);
  try {
    await sender.sendMessages({ body: `to ${queue}` });
  } finally {
    await sender.close();
  }
}

runScenario(async () => {
  const { conn, queue: disabled } = scenarioArgs();
  const [sendDisabled, receiveDisabled] = process.argv.slice(4);
  const client = createClient(conn, { maxRetries: 0 });
  try {
    await expectErrorCode(() => send(client, disabled), "MessagingEntityDisabled", "send to Disabled");
    await expectErrorCode(() => receive(client, disabled), "MessagingEntityDisabled", "receive from Disabled");
    await expectErrorCode(() => send(client, sendDisabled), "MessagingEntityDisabled", "send to SendDisabled");
    expectEq((await receive(client, sendDisabled)).length, 0, "receive from SendDisabled works");
    await send(client, receiveDisabled);
    log("send to ReceiveDisabled works");
    await expectErrorCode(() => receive(client, receiveDisabled), "MessagingEntityDisabled", "receive from ReceiveDisabled");
  } finally {
    await client.close();
  }
});
