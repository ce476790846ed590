"""A message the receiver cannot take (larger than the max-message-size its link announced) is
counted as a delivery each time it is tried, and reaches the dead-letter queue after the max
delivery count, while the messages behind it keep flowing. It is never picked again in a
loop, and in receive-and-delete mode it is not lost either: it leaves its queue only once it
was sent.

A generic AMQP client (Qpid Proton, SASL PLAIN with the policy's key) receives with a small
max-message-size and one credit at a time; the official SDK sends and reads the dead-letter
queue.

argv: CONN PEEK_LOCK_QUEUE RECEIVE_AND_DELETE_QUEUE (both with MaxDeliveryCount 3)
"""

from azure.servicebus import ServiceBusMessage, ServiceBusSubQueue
from proton.reactor import AtMostOnce, LinkOption

from proton_generic_client import parse_connection_string, plain_connection
from sbcommon import ScenarioFailure, body_bytes, check, client, expect_eq, log, run, scenario_args

LINK_MAX = 1000
BIG = b"x" * 5000
MAX_DELIVERY_COUNT = 3


class SmallMessagesOnly(LinkOption):
    def apply(self, link):
        link.max_message_size = LINK_MAX


def send(sb, queue, bodies):
    with sb.get_queue_sender(queue) as sender:
        sender.send_messages([ServiceBusMessage(body) for body in bodies])


def receive_small_ones(conn, queue, options, count, settle):
    host, port, key_name, key = parse_connection_string(conn)
    connection = plain_connection(host, port, key_name, key)
    try:
        receiver = connection.create_receiver(queue, credit=1, options=options)
        got = []
        for _ in range(count):
            message = receiver.receive(timeout=15)
            got.append(message.body if isinstance(message.body, bytes) else bytes(message.body or b""))
            if settle:
                receiver.accept()
        return got
    finally:
        connection.close()


def dead_lettered(sb, queue):
    with sb.get_queue_receiver(queue, sub_queue=ServiceBusSubQueue.DEAD_LETTER, max_wait_time=5) as dlq:
        messages = dlq.receive_messages(max_message_count=10, max_wait_time=5)
        for message in messages:
            dlq.complete_message(message)
        return messages


def scenario(sb, conn, queue, options, mode, settle):
    send(sb, queue, [BIG, b"small-1", b"small-2"])
    got = receive_small_ones(conn, queue, options, 2, settle)
    expect_eq(got, [b"small-1", b"small-2"], f"{mode}: what the small receiver got")
    log(f"{mode}: the small messages behind the big one arrived")
    dead = dead_lettered(sb, queue)
    expect_eq(len(dead), 1, f"{mode}: dead-lettered messages")
    expect_eq(body_bytes(dead[0]), BIG, f"{mode}: the dead-lettered body")
    expect_eq(dead[0].dead_letter_reason, "MaxDeliveryCountExceeded", f"{mode}: reason")
    check(dead[0].delivery_count >= MAX_DELIVERY_COUNT, f"{mode}: delivery count {dead[0].delivery_count}")
    log(f"{mode}: the big message is in the dead-letter queue after {dead[0].delivery_count} attempts")


def dead_letter_queue_scenario(sb, conn, queue):
    """A dead-letter queue counts no deliveries: a receiver that can't take its message is
    detached with message-size-exceeded, and the message waits for one that can."""
    send(sb, queue, [BIG])
    with sb.get_queue_receiver(queue, max_wait_time=5) as receiver:
        got = receiver.receive_messages(max_message_count=1, max_wait_time=5)
        expect_eq(len(got), 1, "the big message received to dead-letter it")
        receiver.dead_letter_message(got[0], reason="test", error_description="to the DLQ")
    host, port, key_name, key = parse_connection_string(conn)
    connection = plain_connection(host, port, key_name, key)
    try:
        try:
            # The refusal may come before the attach completes or at the first receive.
            receiver = connection.create_receiver(f"{queue}/$DeadLetterQueue", credit=1, options=[SmallMessagesOnly()])
            receiver.receive(timeout=15)
        except Exception as error:  # noqa: BLE001 - proton's LinkDetached
            check("message-size-exceeded" in str(error), f"the detach names the limit: {error}")
            log(f"dead-letter queue: the small receiver was detached: {error}")
        else:
            raise ScenarioFailure("a receiver got a message larger than its max message size")
    finally:
        connection.close()
    dead = dead_lettered(sb, queue)
    expect_eq([body_bytes(m) for m in dead], [BIG], "the dead-letter queue still holds the message")
    log("dead-letter queue: a receiver that can take it got it")


def main():
    conn, queue, extras = scenario_args(("RECEIVE_AND_DELETE_QUEUE",))
    with client(conn) as sb:
        scenario(sb, conn, queue, [SmallMessagesOnly()], "peek-lock", settle=True)
        scenario(sb, conn, extras["RECEIVE_AND_DELETE_QUEUE"], [SmallMessagesOnly(), AtMostOnce()], "receive-and-delete", settle=False)
        dead_letter_queue_scenario(sb, conn, queue)


if __name__ == "__main__":
    run(main)
