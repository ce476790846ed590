"""Entity status is enforced with Service Bus's error: a Disabled queue refuses sends and
receives, a SendDisabled one refuses sends (receives work), a ReceiveDisabled one refuses
receives (sends work); each refusal raises MessagingEntityDisabledError
(com.microsoft:entity-disabled), scheduling (a send through $management) included. Arguments: the Disabled queue, then SendDisabled and
ReceiveDisabled ones."""

import datetime

from azure.servicebus import ServiceBusMessage
from azure.servicebus.exceptions import MessagingEntityDisabledError

from sbcommon import client, expect_eq, expect_raises, log, run, scenario_args


def send_one(sb, queue):
    with sb.get_queue_sender(queue) as sender:
        sender.send_messages(ServiceBusMessage(f"to {queue}"))


def schedule_one(sb, queue):
    with sb.get_queue_sender(queue) as sender:
        later = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(hours=1)
        sender.schedule_messages(ServiceBusMessage(f"later to {queue}"), later)


def receive(sb, queue):
    with sb.get_queue_receiver(queue, max_wait_time=2) as receiver:
        return receiver.receive_messages(max_message_count=1, max_wait_time=2)


def main():
    conn, disabled, extras = scenario_args(["send_disabled", "receive_disabled"])
    send_disabled, receive_disabled = extras["send_disabled"], extras["receive_disabled"]
    with client(conn, retry_total=0) as sb:
        error = expect_raises(
            MessagingEntityDisabledError, lambda: send_one(sb, disabled), "send to Disabled"
        )
        expect_eq("disabled" in str(error), True, "the error says the entity is disabled")
        expect_raises(
            MessagingEntityDisabledError, lambda: receive(sb, disabled), "receive from Disabled"
        )
        expect_raises(
            MessagingEntityDisabledError,
            lambda: send_one(sb, send_disabled),
            "send to SendDisabled",
        )
        expect_raises(
            MessagingEntityDisabledError,
            lambda: schedule_one(sb, send_disabled),
            "schedule on SendDisabled",
        )
        expect_eq(receive(sb, send_disabled), [], "receive from SendDisabled works")
        send_one(sb, receive_disabled)
        log("send to ReceiveDisabled works")
        expect_raises(
            MessagingEntityDisabledError,
            lambda: receive(sb, receive_disabled),
            "receive from ReceiveDisabled",
        )


if __name__ == "__main__":
    run(main)
