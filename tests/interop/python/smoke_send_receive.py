"""Health check used after abuse scenarios: one message goes in and comes back out."""

import uuid

from azure.servicebus import ServiceBusMessage

from sbcommon import body_bytes, client, expect_eq, expect_no_message, log, receive_exactly, run, scenario_args


def main():
    conn, queue, _ = scenario_args()
    marker = f"smoke-{uuid.uuid4()}"
    with client(conn) as sb:
        with sb.get_queue_sender(queue) as sender:
            sender.send_messages(ServiceBusMessage(marker, message_id=marker))
        with sb.get_queue_receiver(queue) as receiver:
            [message] = receive_exactly(receiver, 1)
            expect_eq(message.message_id, marker, "message_id")
            expect_eq(body_bytes(message), marker.encode(), "body")
            receiver.complete_message(message)
            expect_no_message(receiver)
    log("send/receive works")


if __name__ == "__main__":
    run(main)
