// Peek. Five messages are sent. peekMessages(3) returns sequence numbers 1..3 in order, in state
// "active", with deliveryCount 0 and no lock; peeking from sequence number 4 returns 4 and 5.
// Peeking takes nothing away: all five are then received with deliveryCount 0. Two are
// dead-lettered with a reason and the rest completed; a receiver on the dead-letter sub-queue
// (subQueueType "deadLetter") peeks the two with their reasons, peeking from after the first
// returns only the second, and both can then be received and completed there.
// `long` is the SDK's own dependency (its sequence numbers are Long values).
import Long from "long";
import { check, createClient, expectEq, expectNoMessage, log, receiveExactly, runScenario, scenarioArgs, toNumber } from "./common.mjs";

const COUNT = 5;
const describe = (messages) => JSON.stringify(messages.map((m) => [m.messageId, toNumber(m.sequenceNumber), m.deliveryCount, m.state]));

function checkPeeked(messages, what) {
  for (const message of messages) {
    expectEq(message.deliveryCount, 0, `${what}: deliveryCount of ${message.messageId}`);
    expectEq(message.lockToken, undefined, `${what}: lockToken of ${message.messageId}`);
    expectEq(message.lockedUntilUtc, undefined, `${what}: lockedUntilUtc of ${message.messageId}`);
    expectEq(message.state, "active", `${what}: state of ${message.messageId}`);
  }
}

runScenario(async () => {
  const { conn, queue } = scenarioArgs();
  const ids = Array.from({ length: COUNT }, (_, i) => `peek-${i + 1}`);
  const client = createClient(conn, { maxRetries: 0 });
  try {
    const sender = client.createSender(queue);
    await sender.sendMessages(ids.map((id) => ({ body: `body ${id}`, messageId: id })));
    await sender.close();

    const receiver = client.createReceiver(queue, { maxAutoLockRenewalDurationInMs: 0 });
    const first = await receiver.peekMessages(3);
    log(`peek 3: ${describe(first)}`);
    expectEq(first.map((m) => toNumber(m.sequenceNumber)), [1, 2, 3], "peek 3 sequence numbers");
    expectEq(first.map((m) => m.messageId), ids.slice(0, 3), "peek 3 messageIds");
    expectEq(first.map((m) => m.body), ["body peek-1", "body peek-2", "body peek-3"], "peek 3 bodies");
    checkPeeked(first, "peek 3");

    const rest = await receiver.peekMessages(10, { fromSequenceNumber: Long.fromNumber(4) });
    log(`peek from 4: ${describe(rest)}`);
    expectEq(rest.map((m) => toNumber(m.sequenceNumber)), [4, 5], "peek from 4 sequence numbers");
    expectEq(rest.map((m) => m.messageId), ids.slice(3), "peek from 4 messageIds");
    checkPeeked(rest, "peek from 4");

    const received = await receiveExactly(receiver, COUNT);
    expectEq(received.map((m) => toNumber(m.sequenceNumber)), [1, 2, 3, 4, 5], "received sequence numbers");
    expectEq(received.map((m) => m.deliveryCount), [0, 0, 0, 0, 0], "delivery counts after peeking");
    for (const message of received.slice(0, 2)) {
      await receiver.deadLetterMessage(message, {
        deadLetterReason: `reason-${message.messageId}`,
        deadLetterErrorDescription: `description of ${message.messageId}`,
      });
    }
    for (const message of received.slice(2)) {
      await receiver.completeMessage(message);
    }
    await expectNoMessage(receiver, 1000);
    expectEq((await receiver.peekMessages(10, { fromSequenceNumber: Long.fromNumber(1) })).length, 0, "messages peeked on the emptied queue");
    await receiver.close();

    const dead = client.createReceiver(queue, { subQueueType: "deadLetter", maxAutoLockRenewalDurationInMs: 0 });
    const peeked = await dead.peekMessages(10, { fromSequenceNumber: Long.fromNumber(1) });
    log(`peek on the dead-letter queue: ${describe(peeked)}`);
    expectEq(peeked.map((m) => m.messageId), ids.slice(0, 2), "dead-letter peek messageIds");
    expectEq(peeked.map((m) => m.deadLetterReason), ["reason-peek-1", "reason-peek-2"], "dead-letter peek reasons");
    expectEq(peeked.map((m) => m.deadLetterErrorDescription), ["description of peek-1", "description of peek-2"], "dead-letter peek descriptions");
    expectEq(peeked.map((m) => m.body), ["body peek-1", "body peek-2"], "dead-letter peek bodies");
    for (const message of peeked) {
      expectEq(message.lockToken, undefined, `dead-letter peek lockToken of ${message.messageId}`);
    }
    check(peeked[0].sequenceNumber.lessThan(peeked[1].sequenceNumber), `dead-letter sequence numbers should increase, got ${describe(peeked)}`);
    const second = await dead.peekMessages(10, { fromSequenceNumber: peeked[0].sequenceNumber.add(1) });
    expectEq(second.map((m) => m.messageId), ids.slice(1, 2), "dead-letter peek from after the first");

    const taken = await receiveExactly(dead, 2);
    expectEq(taken.map((m) => m.messageId), ids.slice(0, 2), "dead-letter received messageIds after peeking");
    for (const message of taken) {
      await dead.completeMessage(message);
    }
    await expectNoMessage(dead, 1000);
    await dead.close();
  } finally {
    await client.close();
  }
});
