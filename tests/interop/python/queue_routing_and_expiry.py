"""Duplicate detection, time to live and forwarding, through the Python SDK.

Arguments: connection string, then the queue names the test configured:
  dedup        RequiresDuplicateDetection, window PT1M
  ttl          DefaultMessageTimeToLive PT2S, DeadLetteringOnMessageExpiration true
  ttldrop      DefaultMessageTimeToLive PT2S (expired messages are dropped)
  front        ForwardTo middle;  middle: ForwardTo back
  poison       MaxDeliveryCount 1, ForwardDeadLetteredMessagesTo graveyard
  ping, pong   ForwardTo each other (a cycle)
The scenario names are fixed; the first argument after the connection string is ignored.
"""

import time

from azure.servicebus import ServiceBusMessage, ServiceBusSubQueue

from sbcommon import (
    app_properties,
    body_bytes,
    client,
    expect_eq,
    expect_no_message,
    log,
    receive_exactly,
    run,
    scenario_args,
)


def duplicates(sb):
    with sb.get_queue_sender("dedup") as sender:
        sender.send_messages(ServiceBusMessage("first", message_id="order-1"))
        sender.send_messages(ServiceBusMessage("repeat", message_id="order-1"))
        sender.send_messages(ServiceBusMessage("other", message_id="order-2"))
    with sb.get_queue_receiver("dedup") as receiver:
        messages = receive_exactly(receiver, 2)
        expect_eq([m.message_id for m in messages], ["order-1", "order-2"], "ids received")
        expect_eq(body_bytes(messages[0]), b"first", "the first copy is the one kept")
        for message in messages:
            receiver.complete_message(message)
        expect_no_message(receiver, max_wait_time=1)
    # Still a duplicate after the original was completed.
    with sb.get_queue_sender("dedup") as sender:
        sender.send_messages(ServiceBusMessage("late repeat", message_id="order-1"))
    with sb.get_queue_receiver("dedup") as receiver:
        expect_no_message(receiver, max_wait_time=1)
    log("duplicate detection dropped the repeats")


def expiry(sb):
    with sb.get_queue_sender("ttl") as sender:
        sender.send_messages(ServiceBusMessage("short-lived", message_id="ttl-1"))
    with sb.get_queue_sender("ttldrop") as sender:
        sender.send_messages(ServiceBusMessage("short-lived", message_id="ttl-2"))
    time.sleep(3)
    # Nobody received from these queues: the background sweep must have expired them.
    with sb.get_queue_receiver("ttl", sub_queue=ServiceBusSubQueue.DEAD_LETTER) as receiver:
        [dead] = receive_exactly(receiver, 1)
        expect_eq(dead.message_id, "ttl-1", "expired message id in the DLQ")
        expect_eq(dead.dead_letter_reason, "TTLExpiredException", "dead_letter_reason")
        receiver.complete_message(dead)
    with sb.get_queue_receiver("ttl") as receiver:
        expect_no_message(receiver, max_wait_time=1)
    with sb.get_queue_receiver("ttldrop") as receiver:
        expect_no_message(receiver, max_wait_time=1)
    with sb.get_queue_receiver("ttldrop", sub_queue=ServiceBusSubQueue.DEAD_LETTER) as receiver:
        expect_no_message(receiver, max_wait_time=1)
    log("expired messages were dead-lettered or dropped without a receiver")


def forwarding(sb):
    with sb.get_queue_sender("front") as sender:
        sender.send_messages(ServiceBusMessage("routed", message_id="fwd-1"))
    with sb.get_queue_receiver("back") as receiver:
        [message] = receive_exactly(receiver, 1)
        expect_eq(message.message_id, "fwd-1", "forwarded message id")
        expect_eq(body_bytes(message), b"routed", "forwarded body")
        receiver.complete_message(message)
    for name in ("front", "middle"):
        with sb.get_queue_receiver(name) as receiver:
            expect_no_message(receiver, max_wait_time=1)
    log("ForwardTo chain front -> middle -> back delivered to back")

    with sb.get_queue_sender("poison") as sender:
        sender.send_messages(ServiceBusMessage("bad", message_id="dl-1"))
    with sb.get_queue_receiver("poison") as receiver:
        [message] = receive_exactly(receiver, 1)
        receiver.dead_letter_message(message, reason="Broken", error_description="cannot parse")
    with sb.get_queue_receiver("graveyard") as receiver:
        [message] = receive_exactly(receiver, 1)
        expect_eq(message.message_id, "dl-1", "forwarded dead letter id")
        props = app_properties(message)
        expect_eq(props.get("DeadLetterReason"), "Broken", "DeadLetterReason kept")
        receiver.complete_message(message)
    with sb.get_queue_receiver("poison", sub_queue=ServiceBusSubQueue.DEAD_LETTER) as receiver:
        expect_no_message(receiver, max_wait_time=1)
    log("ForwardDeadLetteredMessagesTo moved the dead letter to graveyard")

    # A forwarding cycle exceeds the hop limit: the message lands in the transfer
    # dead-letter queue of the queue where forwarding stopped, not lost and not looping.
    with sb.get_queue_sender("ping") as sender:
        sender.send_messages(ServiceBusMessage("loop", message_id="cycle-1"))
    with sb.get_queue_receiver("ping", sub_queue=ServiceBusSubQueue.TRANSFER_DEAD_LETTER) as receiver:
        [message] = receive_exactly(receiver, 1)
        expect_eq(message.message_id, "cycle-1", "transfer dead-letter id")
        expect_eq(message.dead_letter_reason, "TransferFailure", "dead_letter_reason")
        receiver.complete_message(message)
    for name in ("ping", "pong"):
        with sb.get_queue_receiver(name) as receiver:
            expect_no_message(receiver, max_wait_time=1)
    log("a forwarding cycle ends in the transfer dead-letter queue")


def main():
    conn, _, _ = scenario_args()
    with client(conn) as sb:
        duplicates(sb)
        expiry(sb)
        forwarding(sb)


if __name__ == "__main__":
    run(main)
