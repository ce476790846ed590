// One connection string (the AMQP port, no emulator flag) for the data and the
// administration clients: the data client speaks AMQP over TLS to the Endpoint's port, the
// administration client HTTPS to the same port; the broker's CA is trusted through
// NODE_EXTRA_CA_CERTS.
import { ServiceBusAdministrationClient } from "@azure/service-bus";
import { check, createClient, expectEq, log, receiveExactly, runScenario, scenarioArgs } from "./common.mjs";

runScenario(async () => {
  const { conn, queue } = scenarioArgs();
  const admin = new ServiceBusAdministrationClient(conn);
  const names = [];
  for await (const described of admin.listQueues()) {
    names.push(described.name);
  }
  check(names.includes(queue), `${queue} listed over HTTPS: ${names}`);
  const runtime = await admin.getQueueRuntimeProperties(queue);
  expectEq(runtime.totalMessageCount, 0, "total message count over HTTPS");
  log("administration client over HTTPS on the AMQP port");

  const client = createClient(conn);
  try {
    const sender = client.createSender(queue);
    await sender.sendMessages({ body: "over TLS", messageId: "tls-1" });
    const receiver = client.createReceiver(queue);
    const [message] = await receiveExactly(receiver, 1);
    expectEq(message.body, "over TLS", "body");
    await receiver.completeMessage(message);
    log("data client over TLS on the same port");
  } finally {
    await client.close();
  }
});
