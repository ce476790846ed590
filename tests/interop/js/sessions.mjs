// Sessions, through the JS SDK, on a queue with RequiresSession (argv[3]): a session
// receiver gets only its session's messages, in order; the lock is exclusive and renewable;
// state is kept; the next available session is handed out; with none left the wait times
// out; a message without a session id is refused.
import { createClient, expectEq, expectErrorCode, expectNoMessage, check, log, receiveExactly, runScenario, scenarioArgs } from "./common.mjs";

async function main() {
  const { conn, queue } = scenarioArgs();
  const client = createClient(conn);
  const sender = client.createSender(queue);
  await sender.sendMessages([1, 2, 3].map((i) => ({ body: `X${i}`, sessionId: "X" })));
  await sender.sendMessages([1, 2].map((i) => ({ body: `Y${i}`, sessionId: "Y" })));

  const x = await client.acceptSession(queue, "X");
  expectEq(x.sessionId, "X", "sessionId");
  check(x.sessionLockedUntilUtc instanceof Date, `sessionLockedUntilUtc is ${x.sessionLockedUntilUtc}`);
  const messages = await receiveExactly(x, 3);
  expectEq(messages.map((m) => m.body), ["X1", "X2", "X3"], "bodies of session X, in order");
  const before = x.sessionLockedUntilUtc.getTime();
  const renewed = await x.renewSessionLock();
  check(renewed.getTime() >= before, `renewed lock ${renewed.toISOString()} is earlier than ${new Date(before).toISOString()}`);
  await x.setSessionState({ step: 3 });
  expectEq(await x.getSessionState(), { step: 3 }, "session state read back");

  // No retries, and a short operation timeout: it is what JS sends as the session wait.
  const strict = createClient(conn, { maxRetries: 0, timeoutInMs: 3000 });
  await expectErrorCode(() => strict.acceptSession(queue, "X"), "SessionCannotBeLocked", "a second receiver for session X");

  for (const message of messages) {
    await x.completeMessage(message);
  }
  await expectNoMessage(x, 1000);
  await x.close();
  log("session X: 3 messages in order, lock renewed, state kept");

  const next = await client.acceptNextSession(queue, { maxAwaitTimeInMs: 5000 });
  expectEq(next.sessionId, "Y", "next available session");
  const ys = await receiveExactly(next, 2);
  expectEq(ys.map((m) => m.body), ["Y1", "Y2"], "bodies of session Y");
  for (const message of ys) {
    await next.completeMessage(message);
  }
  await next.close();

  await expectErrorCode(
    () => strict.acceptNextSession(queue, { maxAwaitTimeInMs: 2000 }),
    "ServiceTimeout",
    "next available session with none left",
  );
  const plain = strict.createSender(queue);
  try {
    await plain.sendMessages({ body: "no session" });
    throw new Error("a message without a session id was accepted");
  } catch (error) {
    check(error?.name === "ServiceBusError", `sending without a session id: ${error?.name}: ${error?.message}`);
    log(`a message without a session id was refused: ${error.code}`);
  }
  await strict.close();
  await sender.close();
  await client.close();
}

runScenario(main);
