"""Scenario 7: a connection string with the wrong key is refused at put-token (CBS status 401),
which azure-servicebus 7.15.0 reports as ServiceBusAuthenticationError (the SDK turns any
non-2xx put-token status into TokenAuthFailure, an AuthenticationException)."""

from azure.servicebus import ServiceBusMessage
from azure.servicebus.exceptions import ServiceBusAuthenticationError

from sbcommon import client, expect_raises, run, scenario_args


def send_one(sb, queue):
    # Opening the sender (in __enter__) is what performs put-token.
    with sb.get_queue_sender(queue) as sender:
        sender.send_messages(ServiceBusMessage("should not be accepted"))


def receive_one(sb, queue):
    with sb.get_queue_receiver(queue, max_wait_time=5) as receiver:
        receiver.receive_messages(max_message_count=1, max_wait_time=5)


def main():
    conn, queue, _ = scenario_args()
    with client(conn, retry_total=0) as sb:
        expect_raises(ServiceBusAuthenticationError, lambda: send_one(sb, queue), "send")
        expect_raises(ServiceBusAuthenticationError, lambda: receive_one(sb, queue), "receive")


if __name__ == "__main__":
    run(main)
