"""Deferral.

Two messages are received and deferred. A normal receive then gets nothing and peek shows both
in state DEFERRED. receive_deferred_messages([seq]) returns the first locked (lock token, future
locked_until_utc, same id, body and sequence number); completing it (the SDK settles a deferred
message through $management update-disposition) removes it, so a second
receive_deferred_messages for it fails with MessageNotFoundError. The second deferred message,
received by sequence number and dead-lettered with a reason and description, lands in the
dead-letter queue with both. The queue is empty afterwards."""

import datetime

from azure.servicebus import ServiceBusMessage, ServiceBusMessageState, ServiceBusSubQueue
from azure.servicebus.exceptions import MessageNotFoundError

from sbcommon import (UUID_PATTERN, ScenarioFailure, body_bytes, check, client, expect_eq, expect_no_message, log,
                      receive_exactly, run, scenario_args)


def main():
    conn, queue, _ = scenario_args()
    with client(conn, retry_total=0) as sb:
        with sb.get_queue_sender(queue) as sender:
            sender.send_messages([ServiceBusMessage("first", message_id="defer-1"),
                                  ServiceBusMessage("second", message_id="defer-2")])
        with sb.get_queue_receiver(queue) as receiver:
            received = receive_exactly(receiver, 2)
            seqs = [m.sequence_number for m in received]
            expect_eq([m.message_id for m in received], ["defer-1", "defer-2"], "received ids")
            for message in received:
                receiver.defer_message(message)
            log(f"deferred sequence numbers {seqs}")
            expect_no_message(receiver, max_wait_time=1)

            peeked = receiver.peek_messages(max_message_count=10, sequence_number=1)
            log(f"peek: {[(m.message_id, m.sequence_number, m.state) for m in peeked]}")
            expect_eq([m.sequence_number for m in peeked], seqs, "peeked sequence numbers")
            expect_eq([m.state for m in peeked], [ServiceBusMessageState.DEFERRED] * 2, "peeked states")

            [again] = receiver.receive_deferred_messages([seqs[0]])
            expect_eq(again.message_id, "defer-1", "deferred receive message_id")
            expect_eq(again.sequence_number, seqs[0], "deferred receive sequence_number")
            expect_eq(body_bytes(again), b"first", "deferred receive body")
            expect_eq(again.state, ServiceBusMessageState.DEFERRED, "deferred receive state")
            check(again.lock_token is not None and UUID_PATTERN.match(str(again.lock_token)),
                  f"deferred receive lock_token should be a UUID, got {again.lock_token!r}")
            now = datetime.datetime.now(datetime.timezone.utc)
            check(again.locked_until_utc is not None and again.locked_until_utc > now,
                  f"deferred receive locked_until_utc should be in the future, got {again.locked_until_utc!r}")
            receiver.complete_message(again)
            log("completed the deferred message")

            try:
                receiver.receive_deferred_messages([seqs[0]])
            except MessageNotFoundError as error:
                log(f"second deferred receive: MessageNotFoundError as expected: {error}")
            else:
                raise ScenarioFailure("receiving a completed deferred message again succeeded; "
                                      "expected MessageNotFoundError")

            [poison] = receiver.receive_deferred_messages([seqs[1]])
            expect_eq(poison.message_id, "defer-2", "second deferred receive message_id")
            receiver.dead_letter_message(poison, reason="deferred-poison", error_description="gave up on it")
            expect_no_message(receiver, max_wait_time=1)
            expect_eq(receiver.peek_messages(max_message_count=10, sequence_number=1), [], "peek after settling")

        with sb.get_queue_receiver(queue, sub_queue=ServiceBusSubQueue.DEAD_LETTER) as dead:
            [dead_lettered] = receive_exactly(dead, 1)
            expect_eq(dead_lettered.message_id, "defer-2", "dead-lettered message_id")
            expect_eq(body_bytes(dead_lettered), b"second", "dead-lettered body")
            expect_eq(dead_lettered.dead_letter_reason, "deferred-poison", "dead_letter_reason")
            expect_eq(dead_lettered.dead_letter_error_description, "gave up on it", "dead_letter_error_description")
            dead.complete_message(dead_lettered)
            expect_no_message(dead, max_wait_time=1)


if __name__ == "__main__":
    run(main)
