"""MaxSizeInMegabytes is enforced.

Queue `small` and topic `small-topic` (one subscription) hold at most 1 MiB. Messages of
200,000 bytes: five fit, the sixth send fails with ServiceBusQuotaExceededError (the broker
answers amqp:resource-limit-exceeded). While the queue is full:

* another queue still takes messages, and the refused sender still works once there is room;
* scheduling a message on the full queue is refused the same way;
* receiving and settling work: completing one message makes room for exactly one more;
  dead-lettering one does not, since the dead-letter queue counts toward the size;
* once everything (dead-letter queue included) is drained, the queue takes five again.

The topic refuses the sixth publish too, and takes one more once its subscription's message
was completed.

Arguments: connection string, queue, another queue, topic, subscription."""

import datetime

from azure.servicebus import ServiceBusMessage, ServiceBusReceiveMode, ServiceBusSubQueue
from azure.servicebus.exceptions import ServiceBusQuotaExceededError

from sbcommon import ScenarioFailure, client, expect_eq, log, receive_exactly, run, scenario_args

BODY = b"x" * 200_000
FITS = 5


def message():
    return ServiceBusMessage(BODY)


def expect_quota_exceeded(action, what):
    try:
        action()
    except ServiceBusQuotaExceededError as error:
        log(f"{what}: ServiceBusQuotaExceededError as expected: {error}")
    else:
        raise ScenarioFailure(f"{what} succeeded; expected ServiceBusQuotaExceededError")


def fill(sender, what):
    """Sends one message at a time until the entity is full; returns how many were taken."""
    for sent in range(FITS + 5):
        try:
            sender.send_messages(message())
        except ServiceBusQuotaExceededError as error:
            log(f"{what}: send {sent + 1} refused: {error}")
            return sent
    raise ScenarioFailure(f"{what}: {FITS + 5} messages of {len(BODY)} bytes were all accepted")


def main():
    conn, queue, extras = scenario_args(["other", "topic", "subscription"])
    with client(conn, retry_total=0) as sb:
        with sb.get_queue_sender(queue) as sender:
            expect_eq(fill(sender, queue), FITS, "messages the empty queue takes")

            with sb.get_queue_sender(extras["other"]) as other:
                other.send_messages(message())
            with sb.get_queue_receiver(extras["other"], receive_mode=ServiceBusReceiveMode.RECEIVE_AND_DELETE) as r:
                receive_exactly(r, 1)
            log("another queue still takes messages")

            due = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(hours=1)
            expect_quota_exceeded(lambda: sender.schedule_messages(message(), due), "schedule on the full queue")

            with sb.get_queue_receiver(queue) as receiver:
                completed, dead_lettered = receive_exactly(receiver, 2)
                receiver.complete_message(completed)
                sender.send_messages(message())
                log("one completed, one more sent")
                expect_quota_exceeded(lambda: sender.send_messages(message()), "send once full again")
                receiver.dead_letter_message(dead_lettered, reason="kept")
                expect_quota_exceeded(lambda: sender.send_messages(message()),
                                      "send after a dead-lettering (the dead-letter queue counts)")
                for rest in receive_exactly(receiver, FITS - 1):
                    receiver.complete_message(rest)
            with sb.get_queue_receiver(queue, sub_queue=ServiceBusSubQueue.DEAD_LETTER) as dead:
                [kept] = receive_exactly(dead, 1)
                dead.complete_message(kept)
            expect_eq(fill(sender, queue), FITS, "messages the drained queue takes")

        with sb.get_topic_sender(extras["topic"]) as sender:
            expect_eq(fill(sender, extras["topic"]), FITS, "messages the empty topic takes")
            with sb.get_subscription_receiver(extras["topic"], extras["subscription"]) as receiver:
                [first] = receive_exactly(receiver, 1)
                receiver.complete_message(first)
            sender.send_messages(message())
            log("the topic took one more after a completion")


if __name__ == "__main__":
    run(main)
