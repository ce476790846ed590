"""Multi-item $management requests are all or nothing.

Each request below names one good item and one bad one (a sequence number that does not exist,
or a lock token nobody holds); each must fail and leave the good item as it was:

* receive_deferred_messages([deferred, missing]) in RECEIVE_AND_DELETE mode fails with
  MessageNotFoundError and the deferred message is still there, DEFERRED;
* the same in PEEK_LOCK mode leaves no lock behind: both deferred messages can be received by
  sequence number right after;
* update-disposition "completed" with a held lock token and a stale one (sent by the SDK's own
  management settlement, which takes a list of tokens) fails with MessageLockLostError and both
  messages stay; the same request with the two held tokens then completes both;
* cancel_scheduled_messages([scheduled, missing]) on the queue and on the topic fails with
  MessageNotFoundError, and the scheduled message can still be canceled on its own afterwards.

Arguments: connection string, queue, topic."""

import datetime
import uuid

from azure.servicebus import ServiceBusMessage, ServiceBusMessageState, ServiceBusReceiveMode
from azure.servicebus.exceptions import MessageLockLostError, MessageNotFoundError

from sbcommon import ScenarioFailure, client, expect_eq, log, receive_exactly, run, scenario_args

MISSING_SEQUENCE_NUMBER = 999_999


def expect_error(error_type, action, what):
    try:
        action()
    except error_type as error:
        log(f"{what}: {error_type.__name__} as expected: {error}")
    else:
        raise ScenarioFailure(f"{what} succeeded; expected {error_type.__name__}")


def states(receiver):
    """Sequence number -> state of every message in the queue, by peeking."""
    return {m.sequence_number: m.state for m in receiver.peek_messages(max_message_count=50, sequence_number=1)}


def in_an_hour():
    return datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(hours=1)


def main():
    conn, queue, extras = scenario_args(["topic"])
    deferred = ServiceBusMessageState.DEFERRED
    with client(conn, retry_total=0) as sb:
        with sb.get_queue_sender(queue) as sender, sb.get_queue_receiver(queue) as receiver:
            sender.send_messages([ServiceBusMessage("one", message_id="atomic-1"),
                                  ServiceBusMessage("two", message_id="atomic-2")])
            received = receive_exactly(receiver, 2)
            seqs = [m.sequence_number for m in received]
            for message in received:
                receiver.defer_message(message)
            log(f"deferred {seqs}")

            with sb.get_queue_receiver(queue, receive_mode=ServiceBusReceiveMode.RECEIVE_AND_DELETE) as deleting:
                expect_error(MessageNotFoundError,
                             lambda: deleting.receive_deferred_messages([seqs[0], MISSING_SEQUENCE_NUMBER]),
                             "receive-and-delete of a deferred and a missing sequence number")
            expect_eq(states(receiver), {seqs[0]: deferred, seqs[1]: deferred},
                      "states after the failed receive-and-delete")

            expect_error(MessageNotFoundError,
                         lambda: receiver.receive_deferred_messages([seqs[0], MISSING_SEQUENCE_NUMBER]),
                         "peek-lock receive of a deferred and a missing sequence number")
            locked = receiver.receive_deferred_messages(seqs)
            expect_eq(sorted(m.sequence_number for m in locked), seqs, "deferred messages received by number")

            tokens = [m.lock_token for m in locked]
            # A stale token of the same type as the SDK's own, so the request is well-formed.
            stale = type(tokens[0])(str(uuid.uuid4()))
            expect_error(MessageLockLostError,
                         lambda: receiver._settle_message_via_mgmt_link("completed", [tokens[0], stale]),
                         "update-disposition with a held and a stale lock token")
            expect_eq(states(receiver), {seqs[0]: deferred, seqs[1]: deferred},
                      "states after the failed update-disposition")
            receiver._settle_message_via_mgmt_link("completed", tokens)
            expect_eq(states(receiver), {}, "states after completing both")

            [scheduled] = sender.schedule_messages(ServiceBusMessage("later"), in_an_hour())
            expect_error(MessageNotFoundError,
                         lambda: sender.cancel_scheduled_messages([scheduled, MISSING_SEQUENCE_NUMBER]),
                         "queue cancel of a scheduled and a missing sequence number")
            expect_eq(states(receiver), {scheduled: ServiceBusMessageState.SCHEDULED},
                      "states after the failed cancel")
            sender.cancel_scheduled_messages(scheduled)
            expect_eq(states(receiver), {}, "states after the cancel")

        with sb.get_topic_sender(extras["topic"]) as sender:
            [scheduled] = sender.schedule_messages(ServiceBusMessage("later"), in_an_hour())
            expect_error(MessageNotFoundError,
                         lambda: sender.cancel_scheduled_messages([scheduled, MISSING_SEQUENCE_NUMBER]),
                         "topic cancel of a scheduled and a missing sequence number")
            sender.cancel_scheduled_messages(scheduled)
            log(f"topic message {scheduled} canceled after the failed request")


if __name__ == "__main__":
    run(main)
