"""Peek.

Five messages are sent. peek_messages(max_message_count=3) returns sequence numbers 1..3 in
order, in state ACTIVE, with delivery count 0 and no lock; peeking from sequence number 4
returns 4 and 5. Peeking again takes nothing away: all five are then received with delivery
count 0. Two are dead-lettered with a reason and the rest completed; a receiver on the
dead-letter sub-queue (sub_queue=DEAD_LETTER) peeks the two with their reasons, peeking again
from after the first returns only the second, and both can then be received and completed
there."""

from azure.servicebus import ServiceBusMessage, ServiceBusMessageState, ServiceBusSubQueue

from sbcommon import body_bytes, check, client, expect_eq, expect_no_message, log, receive_exactly, run, scenario_args

COUNT = 5


def describe(messages):
    return [(m.message_id, m.sequence_number, m.delivery_count, m.state) for m in messages]


def check_peeked(messages, what):
    for message in messages:
        expect_eq(message.delivery_count, 0, f"{what}: delivery_count of {message.message_id}")
        expect_eq(message.locked_until_utc, None, f"{what}: locked_until_utc of {message.message_id}")
        expect_eq(message.state, ServiceBusMessageState.ACTIVE, f"{what}: state of {message.message_id}")


def main():
    conn, queue, _ = scenario_args()
    ids = [f"peek-{n}" for n in range(1, COUNT + 1)]
    with client(conn, retry_total=0) as sb:
        with sb.get_queue_sender(queue) as sender:
            sender.send_messages([ServiceBusMessage(f"body {i}", message_id=i) for i in ids])
        with sb.get_queue_receiver(queue) as receiver:
            first = receiver.peek_messages(max_message_count=3)
            log(f"peek 3: {describe(first)}")
            expect_eq([m.sequence_number for m in first], [1, 2, 3], "peek 3 sequence numbers")
            expect_eq([m.message_id for m in first], ids[:3], "peek 3 message ids")
            expect_eq([body_bytes(m) for m in first], [b"body peek-1", b"body peek-2", b"body peek-3"], "peek 3 bodies")
            check_peeked(first, "peek 3")

            rest = receiver.peek_messages(max_message_count=10, sequence_number=4)
            log(f"peek from 4: {describe(rest)}")
            expect_eq([m.sequence_number for m in rest], [4, 5], "peek from 4 sequence numbers")
            expect_eq([m.message_id for m in rest], ids[3:], "peek from 4 message ids")
            check_peeked(rest, "peek from 4")

            received = receive_exactly(receiver, COUNT)
            expect_eq([m.sequence_number for m in received], [1, 2, 3, 4, 5], "received sequence numbers")
            expect_eq([m.delivery_count for m in received], [0] * COUNT, "delivery counts after peeking")
            for message in received[:2]:
                receiver.dead_letter_message(message, reason=f"reason-{message.message_id}",
                                             error_description=f"description of {message.message_id}")
            for message in received[2:]:
                receiver.complete_message(message)
            expect_no_message(receiver, max_wait_time=1)
            expect_eq(receiver.peek_messages(max_message_count=10, sequence_number=1), [],
                      "peek on the emptied queue")

        with sb.get_queue_receiver(queue, sub_queue=ServiceBusSubQueue.DEAD_LETTER) as dead:
            peeked = dead.peek_messages(max_message_count=10, sequence_number=1)
            log(f"peek on the dead-letter queue: {describe(peeked)}")
            expect_eq([m.message_id for m in peeked], ids[:2], "dead-letter peek message ids")
            expect_eq([m.dead_letter_reason for m in peeked], ["reason-peek-1", "reason-peek-2"],
                      "dead-letter peek reasons")
            expect_eq([m.dead_letter_error_description for m in peeked],
                      ["description of peek-1", "description of peek-2"], "dead-letter peek descriptions")
            expect_eq([body_bytes(m) for m in peeked], [b"body peek-1", b"body peek-2"], "dead-letter peek bodies")
            for message in peeked:
                expect_eq(message.locked_until_utc, None, f"dead-letter peek locked_until_utc of {message.message_id}")
            check(peeked[0].sequence_number < peeked[1].sequence_number,
                  f"dead-letter sequence numbers should increase, got {describe(peeked)}")
            second = dead.peek_messages(max_message_count=10, sequence_number=peeked[0].sequence_number + 1)
            expect_eq([m.message_id for m in second], ids[1:2], "dead-letter peek from after the first")

            taken = receive_exactly(dead, 2)
            expect_eq([m.message_id for m in taken], ids[:2], "dead-letter received ids after peeking")
            for message in taken:
                dead.complete_message(message)
            expect_no_message(dead, max_wait_time=1)


if __name__ == "__main__":
    run(main)
