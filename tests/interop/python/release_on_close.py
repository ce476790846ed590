"""Scenario 10: a peek-lock receiver with prefetch that closes without settling gives its
messages back at once (released, not left locked until expiry); they come back with their
delivery_count unchanged.

The queue's lock lasts 30 s, so anything that returns within RETURN_WINDOW seconds came back
because the broker released it, not because its lock expired."""

import time

from azure.servicebus import ServiceBusMessage

from sbcommon import check, client, expect_eq, log, run, scenario_args

COUNT = 3
RETURN_WINDOW = 10


def main():
    conn, queue, _ = scenario_args()
    expected_ids = {f"prefetched-{i}" for i in range(COUNT)}
    with client(conn) as sb:
        with sb.get_queue_sender(queue) as sender:
            sender.send_messages([ServiceBusMessage(f"body {i}", message_id=f"prefetched-{i}") for i in range(COUNT)])
        receiver = sb.get_queue_receiver(queue, prefetch_count=10)
        first = receiver.receive_messages(max_message_count=1, max_wait_time=10)
        expect_eq(len(first), 1, "messages handed to the application before close")
        held_id = first[0].message_id
        log(f"holding {held_id} unsettled (the rest were prefetched); closing the receiver")
        receiver.close()
        closed_at = time.monotonic()

        returned = {}
        with sb.get_queue_receiver(queue) as again:
            while set(returned) != expected_ids and time.monotonic() - closed_at < RETURN_WINDOW:
                for message in again.receive_messages(max_message_count=COUNT, max_wait_time=2):
                    check(message.message_id not in returned, f"{message.message_id} delivered twice while locked")
                    returned[message.message_id] = message
            counts = {mid: m.delivery_count for mid, m in returned.items()}
            log(f"returned within {time.monotonic() - closed_at:.1f}s: delivery counts {counts}")
            expect_eq(set(returned), expected_ids, f"messages available again within {RETURN_WINDOW}s of close")
            expect_eq(counts, {mid: 0 for mid in expected_ids}, "delivery counts after release")
            for message in returned.values():
                again.complete_message(message)


if __name__ == "__main__":
    run(main)
