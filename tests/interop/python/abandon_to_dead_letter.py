"""Scenario 3: abandoning until MaxDeliveryCount (3 in the queue's config) moves the message to
the dead-letter subqueue with reason MaxDeliveryCountExceeded; the DLQ copy can be completed."""

from azure.servicebus import ServiceBusMessage, ServiceBusSubQueue

from sbcommon import body_bytes, check, client, expect_eq, expect_no_message, log, receive_exactly, run, scenario_args

MAX_DELIVERY_COUNT = 3


def main():
    conn, queue, _ = scenario_args()
    with client(conn) as sb:
        with sb.get_queue_sender(queue) as sender:
            sender.send_messages(ServiceBusMessage("poison", message_id="poison-1"))
        with sb.get_queue_receiver(queue) as receiver:
            seen_counts = []
            for _ in range(MAX_DELIVERY_COUNT):
                [message] = receive_exactly(receiver, 1)
                expect_eq(message.message_id, "poison-1", "message_id")
                seen_counts.append(message.delivery_count)
                receiver.abandon_message(message)
            log(f"delivery counts seen: {seen_counts}")
            expect_eq(seen_counts, list(range(MAX_DELIVERY_COUNT)), "delivery counts before dead-lettering")
            expect_no_message(receiver, max_wait_time=3)
        with sb.get_queue_receiver(queue, sub_queue=ServiceBusSubQueue.DEAD_LETTER) as dlq:
            [dead] = receive_exactly(dlq, 1)
            log(f"DLQ: id={dead.message_id} reason={dead.dead_letter_reason!r} "
                f"description={dead.dead_letter_error_description!r} source={dead.dead_letter_source!r}")
            expect_eq(dead.message_id, "poison-1", "dead-lettered message_id")
            expect_eq(body_bytes(dead), b"poison", "dead-lettered body")
            expect_eq(dead.dead_letter_reason, "MaxDeliveryCountExceeded", "dead_letter_reason")
            check(bool(dead.dead_letter_error_description),
                  f"dead_letter_error_description should explain the move, got {dead.dead_letter_error_description!r}")
            dlq.complete_message(dead)
            expect_no_message(dlq)


if __name__ == "__main__":
    run(main)
