"""Scenario 2: a batch of 10 sent with create_message_batch arrives complete and in order."""

from azure.servicebus import ServiceBusMessage

from sbcommon import body_bytes, check, client, expect_eq, expect_no_message, log, receive_exactly, run, scenario_args

COUNT = 10


def main():
    conn, queue, _ = scenario_args()
    with client(conn) as sb:
        with sb.get_queue_sender(queue) as sender:
            batch = sender.create_message_batch()
            for index in range(COUNT):
                batch.add_message(ServiceBusMessage(f"batch-{index}", message_id=f"batch-{index}"))
            expect_eq(len(batch), COUNT, "messages in the batch")
            sender.send_messages(batch)
            log(f"sent a batch of {COUNT}")
        with sb.get_queue_receiver(queue) as receiver:
            received = receive_exactly(receiver, COUNT)
            expect_eq([m.message_id for m in received], [f"batch-{i}" for i in range(COUNT)], "message ids in order")
            expect_eq([body_bytes(m) for m in received], [f"batch-{i}".encode() for i in range(COUNT)], "bodies in order")
            sequence_numbers = [m.sequence_number for m in received]
            expect_eq(sequence_numbers, list(range(1, COUNT + 1)), "sequence numbers")
            check(all(m.delivery_count == 0 for m in received), "every delivery_count should be 0")
            for message in received:
                receiver.complete_message(message)
            log("completed all")
            expect_no_message(receiver)


if __name__ == "__main__":
    run(main)
