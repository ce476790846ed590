"""Scenario 4: dead_letter_message(reason, description) puts the message in the DLQ with both."""

from azure.servicebus import ServiceBusMessage, ServiceBusSubQueue

from sbcommon import body_bytes, client, expect_eq, expect_no_message, log, receive_exactly, run, scenario_args

REASON = "InvalidOrderTotal"
DESCRIPTION = "order total -3.50 is negative"


def main():
    conn, queue, _ = scenario_args()
    with client(conn) as sb:
        with sb.get_queue_sender(queue) as sender:
            sender.send_messages(ServiceBusMessage("order 17", message_id="order-17",
                                                   application_properties={"kind": "order"}))
        with sb.get_queue_receiver(queue) as receiver:
            [message] = receive_exactly(receiver, 1)
            receiver.dead_letter_message(message, reason=REASON, error_description=DESCRIPTION)
            log("dead-lettered order-17")
            expect_no_message(receiver)
        with sb.get_queue_receiver(queue, sub_queue=ServiceBusSubQueue.DEAD_LETTER) as dlq:
            [dead] = receive_exactly(dlq, 1)
            log(f"DLQ: reason={dead.dead_letter_reason!r} description={dead.dead_letter_error_description!r}")
            expect_eq(dead.message_id, "order-17", "message_id")
            expect_eq(body_bytes(dead), b"order 17", "body")
            expect_eq(dead.dead_letter_reason, REASON, "dead_letter_reason")
            expect_eq(dead.dead_letter_error_description, DESCRIPTION, "dead_letter_error_description")
            dlq.complete_message(dead)
            expect_no_message(dlq)


if __name__ == "__main__":
    run(main)
