"""Scenario 8: sending to or receiving from a queue that does not exist raises
MessagingEntityNotFoundError (the broker refuses the link attach with amqp:not-found)."""

from azure.servicebus import ServiceBusMessage
from azure.servicebus.exceptions import MessagingEntityNotFoundError

from sbcommon import client, expect_raises, run, scenario_args


def send_one(sb, queue):
    with sb.get_queue_sender(queue) as sender:
        sender.send_messages(ServiceBusMessage("nobody home"))


def receive_one(sb, queue):
    with sb.get_queue_receiver(queue, max_wait_time=5) as receiver:
        receiver.receive_messages(max_message_count=1, max_wait_time=5)


def main():
    conn, queue, _ = scenario_args()
    with client(conn, retry_total=0) as sb:
        expect_raises(MessagingEntityNotFoundError, lambda: send_one(sb, queue), "send")
        expect_raises(MessagingEntityNotFoundError, lambda: receive_one(sb, queue), "receive")


if __name__ == "__main__":
    run(main)
