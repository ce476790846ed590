// Scheduled messages. scheduleMessages 3 s ahead returns a sequence number; a receive right away
// gets nothing; peek shows the message with state "scheduled" and its scheduled time. A second
// message scheduled the same way is canceled with cancelScheduledMessages: peek no longer shows
// it and it is never received. A normal send with scheduledEnqueueTimeUtc set behaves like
// scheduleMessages. Once the time has passed exactly the two remaining messages arrive, not
// before their time, and then the queue is empty.
// `long` is the SDK's own dependency (its sequence numbers are Long values).
import Long from "long";
import { check, createClient, expectEq, expectNoMessage, log, receiveExactly, runScenario, scenarioArgs, toNumber } from "./common.mjs";

const DELAY_MS = 3000;
const FIRST = Long.fromNumber(1);

runScenario(async () => {
  const { conn, queue } = scenarioArgs();
  const client = createClient(conn, { maxRetries: 0 });
  try {
    const sender = client.createSender(queue);
    const receiver = client.createReceiver(queue, { maxAutoLockRenewalDurationInMs: 0 });
    const due = new Date(Date.now() + DELAY_MS);
    const kept = await sender.scheduleMessages({ body: "scheduled", messageId: "sched-kept" }, due);
    const canceled = await sender.scheduleMessages({ body: "never", messageId: "sched-canceled" }, due);
    log(`scheduleMessages returned ${kept} and ${canceled}`);
    check(Array.isArray(kept) && kept.length === 1 && Long.isLong(kept[0]), `scheduleMessages should return one Long, got ${kept}`);
    check(Array.isArray(canceled) && canceled.length === 1 && Long.isLong(canceled[0]), `scheduleMessages should return one Long, got ${canceled}`);
    check(canceled[0].greaterThan(kept[0]), `sequence numbers should increase: ${kept[0]} then ${canceled[0]}`);
    await sender.sendMessages({ body: "sent scheduled", messageId: "sched-sent", scheduledEnqueueTimeUtc: due });

    await expectNoMessage(receiver, 1000);

    let peeked = await receiver.peekMessages(10, { fromSequenceNumber: FIRST });
    log(`peek before the due time: ${JSON.stringify(peeked.map((m) => [m.messageId, toNumber(m.sequenceNumber), m.state]))}`);
    expectEq(peeked.map((m) => m.messageId), ["sched-kept", "sched-canceled", "sched-sent"], "peeked messageIds");
    expectEq(peeked.slice(0, 2).map((m) => toNumber(m.sequenceNumber)), [toNumber(kept[0]), toNumber(canceled[0])], "peeked sequence numbers");
    for (const message of peeked) {
      expectEq(message.state, "scheduled", `state of ${message.messageId}`);
      expectEq(message.scheduledEnqueueTimeUtc?.getTime(), due.getTime(), `scheduledEnqueueTimeUtc of ${message.messageId}`);
    }
    const sentSeq = toNumber(peeked[2].sequenceNumber);

    await sender.cancelScheduledMessages(canceled[0]);
    peeked = await receiver.peekMessages(10, { fromSequenceNumber: FIRST });
    expectEq(peeked.map((m) => [m.messageId, toNumber(m.sequenceNumber)]), [["sched-kept", toNumber(kept[0])], ["sched-sent", sentSeq]], "peek after cancel");

    const received = await receiveExactly(receiver, 2, { maxWaitTimeInMs: DELAY_MS + 5000 });
    const arrived = Date.now();
    log(`received ${received.map((m) => m.messageId)} at ${new Date(arrived).toISOString()} (due ${due.toISOString()})`);
    check(arrived >= due.getTime() - 200, `scheduled messages arrived at ${new Date(arrived).toISOString()}, before their time ${due.toISOString()}`);
    expectEq(received.map((m) => m.messageId).sort(), ["sched-kept", "sched-sent"], "received messageIds");
    expectEq(received.map((m) => toNumber(m.sequenceNumber)).sort((a, b) => a - b), [toNumber(kept[0]), sentSeq].sort((a, b) => a - b), "received sequence numbers");
    const bodies = Object.fromEntries(received.map((m) => [m.messageId, m.body]));
    expectEq(bodies, { "sched-kept": "scheduled", "sched-sent": "sent scheduled" }, "received bodies");
    for (const message of received) {
      expectEq(message.deliveryCount, 0, `deliveryCount of ${message.messageId}`);
      expectEq(message.scheduledEnqueueTimeUtc?.getTime(), due.getTime(), `scheduledEnqueueTimeUtc of received ${message.messageId}`);
      await receiver.completeMessage(message);
    }

    await expectNoMessage(receiver, 2000);
    expectEq((await receiver.peekMessages(10, { fromSequenceNumber: FIRST })).length, 0, "messages peeked after completing");
    await sender.close();
    await receiver.close();
  } finally {
    await client.close();
  }
});
