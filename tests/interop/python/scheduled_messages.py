"""Scheduled messages.

schedule_messages 3 s ahead returns a sequence number; a receive right away gets nothing;
peek shows the message with state SCHEDULED and its scheduled time. A second message scheduled
the same way is canceled with cancel_scheduled_messages: peek no longer shows it and it is never
received. A normal send with scheduled_enqueue_time_utc set behaves like schedule_messages.
Once the time has passed, exactly the two scheduled (not canceled) messages arrive, not before
their time, and then the queue is empty."""

import datetime
import time

from azure.servicebus import ServiceBusMessage, ServiceBusMessageState

from sbcommon import check, client, expect_eq, expect_no_message, log, receive_exactly, run, scenario_args, text

DELAY_SECONDS = 3


def utc_now():
    return datetime.datetime.now(datetime.timezone.utc)


def main():
    conn, queue, _ = scenario_args()
    with client(conn, retry_total=0) as sb:
        with sb.get_queue_sender(queue) as sender, sb.get_queue_receiver(queue) as receiver:
            due = utc_now() + datetime.timedelta(seconds=DELAY_SECONDS)
            # The broker keeps milliseconds; compare at that precision.
            due = due.replace(microsecond=due.microsecond // 1000 * 1000)
            kept = sender.schedule_messages(ServiceBusMessage("scheduled", message_id="sched-kept"), due)
            canceled = sender.schedule_messages(ServiceBusMessage("never", message_id="sched-canceled"), due)
            log(f"schedule_messages returned {kept} and {canceled}")
            check(isinstance(kept, list) and len(kept) == 1 and isinstance(kept[0], int),
                  f"schedule_messages should return one int sequence number, got {kept!r}")
            check(isinstance(canceled, list) and len(canceled) == 1 and isinstance(canceled[0], int),
                  f"schedule_messages should return one int sequence number, got {canceled!r}")
            check(canceled[0] > kept[0], f"sequence numbers should increase: {kept[0]} then {canceled[0]}")
            sender.send_messages(ServiceBusMessage("sent scheduled", message_id="sched-sent",
                                                   scheduled_enqueue_time_utc=due))

            expect_no_message(receiver, max_wait_time=1)

            peeked = receiver.peek_messages(max_message_count=10, sequence_number=1)
            summary = [(m.message_id, m.sequence_number, m.state) for m in peeked]
            log(f"peek before the due time: {summary}")
            expect_eq([m.message_id for m in peeked], ["sched-kept", "sched-canceled", "sched-sent"],
                      "peeked message ids")
            expect_eq([m.sequence_number for m in peeked[:2]], [kept[0], canceled[0]], "peeked sequence numbers")
            for message in peeked:
                expect_eq(message.state, ServiceBusMessageState.SCHEDULED, f"state of {message.message_id}")
                expect_eq(message.scheduled_enqueue_time_utc, due, f"scheduled_enqueue_time_utc of {message.message_id}")
            sent_seq = peeked[2].sequence_number

            sender.cancel_scheduled_messages(canceled[0])
            peeked = receiver.peek_messages(max_message_count=10, sequence_number=1)
            expect_eq([(m.message_id, m.sequence_number) for m in peeked],
                      [("sched-kept", kept[0]), ("sched-sent", sent_seq)], "peek after cancel")

            received = receive_exactly(receiver, 2, max_wait_time=DELAY_SECONDS + 5)
            arrived = utc_now()
            log(f"received {[m.message_id for m in received]} at {arrived.isoformat()} (due {due.isoformat()})")
            check(arrived >= due - datetime.timedelta(milliseconds=200),
                  f"scheduled messages arrived at {arrived.isoformat()}, before their time {due.isoformat()}")
            expect_eq(sorted(m.message_id for m in received), ["sched-kept", "sched-sent"], "received message ids")
            expect_eq(sorted(m.sequence_number for m in received), sorted([kept[0], sent_seq]),
                      "received sequence numbers")
            for message in received:
                expect_eq(message.delivery_count, 0, f"delivery_count of {message.message_id}")
                expect_eq(message.scheduled_enqueue_time_utc, due, f"scheduled_enqueue_time_utc of received {message.message_id}")
                receiver.complete_message(message)
            bodies = {m.message_id: text(b"".join(m.body)) for m in received}
            expect_eq(bodies, {"sched-kept": "scheduled", "sched-sent": "sent scheduled"}, "received bodies")

            expect_no_message(receiver, max_wait_time=2)
            expect_eq(receiver.peek_messages(max_message_count=10, sequence_number=1), [], "peek after completing")


if __name__ == "__main__":
    run(main)
