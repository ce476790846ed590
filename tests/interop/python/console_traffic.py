"""Traffic for the console API tests, made with the SDK as an application would make it.

    console_traffic.py CONN QUEUE deadletter COUNT
        Sends COUNT messages (message ids dl-0.., subject "order", application property
        n=index), receives them and dead-letters each with reason "bad-order" and
        description "index <n>".
    console_traffic.py CONN QUEUE fill COUNT
        Sends COUNT small messages in large batches.
    console_traffic.py CONN QUEUE expect MAIN_IDS DEAD_LETTER_IDS
        Receives everything from the queue and from its dead-letter queue and checks the
        message ids (comma-separated, in order) of each, completing them.
"""

from azure.servicebus import ServiceBusMessage, ServiceBusSubQueue

from sbcommon import expect_eq, expect_no_message, log, receive_exactly, run_phases


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


def expect(sb, queue, _conn, args):
    for sub_queue, ids in [(None, args[0]), (ServiceBusSubQueue.DEAD_LETTER, args[1])]:
        wanted = [i for i in ids.split(",") if i]
        with sb.get_queue_receiver(queue, sub_queue=sub_queue) as receiver:
            received = receive_exactly(receiver, len(wanted)) if wanted else []
            expect_eq([m.message_id for m in received], wanted, f"message ids ({sub_queue or 'main'})")
            for message in received:
                receiver.complete_message(message)
            expect_no_message(receiver)
    log("the queue and its dead-letter queue hold what was expected")


if __name__ == "__main__":
    run_phases({"deadletter": dead_letter, "fill": fill, "expect": expect})
