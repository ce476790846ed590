"""A message body damaged on disk never reaches a client.

Phase "send COUNT": message 0 is received and deferred; then messages 1..COUNT-1 follow, each
about 100 KB (so that, with small log segments, most of them lie in sealed segments). Every
body starts with its own marker, `message-NNNN|`, which the test looks for in the segment
files to damage the bodies of chosen messages while the broker is stopped.

Phase "check COUNT DAMAGED" (after the restart; DAMAGED is the index of the damaged active
message, message 0 is damaged too):
- peek (a $management request) answers every message before a damaged one and stops there;
  a peek starting at a damaged message fails; no peeked body differs from what was sent;
- receive-by-sequence-number of the damaged deferred message fails, and it stays deferred;
- a receiver gets every other message, intact, and never the damaged one;
- the dead-letter queue holds a stand-in for the damaged message: reason MessageUnreadable, a
  description naming its sequence number, and an empty body (the damaged bytes are not sent;
  a queued message's id is kept only in its body, so the stand-in has none).
"""

from azure.servicebus import ServiceBusMessage, ServiceBusSubQueue
from azure.servicebus.exceptions import ServiceBusError

from sbcommon import (body_bytes, check, client, expect_eq, expect_no_message, log, receive_exactly,
                      run_phases)

FILL = 100_000


def body(index):
    marker = f"message-{index:04d}|".encode()
    return marker + bytes((index + n) % 251 for n in range(FILL))


def message_id(index):
    return f"m-{index}"


def send(sb, queue, _conn, args):
    count = int(args[0])
    with sb.get_queue_sender(queue) as sender:
        sender.send_messages(ServiceBusMessage(body(0), message_id=message_id(0)))
        with sb.get_queue_receiver(queue) as receiver:
            [first] = receive_exactly(receiver, 1)
            expect_eq(first.sequence_number, 1, "the first message's sequence number")
            receiver.defer_message(first)
        for index in range(1, count):
            sender.send_messages(ServiceBusMessage(body(index), message_id=message_id(index)))
    log(f"sent {count} messages; message 0 (sequence number 1) is deferred")


def index_of(message):
    return int(str(message.message_id).removeprefix("m-"))


def intact(messages, what):
    for message in messages:
        expect_eq(body_bytes(message), body(index_of(message)), f"{what}: body of {message.message_id}")


def peek_fails(receiver, sequence_number):
    try:
        peeked = receiver.peek_messages(max_message_count=5, sequence_number=sequence_number)
    except ServiceBusError as error:
        log(f"peek from {sequence_number} fails as expected: {error}")
        return
    intact(peeked, f"peek from {sequence_number}")
    raise AssertionError(f"peek from damaged message {sequence_number} answered {len(peeked)} message(s)")


def check_phase(_sb, queue, conn, args):
    # Without retries, so that each refusal surfaces at once.
    with client(conn, retry_total=0) as sb:
        check_damage(sb, queue, int(args[0]), int(args[1]))


def check_damage(sb, queue, count, damaged):
    damaged_seq = damaged + 1
    with sb.get_queue_receiver(queue) as receiver:
        peek_fails(receiver, 1)
        before = receiver.peek_messages(max_message_count=count, sequence_number=2)
        intact(before, "peek from 2")
        expect_eq([m.sequence_number for m in before], list(range(2, damaged_seq)), "peek from 2 stops before the damaged message")
        peek_fails(receiver, damaged_seq)
        # A peek answers about a megabyte at most: page on to the end.
        after = []
        next_seq = damaged_seq + 1
        while True:
            page = receiver.peek_messages(max_message_count=count, sequence_number=next_seq)
            if not page:
                break
            after.extend(page)
            next_seq = page[-1].sequence_number + 1
        intact(after, f"peek from {damaged_seq + 1}")
        expect_eq([m.sequence_number for m in after], list(range(damaged_seq + 1, count + 1)), "peek after the damaged message")

        try:
            got = receiver.receive_deferred_messages([1])
        except ServiceBusError as error:
            log(f"receive-by-sequence-number of the damaged deferred message fails as expected: {error}")
        else:
            intact(got, "receive-by-sequence-number")
            raise AssertionError(f"receive-by-sequence-number of a damaged message answered {len(got)} message(s)")

        received = receive_exactly(receiver, count - 2)
        intact(received, "receive")
        expect_eq(sorted(index_of(m) for m in received), [i for i in range(1, count) if i != damaged], "received messages")
        for message in received:
            receiver.complete_message(message)
        expect_no_message(receiver, max_wait_time=2)
        log(f"received the {len(received)} intact messages, not the damaged one")

        still_deferred = receiver.peek_messages(max_message_count=count, sequence_number=2)
        expect_eq(still_deferred, [], "nothing but the damaged deferred message is left to peek")

    with sb.get_queue_receiver(queue, sub_queue=ServiceBusSubQueue.DEAD_LETTER) as dead_letters:
        [stand_in] = receive_exactly(dead_letters, 1)
        log(f"dead-lettered: {stand_in.message_id} reason={stand_in.dead_letter_reason!r} "
            f"description={stand_in.dead_letter_error_description!r}")
        expect_eq(stand_in.dead_letter_reason, "MessageUnreadable", "dead-letter reason")
        description = stand_in.dead_letter_error_description or ""
        check(f"Message {damaged_seq} of {queue}" in description,
              f"the description names the damaged message: {description!r}")
        expect_eq(body_bytes(stand_in), b"", "the dead-lettered stand-in's body")
        dead_letters.complete_message(stand_in)
        expect_no_message(dead_letters, max_wait_time=1)


if __name__ == "__main__":
    run_phases({"send": send, "check": check_phase})
