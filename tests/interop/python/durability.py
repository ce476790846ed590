"""Scenario 13 steps, driven by the Rust test around kill -9 and restart of the broker.

    durability.py CONN QUEUE send COUNT
        Sends dur-00000..dur-<COUNT-1> in batches of 50, waiting for each batch's outcome.
    durability.py CONN QUEUE expect FIRST END [COMPLETE]
        Receives (peek-lock) until every id in dur-FIRST..dur-<END-1> has arrived, fails on any
        id outside that range, reports redelivered duplicates, then completes the COMPLETE
        lowest ids (default 0) and closes the receiver without settling the rest.
"""

import sys
import time

from azure.servicebus import ServiceBusMessage

from sbcommon import ScenarioFailure, check, client, expect_eq, log, run, scenario_args

BATCH = 50
DEADLINE_SECONDS = 90


def message_id(index):
    return f"dur-{index:05d}"


def send(sb, queue, count):
    started = time.monotonic()
    with sb.get_queue_sender(queue) as sender:
        for first in range(0, count, BATCH):
            batch = sender.create_message_batch()
            for index in range(first, min(first + BATCH, count)):
                batch.add_message(ServiceBusMessage(f"payload {index}", message_id=message_id(index)))
            sender.send_messages(batch)
    log(f"sent {count} messages in {time.monotonic() - started:.1f}s")


def expect(sb, queue, first, end, complete_count):
    expected = {message_id(i) for i in range(first, end)}
    to_complete = {message_id(i) for i in range(first, first + complete_count)}
    seen = {}
    unexpected = []
    started = time.monotonic()
    with sb.get_queue_receiver(queue, prefetch_count=100) as receiver:
        while time.monotonic() - started < DEADLINE_SECONDS:
            batch = receiver.receive_messages(max_message_count=100, max_wait_time=5)
            if not batch and expected.issubset(seen):
                break
            for message in batch:
                mid = message.message_id
                if mid not in expected:
                    unexpected.append(mid)
                seen.setdefault(mid, []).append(message)
        duplicates = sum(len(copies) - 1 for copies in seen.values())
        missing = sorted(expected - set(seen))
        log(f"received {sum(len(c) for c in seen.values())} deliveries, {len(seen)} distinct ids, "
            f"{duplicates} duplicate deliveries, {len(missing)} missing, {len(unexpected)} unexpected, "
            f"in {time.monotonic() - started:.1f}s")
        if missing:
            raise ScenarioFailure(f"{len(missing)} message(s) lost, first ones: {missing[:10]}")
        if unexpected:
            raise ScenarioFailure(
                f"{len(unexpected)} message(s) that should not exist (completed before the crash, or never sent): "
                f"{sorted(set(unexpected))[:10]}")
        expect_eq(set(seen), expected, "distinct message ids")
        completed = 0
        for mid in sorted(to_complete):
            for message in seen[mid]:
                receiver.complete_message(message)
                completed += 1
        check(completed >= complete_count, f"completed {completed} < {complete_count}")
        log(f"completed {completed} deliveries covering {len(to_complete)} ids")


def main():
    conn, queue, _ = scenario_args()
    argv = sys.argv[3:]
    if not argv:
        raise ScenarioFailure("missing step: send COUNT | expect FIRST END [COMPLETE]")
    step = argv[0]
    numbers = [int(value) for value in argv[1:]]
    with client(conn) as sb:
        if step == "send" and len(numbers) == 1:
            send(sb, queue, numbers[0])
        elif step == "expect" and len(numbers) in (2, 3):
            expect(sb, queue, numbers[0], numbers[1], numbers[2] if len(numbers) == 3 else 0)
        else:
            raise ScenarioFailure(f"bad step arguments: {argv}")


if __name__ == "__main__":
    run(main)
