// Exact queue counts over the HTTP API, after the SDK put messages in every state.
// Arguments: CONNECTION_STRING QUEUE HTTP_ADDR (host:port of the broker's HTTP listener).
// Three messages are sent; one is dead-lettered, one deferred and one left active, and a fourth
// is scheduled an hour ahead. GET /api/queues/<queue> (also in upper case: lookup is
// case-insensitive) must then report exactly active 1, dead-letter 1, deferred 1, scheduled 1,
// locked 0, transfer 0 and total 4; GET /api/queues lists every queue sorted by name with the
// same numbers for this one. While a receiver holds the active message, locked is 1 and active
// still 1; after it is abandoned, locked is 0 again. GET /api/queues/nope answers 404 with a
// JSON error. The messages are left in place for the caller to check `busbar queues`.
import { check, createClient, expectEq, log, receiveExactly, runScenario, scenarioArgs } from "./common.mjs";

const EXPECTED = {
  active_message_count: 1,
  scheduled_message_count: 1,
  deferred_message_count: 1,
  locked_message_count: 0,
  dead_letter_message_count: 1,
  transfer_message_count: 0,
  transfer_dead_letter_message_count: 0,
  total_message_count: 4,
};

async function get(http, path) {
  const response = await fetch(`http://${http}${path}`, { signal: AbortSignal.timeout(10000) });
  return { status: response.status, body: await response.json() };
}

const countsOf = (info) => Object.fromEntries(Object.keys(EXPECTED).map((key) => [key, info?.[key]]));

runScenario(async () => {
  const { conn, queue } = scenarioArgs();
  const http = process.argv[4];
  check(http, "usage: node queue_counts.mjs CONNECTION_STRING QUEUE HTTP_ADDR");
  const client = createClient(conn, { maxRetries: 0 });
  try {
    const sender = client.createSender(queue);
    await sender.sendMessages([1, 2, 3].map((n) => ({ body: `body ${n}`, messageId: `count-${n}` })));
    await sender.scheduleMessages({ body: "far future", messageId: "count-scheduled" }, new Date(Date.now() + 3600 * 1000));
    await sender.close();

    let receiver = client.createReceiver(queue, { maxAutoLockRenewalDurationInMs: 0 });
    const [first, second, third] = await receiveExactly(receiver, 3);
    await receiver.deadLetterMessage(first, { deadLetterReason: "counted", deadLetterErrorDescription: "for the counts" });
    await receiver.deferMessage(second);
    await receiver.abandonMessage(third);
    await receiver.close();

    let { status, body } = await get(http, `/api/queues/${queue}`);
    log(`GET /api/queues/${queue}: ${status} ${JSON.stringify(body)}`);
    expectEq(status, 200, `status of GET /api/queues/${queue}`);
    expectEq(body.name, queue, "name");
    expectEq(countsOf(body), EXPECTED, `counts from /api/queues/${queue}`);

    ({ status, body } = await get(http, `/api/queues/${queue.toUpperCase()}`));
    expectEq(status, 200, `status of GET /api/queues/${queue.toUpperCase()}`);
    expectEq(body.name, queue, "name looked up in upper case");

    ({ status, body } = await get(http, "/api/queues"));
    log(`GET /api/queues: ${status} ${JSON.stringify(Array.isArray(body) ? body.map((q) => [q.name, q.total_message_count]) : body)}`);
    expectEq(status, 200, "status of GET /api/queues");
    check(Array.isArray(body), `/api/queues should be a JSON array, got ${JSON.stringify(body)}`);
    const names = body.map((q) => q.name);
    expectEq(names, [...names].sort(), "/api/queues order");
    const mine = body.filter((q) => q.name === queue);
    expectEq(mine.length, 1, `entries named ${queue} in /api/queues`);
    expectEq(countsOf(mine[0]), EXPECTED, `counts of ${queue} in /api/queues`);
    for (const other of body.filter((q) => q.name !== queue)) {
      expectEq(other.total_message_count, 0, `total_message_count of untouched queue ${other.name}`);
    }

    receiver = client.createReceiver(queue, { maxAutoLockRenewalDurationInMs: 0 });
    const [held] = await receiveExactly(receiver, 1);
    expectEq(held.messageId, "count-3", "the active message");
    ({ body } = await get(http, `/api/queues/${queue}`));
    expectEq(countsOf(body), { ...EXPECTED, locked_message_count: 1 }, "counts while the active message is locked");
    await receiver.abandonMessage(held);
    ({ body } = await get(http, `/api/queues/${queue}`));
    expectEq(countsOf(body), EXPECTED, "counts after abandoning the locked message");
    await receiver.close();

    ({ status, body } = await get(http, "/api/queues/nope"));
    log(`GET /api/queues/nope: ${status} ${JSON.stringify(body)}`);
    expectEq(status, 404, "status of GET /api/queues/nope");
    check(typeof body?.error === "string" && body.error.includes("nope"), `404 body should be a JSON error naming the queue, got ${JSON.stringify(body)}`);
  } finally {
    await client.close();
  }
});
