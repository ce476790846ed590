"""Scenario 1: one message with body, application properties and standard properties survives
the round trip; peek-lock metadata (sequence numbers, enqueued time, delivery count, lock token)
is well formed; after complete, the queue is empty."""

import datetime

from azure.servicebus import ServiceBusMessage, ServiceBusReceiveMode

from sbcommon import (
    UUID_PATTERN, app_properties, body_bytes, check, client, expect_eq, expect_no_message, log,
    receive_exactly, run, scenario_args,
)


def main():
    conn, queue, _ = scenario_args()
    sent_props = {"color": "blue", "count": 42, "urgent": True}
    with client(conn) as sb:
        with sb.get_queue_sender(queue) as sender:
            before_send = datetime.datetime.now(datetime.timezone.utc)
            for index in range(2):
                sender.send_messages(ServiceBusMessage(
                    f"hello busbar {index}".encode(),
                    application_properties=sent_props,
                    subject="greeting",
                    content_type="text/plain",
                    correlation_id=f"corr-{index}",
                    message_id=f"roundtrip-{index}",
                ))
            log("sent 2 messages")

        with sb.get_queue_receiver(queue, receive_mode=ServiceBusReceiveMode.PEEK_LOCK) as receiver:
            for index in range(2):
                [message] = receive_exactly(receiver, 1)
                log(f"received seq={message.sequence_number} id={message.message_id} "
                    f"delivery_count={message.delivery_count} lock_token={message.lock_token}")
                expect_eq(body_bytes(message), f"hello busbar {index}".encode(), "body")
                expect_eq(message.message_id, f"roundtrip-{index}", "message_id")
                expect_eq(app_properties(message), sent_props, "application_properties")
                props = app_properties(message)
                check(type(props["count"]) is int, f"'count' lost its int type: {props['count']!r}")
                check(type(props["urgent"]) is bool, f"'urgent' lost its bool type: {props['urgent']!r}")
                expect_eq(message.subject, "greeting", "subject")
                expect_eq(message.content_type, "text/plain", "content_type")
                expect_eq(message.correlation_id, f"corr-{index}", "correlation_id")
                expect_eq(message.sequence_number, index + 1, "sequence_number")
                expect_eq(message.delivery_count, 0, "delivery_count")
                enqueued = message.enqueued_time_utc
                check(enqueued is not None, "enqueued_time_utc is not set")
                now = datetime.datetime.now(datetime.timezone.utc)
                slack = datetime.timedelta(seconds=5)
                check(before_send - slack <= enqueued <= now + slack,
                      f"enqueued_time_utc {enqueued} is outside the send window {before_send}..{now}")
                token = str(message.lock_token)
                check(UUID_PATTERN.match(token) is not None, f"lock token {token!r} is not a UUID")
                locked_until = message.locked_until_utc
                check(locked_until is not None and locked_until > now,
                      f"locked_until_utc {locked_until} should be in the future (now {now})")
                receiver.complete_message(message)
            log("completed both; checking the queue is empty")
            expect_no_message(receiver, max_wait_time=2)


if __name__ == "__main__":
    run(main)
