// AMQP over WebSockets: with webSocketOptions: { webSocket: WebSocket } (package ws) the
// client sends a message, a batch and a 400 KB message and receives each intact, then finds
// the queue empty. The SDK always dials wss://<Endpoint host>:<Endpoint port>/$servicebus/websocket;
// argv[4] "ws" swaps in a WebSocket class that dials ws:// instead, for a broker's plain
// HTTP entry (the Endpoint then names that entry's port). For wss, trust the broker's CA
// with NODE_EXTRA_CA_CERTS.
import { ServiceBusClient } from "@azure/service-bus";
import WebSocket from "ws";

import { check, expectEq, expectNoMessage, log, receiveExactly, runScenario, scenarioArgs } from "./common.mjs";

// A WebSocket that dials ws:// where the SDK asks for wss://.
class PlainWebSocket extends WebSocket {
  constructor(url, protocols, options) {
    super(url.replace(/^wss:/, "ws:"), protocols, options);
  }
}

const LARGE_BODY = Buffer.alloc(400 * 1024, 7);

runScenario(async () => {
  const { conn, queue } = scenarioArgs();
  const plain = process.argv[4] === "ws";
  const client = new ServiceBusClient(conn, {
    webSocketOptions: { webSocket: plain ? PlainWebSocket : WebSocket },
    retryOptions: { timeoutInMs: 20000 },
  });
  try {
    const sender = client.createSender(queue);
    await sender.sendMessages({ body: "over a websocket", messageId: "single" });
    const batch = await sender.createMessageBatch();
    for (let index = 0; index < 20; index++) {
      check(batch.tryAddMessage({ body: `batched ${index}` }), `message ${index} did not fit the batch`);
    }
    await sender.sendMessages(batch);
    await sender.sendMessages({ body: LARGE_BODY, messageId: "large" });
    await sender.close();
    log(`sent 1 + 20 + 1 large over ${plain ? "ws" : "wss"}`);

    const receiver = client.createReceiver(queue, { maxAutoLockRenewalDurationInMs: 0 });
    const received = await receiveExactly(receiver, 22);
    expectEq(received[0].body, "over a websocket", "first body");
    expectEq(received.slice(1, 21).map((m) => m.body), [...Array(20).keys()].map((i) => `batched ${i}`), "batch bodies");
    const large = received[21].body;
    check(Buffer.isBuffer(large) && large.equals(LARGE_BODY), `large body: expected ${LARGE_BODY.length} bytes intact, got ${large?.length}`);
    for (const message of received) {
      await receiver.completeMessage(message);
    }
    log("received all 22 intact and completed them");
    await expectNoMessage(receiver);
    await receiver.close();
  } finally {
    await client.close();
  }
});
