"""Scenario 7: a connection string with the wrong key is refused at put-token (CBS status 401),
which azure-servicebus 7.15.0 reports as ServiceBusAuthenticationError (the SDK turns any
non-2xx put-token status into TokenAuthFailure, an AuthenticationException)."""

from azure.servicebus import ServiceBusMessage
from azure.servicebus.exceptions import ServiceBusAuthenticationError

from sbcommon import ScenarioFailure, client, log, run, scenario_args


def send_one(sb, queue):
    # Opening the sender (in __enter__) is what performs put-token.
    with sb.get_queue_sender(queue) as sender:
        sender.send_messages(ServiceBusMessage("should not be accepted"))


def receive_one(sb, queue):
    with sb.get_queue_receiver(queue, max_wait_time=5) as receiver:
        receiver.receive_messages(max_message_count=1, max_wait_time=5)


def expect_auth_error(action, what):
    try:
        action()
    except ServiceBusAuthenticationError as error:
        log(f"{what}: ServiceBusAuthenticationError as expected: {error}")
        return
    except Exception as error:  # noqa: BLE001 - report the wrong error class by name
        raise ScenarioFailure(
            f"{what}: expected ServiceBusAuthenticationError, got {type(error).__name__}: {error}"
        ) from error
    raise ScenarioFailure(f"{what}: succeeded with a wrong key; expected ServiceBusAuthenticationError")


def main():
    conn, queue, _ = scenario_args()
    with client(conn, retry_total=0) as sb:
        expect_auth_error(lambda: send_one(sb, queue), "send")
        expect_auth_error(lambda: receive_one(sb, queue), "receive")


if __name__ == "__main__":
    run(main)
