// Deferral. Two messages are received and deferred. A normal receive then gets nothing and peek
// shows both in state "deferred". receiveDeferredMessages([seq]) returns the first locked (lock
// token, future lockedUntilUtc, same id, body and sequence number); completing it (the SDK
// settles a deferred message through $management update-disposition) removes it, so a second
// receiveDeferredMessages for it fails with code MessageNotFound. The second deferred message,
// received by sequence number and dead-lettered with a reason and description, lands in the
// dead-letter queue with both. The queue is empty afterwards.
// `long` is the SDK's own dependency (its sequence numbers are Long values).
import Long from "long";
import { UUID_PATTERN, check, createClient, expectEq, expectErrorCode, expectNoMessage, log, receiveExactly, runScenario, scenarioArgs, toNumber } from "./common.mjs";

runScenario(async () => {
  const { conn, queue } = scenarioArgs();
  const client = createClient(conn, { maxRetries: 0 });
  try {
    const sender = client.createSender(queue);
    await sender.sendMessages([
      { body: "first", messageId: "defer-1" },
      { body: "second", messageId: "defer-2" },
    ]);
    await sender.close();

    const receiver = client.createReceiver(queue, { maxAutoLockRenewalDurationInMs: 0 });
    const received = await receiveExactly(receiver, 2);
    expectEq(received.map((m) => m.messageId), ["defer-1", "defer-2"], "received messageIds");
    const seqs = received.map((m) => m.sequenceNumber);
    for (const message of received) {
      await receiver.deferMessage(message);
    }
    log(`deferred sequence numbers ${seqs}`);
    await expectNoMessage(receiver, 1000);

    const peeked = await receiver.peekMessages(10, { fromSequenceNumber: Long.fromNumber(1) });
    log(`peek: ${JSON.stringify(peeked.map((m) => [m.messageId, toNumber(m.sequenceNumber), m.state]))}`);
    expectEq(peeked.map((m) => toNumber(m.sequenceNumber)), seqs.map(toNumber), "peeked sequence numbers");
    expectEq(peeked.map((m) => m.state), ["deferred", "deferred"], "peeked states");

    const [again] = await receiver.receiveDeferredMessages([seqs[0]]);
    check(again !== undefined, "receiveDeferredMessages returned no message");
    expectEq(again.messageId, "defer-1", "deferred receive messageId");
    expectEq(toNumber(again.sequenceNumber), toNumber(seqs[0]), "deferred receive sequenceNumber");
    expectEq(again.body, "first", "deferred receive body");
    expectEq(again.state, "deferred", "deferred receive state");
    check(typeof again.lockToken === "string" && UUID_PATTERN.test(again.lockToken), `deferred receive lockToken should be a UUID, got ${again.lockToken}`);
    check(again.lockedUntilUtc instanceof Date && again.lockedUntilUtc.getTime() > Date.now(), `deferred receive lockedUntilUtc should be in the future, got ${again.lockedUntilUtc}`);
    await receiver.completeMessage(again);
    log("completed the deferred message");

    await expectErrorCode(() => receiver.receiveDeferredMessages([seqs[0]]), "MessageNotFound", "receiving a completed deferred message again");

    const [poison] = await receiver.receiveDeferredMessages([seqs[1]]);
    expectEq(poison?.messageId, "defer-2", "second deferred receive messageId");
    await receiver.deadLetterMessage(poison, { deadLetterReason: "deferred-poison", deadLetterErrorDescription: "gave up on it" });
    await expectNoMessage(receiver, 1000);
    expectEq((await receiver.peekMessages(10, { fromSequenceNumber: Long.fromNumber(1) })).length, 0, "messages peeked after settling");
    await receiver.close();

    const dead = client.createReceiver(queue, { subQueueType: "deadLetter", maxAutoLockRenewalDurationInMs: 0 });
    const [deadLettered] = await receiveExactly(dead, 1);
    expectEq(deadLettered.messageId, "defer-2", "dead-lettered messageId");
    expectEq(deadLettered.body, "second", "dead-lettered body");
    expectEq(deadLettered.deadLetterReason, "deferred-poison", "deadLetterReason");
    expectEq(deadLettered.deadLetterErrorDescription, "gave up on it", "deadLetterErrorDescription");
    await dead.completeMessage(deadLettered);
    await expectNoMessage(dead, 1000);
    await dead.close();
  } finally {
    await client.close();
  }
});
