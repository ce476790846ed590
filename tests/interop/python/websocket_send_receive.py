"""AMQP over WebSockets: with transport_type=AmqpOverWebsocket and custom_endpoint_address
pointing at the broker's HTTP entry (argv[3], e.g. sb://127.0.0.1:5300), the sync client
sends a message, a batch and a 400 KB message (larger than one outgoing WebSocket message,
so its frames span several; the broker allows 1 MiB messages) and receives each intact, then finds the queue empty.
An optional argv[4] is a CA bundle for wss:// (connection_verify=)."""

import sys

from azure.servicebus import ServiceBusMessage, TransportType

from sbcommon import (
    body_bytes, check, client, expect_eq, expect_no_message, log, receive_exactly, run,
    scenario_args,
)

LARGE_BODY = bytes(range(256)) * 1600


def main():
    conn, queue, extras = scenario_args(["endpoint"])
    options = {
        "transport_type": TransportType.AmqpOverWebsocket,
        "custom_endpoint_address": extras["endpoint"],
    }
    if len(sys.argv) > 4:
        options["connection_verify"] = sys.argv[4]
    with client(conn, **options) as sb:
        with sb.get_queue_sender(queue) as sender:
            sender.send_messages(ServiceBusMessage(b"over a websocket", message_id="single"))
            batch = sender.create_message_batch()
            for index in range(20):
                batch.add_message(ServiceBusMessage(f"batched {index}".encode()))
            sender.send_messages(batch)
            sender.send_messages(ServiceBusMessage(LARGE_BODY, message_id="large"))
            log("sent 1 + 20 + 1 large")
        with sb.get_queue_receiver(queue) as receiver:
            received = receive_exactly(receiver, 22)
            bodies = [body_bytes(message) for message in received]
            expect_eq(bodies[0], b"over a websocket", "first body")
            expect_eq(bodies[1:21], [f"batched {i}".encode() for i in range(20)], "batch bodies")
            check(bodies[21] == LARGE_BODY,
                  f"large body: expected {len(LARGE_BODY)} bytes intact, got {len(bodies[21])}")
            for message in received:
                receiver.complete_message(message)
            log("received all 22 intact and completed them")
            expect_no_message(receiver)


if __name__ == "__main__":
    run(main)
