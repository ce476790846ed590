"""Traffic for the console API tests, made with the SDK as an application would make it.

    console_traffic.py CONN QUEUE deadletter COUNT
        Sends COUNT messages (message ids dl-0.., subject "order", application property
        n=index), receives them and dead-letters each with reason "bad-order" and
        description "index <n>".
    console_traffic.py CONN QUEUE fill COUNT
        Sends COUNT small messages in large batches.
"""

from azure.servicebus import ServiceBusMessage

from sbcommon import client, expect_eq, log, receive_exactly, run_phases


def dead_letter(sb, queue, _conn, args):
    count = int(args[0])
    with sb.get_queue_sender(queue) as sender:
        sender.send_messages([
            ServiceBusMessage(f"order {i}", message_id=f"dl-{i}", subject="order",
                              application_properties={"n": i})
            for i in range(count)
        ])
    with sb.get_queue_receiver(queue) as receiver:
        for message in receive_exactly(receiver, count):
            n = message.application_properties[b"n"]
            receiver.dead_letter_message(message, reason="bad-order", error_description=f"index {n}")
    log(f"dead-lettered {count} messages")


def fill(sb, queue, _conn, args):
    count = int(args[0])
    sent = 0
    with sb.get_queue_sender(queue) as sender:
        while sent < count:
            batch = sender.create_message_batch(max_size_in_bytes=200_000)
            while sent < count:
                try:
                    batch.add_message(ServiceBusMessage(f"m{sent}"))
                except ValueError:
                    break
                sent += 1
            sender.send_messages(batch)
    expect_eq(sent, count, "messages sent")
    log(f"sent {count} messages")


if __name__ == "__main__":
    run_phases({"deadletter": dead_letter, "fill": fill})
