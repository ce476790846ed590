"""Every message property between the Rust SDK (busbar-client) and the Python SDK.

Usage: rust_sdk_properties.py CONNECTION_STRING QUEUE MODE SESSION_ID

The queue requires sessions. MODE is
- `receive`: receives the one message of session SESSION_ID and prints it as one JSON line
  `MESSAGE {...}`: every property the Python SDK exposes, application properties with the
  Python type they decoded to. The Rust test that sent it compares.
- `send`: sends one message to session SESSION_ID with every property the Python SDK can set
  and application properties of each type it encodes (bytes values it sends as strings, and
  refuses unless UTF-8); the Rust test receives and compares.
"""

import datetime
import json
import uuid

from azure.servicebus import ServiceBusMessage

from sbcommon import body_bytes, check, client, log, run, scenario_args, text

# What `send` sets; the Rust test asserts the same values.
SENT_SCHEDULED = datetime.datetime(2020, 1, 2, 3, 4, 5, 678000, tzinfo=datetime.timezone.utc)
SENT_TIMESTAMP = datetime.datetime(2021, 6, 7, 8, 9, 10, 123000, tzinfo=datetime.timezone.utc)
SENT_UUID = uuid.UUID("0f8fad5b-d9cb-469f-a165-70867728950e")


def typed(value):
    """A JSON form of an application property value that keeps its Python type."""
    if isinstance(value, bytes):
        return {"type": "bytes", "value": value.hex()}
    if isinstance(value, uuid.UUID):
        return {"type": "uuid", "value": str(value)}
    if isinstance(value, datetime.datetime):
        return {"type": "datetime", "value": value.isoformat()}
    return {"type": type(value).__name__, "value": value}


def describe(message):
    scheduled = message.scheduled_enqueue_time_utc
    ttl = message.time_to_live
    return {
        "body": body_bytes(message).decode(),
        "message_id": message.message_id,
        "session_id": message.session_id,
        "correlation_id": message.correlation_id,
        "subject": message.subject,
        "to": message.to,
        "reply_to": message.reply_to,
        "reply_to_session_id": message.reply_to_session_id,
        "content_type": message.content_type,
        "time_to_live_ms": None if ttl is None else round(ttl.total_seconds() * 1000),
        "scheduled_enqueue_time_ms": None
        if scheduled is None
        else round(scheduled.timestamp() * 1000),
        "partition_key": message.partition_key,
        "sequence_number": message.sequence_number,
        "application_properties": {
            text(key): typed(value) for key, value in (message.application_properties or {}).items()
        },
    }


def receive(conn, queue, session_id):
    with client(conn) as sb, sb.get_queue_receiver(queue, session_id=session_id, max_wait_time=30) as receiver:
        messages = receiver.receive_messages(max_message_count=1, max_wait_time=30)
        check(len(messages) == 1, f"expected the Rust SDK's message, got {len(messages)}")
        message = messages[0]
        described = describe(message)
        receiver.complete_message(message)
    print("MESSAGE " + json.dumps(described), flush=True)


def send(conn, queue, session_id):
    message = ServiceBusMessage(
        b"from python",
        message_id="python-message-1",
        session_id=session_id,
        partition_key=session_id,
        correlation_id="python-correlation",
        subject="python-subject",
        to="python-to",
        reply_to="python-reply-to",
        reply_to_session_id="python-reply-session",
        content_type="application/json",
        time_to_live=datetime.timedelta(seconds=90),
        scheduled_enqueue_time_utc=SENT_SCHEDULED,
        application_properties={
            "string": "text",
            "small_int": 7,
            "int": 70000,
            "negative_int": -70000,
            "float": 2.5,
            "true": True,
            "false": False,
            "uuid": SENT_UUID,
            "datetime": SENT_TIMESTAMP,
            "none": None,
        },
    )
    with client(conn) as sb, sb.get_queue_sender(queue) as sender:
        sender.send_messages(message)
    log("sent python-message-1")


def main():
    conn, queue, extras = scenario_args(("mode", "session_id"))
    if extras["mode"] == "receive":
        receive(conn, queue, extras["session_id"])
    elif extras["mode"] == "send":
        send(conn, queue, extras["session_id"])
    else:
        check(False, f"unknown mode {extras['mode']!r}")


if __name__ == "__main__":
    run(main)
