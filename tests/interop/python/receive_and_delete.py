"""Scenario 6: in receive-and-delete mode a received message is gone from the queue."""

from azure.servicebus import ServiceBusMessage, ServiceBusReceiveMode

from sbcommon import body_bytes, client, expect_eq, expect_no_message, log, receive_exactly, run, scenario_args


def main():
    conn, queue, _ = scenario_args()
    with client(conn) as sb:
        with sb.get_queue_sender(queue) as sender:
            sender.send_messages(ServiceBusMessage("read once", message_id="rad-1"))
        with sb.get_queue_receiver(queue, receive_mode=ServiceBusReceiveMode.RECEIVE_AND_DELETE) as receiver:
            [message] = receive_exactly(receiver, 1)
            expect_eq(message.message_id, "rad-1", "message_id")
            expect_eq(body_bytes(message), b"read once", "body")
            expect_eq(message.lock_token, None, "lock_token in receive-and-delete mode")
            log("received rad-1 in receive-and-delete mode")
            expect_no_message(receiver, max_wait_time=2)
        # A fresh peek-lock receiver must not see it either.
        with sb.get_queue_receiver(queue) as receiver:
            expect_no_message(receiver, max_wait_time=2)


if __name__ == "__main__":
    run(main)
