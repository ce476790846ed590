"""Large messages: the broker runs with --max-message-size raised to 32 MiB. The SDK sends
bodies around the broker's thresholds for copying payloads (16 KiB, 64 KiB), around the frame
size (1 MiB on both sides, so larger ones go as several transfer frames) and of 10 MiB; every
send must be accepted. The SDK's receiver link takes at most 1 MiB (its max-message-size), so
only the bodies that fit with the broker's annotations come back, compared byte for byte; the
larger ones are received byte for byte by the Rust client's test of the same sizes."""

from azure.servicebus import ServiceBusMessage

from sbcommon import ScenarioFailure, body_bytes, client, expect_eq, log, receive_exactly, run, scenario_args

MIB = 1024 * 1024
RECEIVABLE = [16 * 1024 - 1, 16 * 1024, 64 * 1024 + 1, MIB - 1024]
SEND_ONLY = [MIB, MIB + 1, MIB + 300, 2 * MIB + 7, 10 * MIB]


def body_of(index, size):
    """A body no two positions of which are alike in a short period, so a dropped, repeated
    or misplaced slice shows."""
    pattern = bytes((i * 7 + index) % 251 for i in range(251 * 4))
    return (pattern * (size // len(pattern) + 1))[:size]


def main():
    conn, queue, _ = scenario_args()
    sizes = RECEIVABLE + SEND_ONLY
    with client(conn) as sb:
        with sb.get_queue_sender(queue) as sender:
            for index, size in enumerate(sizes):
                sender.send_messages(ServiceBusMessage(body_of(index, size), message_id=f"large-{index}"))
            log(f"sent {len(sizes)} messages of {sizes} bytes")
        with sb.get_queue_receiver(queue, prefetch_count=1) as receiver:
            for index, size in enumerate(RECEIVABLE):
                [message] = receive_exactly(receiver, 1)
                expect_eq(message.message_id, f"large-{index}", "message_id")
                body = body_bytes(message)
                expect_eq(len(body), size, f"body length of message {index}")
                if body != body_of(index, size):
                    first = next(i for i, (a, b) in enumerate(zip(body, body_of(index, size))) if a != b)
                    raise ScenarioFailure(f"message {index} ({size} bytes) differs from byte {first} on")
                receiver.complete_message(message)
            log(f"{len(RECEIVABLE)} bodies came back byte for byte")


if __name__ == "__main__":
    run(main)
