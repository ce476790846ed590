"""Scenario 11: each abandon raises delivery_count by exactly one (MaxDeliveryCount is 10)."""

from azure.servicebus import ServiceBusMessage

from sbcommon import client, expect_eq, expect_no_message, log, receive_exactly, run, scenario_args

ROUNDS = 5


def main():
    conn, queue, _ = scenario_args()
    with client(conn) as sb:
        with sb.get_queue_sender(queue) as sender:
            sender.send_messages(ServiceBusMessage("retry me", message_id="retry-1"))
        with sb.get_queue_receiver(queue) as receiver:
            counts = []
            sequence_numbers = set()
            for _ in range(ROUNDS):
                [message] = receive_exactly(receiver, 1)
                counts.append(message.delivery_count)
                sequence_numbers.add(message.sequence_number)
                receiver.abandon_message(message)
            [last] = receive_exactly(receiver, 1)
            counts.append(last.delivery_count)
            log(f"delivery counts: {counts}")
            expect_eq(counts, list(range(ROUNDS + 1)), "delivery counts across abandons")
            expect_eq(sequence_numbers, {last.sequence_number}, "sequence number stays the same across redeliveries")
            receiver.complete_message(last)
            expect_no_message(receiver)


if __name__ == "__main__":
    run(main)
