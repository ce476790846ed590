"""AMQP over WebSockets with the async client (aiohttp's WebSocket): with
transport_type=AmqpOverWebsocket and custom_endpoint_address naming the broker's entry
(argv[3]), it sends a message and a 400 KB one and receives both intact, then finds the
queue empty. An optional argv[4] is a CA bundle for wss:// (connection_verify=)."""

import asyncio
import sys

from azure.servicebus import ServiceBusMessage, TransportType
from azure.servicebus.aio import ServiceBusClient

from sbcommon import body_bytes, check, expect_eq, log, run, scenario_args

LARGE_BODY = bytes(range(256)) * 1600


async def scenario(conn, queue, endpoint, ca):
    options = {
        "transport_type": TransportType.AmqpOverWebsocket,
        "custom_endpoint_address": endpoint,
    }
    if ca:
        options["connection_verify"] = ca
    async with ServiceBusClient.from_connection_string(conn, **options) as sb:
        async with sb.get_queue_sender(queue) as sender:
            await sender.send_messages(ServiceBusMessage(b"over an async websocket"))
            await sender.send_messages(ServiceBusMessage(LARGE_BODY))
            log("sent 1 + 1 large")
        async with sb.get_queue_receiver(queue) as receiver:
            received = []
            for _ in range(10):
                received += await receiver.receive_messages(
                    max_message_count=2 - len(received), max_wait_time=5
                )
                if len(received) == 2:
                    break
            expect_eq(len(received), 2, "messages received")
            expect_eq(body_bytes(received[0]), b"over an async websocket", "first body")
            check(body_bytes(received[1]) == LARGE_BODY,
                  f"large body: expected {len(LARGE_BODY)} bytes intact, got {len(body_bytes(received[1]))}")
            for message in received:
                await receiver.complete_message(message)
            extra = await receiver.receive_messages(max_message_count=1, max_wait_time=2)
            expect_eq(len(extra), 0, "messages left after completing both")
            log("received both intact, completed them, queue empty")


def main():
    conn, queue, extras = scenario_args(["endpoint"])
    ca = sys.argv[4] if len(sys.argv) > 4 else None
    asyncio.run(scenario(conn, queue, extras["endpoint"], ca))


if __name__ == "__main__":
    run(main)
