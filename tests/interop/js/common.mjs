// Shared helpers for the JS Service Bus interop scenario scripts.
//
// Every scenario takes the connection string as argv[2] and the queue name as argv[3] (falling
// back to BUSBAR_CONNECTION_STRING / BUSBAR_QUEUE), runs one scenario, prints what it observed,
// and exits 0 only if every check held. A failed check exits 1 naming the expected and actual
// values; any other exception exits 2 with its stack.
import { isDeepStrictEqual, inspect } from "node:util";
import { ServiceBusClient } from "@azure/service-bus";

export const UUID_PATTERN = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

export class ScenarioFailure extends Error {}

export function scenarioArgs() {
  const conn = process.argv[2] ?? process.env.BUSBAR_CONNECTION_STRING;
  const queue = process.argv[3] ?? process.env.BUSBAR_QUEUE;
  if (!conn || !queue) {
    throw new ScenarioFailure("usage: node <script> CONNECTION_STRING QUEUE");
  }
  return { conn, queue };
}

export function log(message) {
  console.log(`[${new Date().toISOString().slice(11, 19)}] ${message}`);
}

export function check(condition, message) {
  if (!condition) {
    throw new ScenarioFailure(message);
  }
}

export function expectEq(actual, expected, what) {
  if (!isDeepStrictEqual(actual, expected)) {
    throw new ScenarioFailure(`${what}: expected ${inspect(expected)}, got ${inspect(actual)}`);
  }
}

// Error scenarios pass { maxRetries: 0 } so a refusal surfaces at once.
export function createClient(conn, retryOptions = {}) {
  return new ServiceBusClient(conn, { retryOptions: { timeoutInMs: 20000, ...retryOptions } });
}

// Long (from the SDK) or number → number.
export function toNumber(value) {
  return typeof value === "number" ? value : Number(value?.toString());
}

export async function receiveExactly(receiver, count, { maxWaitTimeInMs = 10000, deadlineMs = 30000 } = {}) {
  const received = [];
  const deadline = Date.now() + deadlineMs;
  while (received.length < count && Date.now() < deadline) {
    const batch = await receiver.receiveMessages(count - received.length, { maxWaitTimeInMs });
    received.push(...batch);
  }
  check(
    received.length === count,
    `expected ${count} message(s), received ${received.length} within ${deadlineMs / 1000}s`,
  );
  return received;
}

export async function expectNoMessage(receiver, maxWaitTimeInMs = 2000) {
  const extra = await receiver.receiveMessages(1, { maxWaitTimeInMs });
  if (extra.length > 0) {
    const message = extra[0];
    throw new ScenarioFailure(
      `expected no message within ${maxWaitTimeInMs} ms, got messageId=${inspect(message.messageId)} ` +
        `sequenceNumber=${message.sequenceNumber} deliveryCount=${message.deliveryCount} body=${inspect(message.body)}`,
    );
  }
}

// Runs `action`, which must throw a ServiceBusError with `code`; returns that error.
export async function expectErrorCode(action, code, what) {
  try {
    await action();
  } catch (error) {
    if (error?.code === code) {
      log(`${what}: ${error.name} with code ${code} as expected: ${error.message}`);
      return error;
    }
    throw new ScenarioFailure(
      `${what}: expected an error with code ${code}, got ${error?.name} code=${inspect(error?.code)}: ${error?.message}`,
    );
  }
  throw new ScenarioFailure(`${what}: succeeded; expected an error with code ${code}`);
}

export function runScenario(main) {
  const name = process.argv[1]?.split("/").pop();
  main().then(
    () => {
      console.log(`PASS ${name}`);
      process.exit(0);
    },
    (error) => {
      if (error instanceof ScenarioFailure) {
        console.log(`FAIL ${name}: ${error.message}`);
        process.exit(1);
      }
      console.error(error);
      console.log(`ERROR ${name}: unexpected exception (see above)`);
      process.exit(2);
    },
  );
}
