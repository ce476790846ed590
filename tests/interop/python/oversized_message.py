"""Scenario 9: the broker runs with --max-message-size 4096. An 8 KiB message is refused with
MessageSizeExceededError, and the same sender then still delivers a small message.

azure-servicebus 7.15.0 does not size-check a single message before sending it, and sizes
batches against its own 256 KiB default unless the broker advertises a batch limit, so both
refusals below come from the broker (amqp:link:message-size-exceeded) unless the log says the
SDK refused the batch itself."""

from azure.servicebus import ServiceBusMessage
from azure.servicebus.exceptions import MessageSizeExceededError

from sbcommon import ScenarioFailure, body_bytes, client, expect_eq, expect_no_message, log, receive_exactly, run, scenario_args

BROKER_LIMIT = 4096
BIG_BODY = b"x" * 8192


def send_expecting_size_error(sender, payload, what):
    try:
        sender.send_messages(payload)
    except MessageSizeExceededError as error:
        log(f"{what}: MessageSizeExceededError as expected: {error}")
        return
    except Exception as error:  # noqa: BLE001 - report the wrong error class by name
        raise ScenarioFailure(f"{what}: expected MessageSizeExceededError, got {type(error).__name__}: {error}") from error
    raise ScenarioFailure(f"{what}: an 8 KiB message was accepted by a broker limited to {BROKER_LIMIT} bytes")


def main():
    conn, queue, _ = scenario_args()
    with client(conn, retry_total=0) as sb:
        with sb.get_queue_sender(queue) as sender:
            send_expecting_size_error(sender, ServiceBusMessage(BIG_BODY, message_id="big-single"), "single message")
            # The sender link is open now; the broker must have advertised its limit on attach.
            advertised = sender._max_message_size_on_link  # no public accessor in 7.15.0
            expect_eq(advertised, BROKER_LIMIT, "max-message-size advertised on the sender link")

            try:
                batch = sender.create_message_batch()
                batch.add_message(ServiceBusMessage(BIG_BODY, message_id="big-in-batch"))
            except MessageSizeExceededError as error:
                log(f"batch: the SDK refused the message client-side ({error}); broker batch limit was advertised")
            else:
                log(f"batch: SDK batch limit is {batch.max_size_in_bytes} bytes; sending to the broker")
                send_expecting_size_error(sender, batch, "batch holding one 8 KiB message")

            sender.send_messages(ServiceBusMessage(b"small enough", message_id="small-1"))
            log("small message sent on the same sender")
        with sb.get_queue_receiver(queue) as receiver:
            [message] = receive_exactly(receiver, 1)
            expect_eq(message.message_id, "small-1", "the only stored message")
            expect_eq(body_bytes(message), b"small enough", "body")
            receiver.complete_message(message)
            expect_no_message(receiver)


if __name__ == "__main__":
    run(main)
