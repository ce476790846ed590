"""Shared helpers for the Service Bus interop scenario scripts.

Every scenario script takes the connection string as argv[1] and the queue name as argv[2]
(falling back to BUSBAR_CONNECTION_STRING / BUSBAR_QUEUE), runs one scenario, prints what it
observed, and exits 0 only if every check held. A failed check exits 1 with a message naming
the expected and actual values; an unexpected exception exits 2 with its traceback.
"""

import os
import re
import sys
import time
import traceback
import uuid

from azure.servicebus import ServiceBusClient, ServiceBusMessage

UUID_PATTERN = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")


class ScenarioFailure(Exception):
    """A check in a scenario did not hold."""


def scenario_args(extra_names=()):
    """Returns (connection string, queue, {extra name: value}) from argv or the environment."""
    argv = sys.argv[1:]
    conn = argv[0] if len(argv) > 0 else os.environ.get("BUSBAR_CONNECTION_STRING")
    queue = argv[1] if len(argv) > 1 else os.environ.get("BUSBAR_QUEUE")
    if not conn or not queue:
        raise ScenarioFailure("usage: <script> CONNECTION_STRING QUEUE " + " ".join(extra_names))
    extras = {}
    for index, name in enumerate(extra_names):
        position = 2 + index
        if position >= len(argv):
            raise ScenarioFailure(f"missing argument {name}")
        extras[name] = argv[position]
    return conn, queue, extras


def log(message):
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


def check(condition, message):
    if not condition:
        raise ScenarioFailure(message)


def expect_eq(actual, expected, what):
    if actual != expected:
        raise ScenarioFailure(f"{what}: expected {expected!r}, got {actual!r}")


def expect_raises(error_class, action, what):
    """Runs `action`, which must fail with `error_class`; any other outcome fails the check."""
    try:
        action()
    except error_class as error:
        log(f"{what}: {error_class.__name__} as expected: {error}")
        return error
    except Exception as error:  # noqa: BLE001 - report the wrong error class by name
        raise ScenarioFailure(
            f"{what}: expected {error_class.__name__}, got {type(error).__name__}: {error}"
        ) from error
    raise ScenarioFailure(f"{what}: succeeded; expected {error_class.__name__}")


def client(conn, **kwargs):
    """A sync client. Error scenarios pass retry_total=0 so a refusal surfaces at once."""
    return ServiceBusClient.from_connection_string(conn, **kwargs)


def body_bytes(message):
    """The body of a received message as one bytes value (data sections concatenated)."""
    body = message.body
    if isinstance(body, (bytes, bytearray)):
        return bytes(body)
    return b"".join(bytes(part) for part in body)


def text(value):
    return value.decode("utf-8") if isinstance(value, (bytes, bytearray)) else value


def app_properties(message):
    """application_properties with str keys; string values decoded, other types untouched."""
    props = message.application_properties or {}
    return {text(key): text(value) for key, value in props.items()}


def receive_exactly(receiver, count, max_wait_time=10, deadline_seconds=30):
    """Receives until `count` messages arrived or the deadline passed; fails on a shortfall."""
    received = []
    deadline = time.monotonic() + deadline_seconds
    while len(received) < count and time.monotonic() < deadline:
        batch = receiver.receive_messages(
            max_message_count=count - len(received), max_wait_time=max_wait_time
        )
        received.extend(batch)
    check(
        len(received) == count,
        f"expected {count} message(s), received {len(received)} within {deadline_seconds}s",
    )
    return received


def prometheus_samples(text):
    """The samples of a Prometheus text exposition as {'name{labels}': value}."""
    samples = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            key, value = line.rsplit(" ", 1)
            samples[key] = float(value)
    return samples


def send_receive_one(sb, queue, prefix):
    """Sends one message to `queue`, receives it back (checking id and body), completes it,
    and checks nothing else is left."""
    marker = f"{prefix}-{uuid.uuid4()}"
    with sb.get_queue_sender(queue) as sender:
        sender.send_messages(ServiceBusMessage(marker, message_id=marker))
    with sb.get_queue_receiver(queue) as receiver:
        [message] = receive_exactly(receiver, 1)
        expect_eq(message.message_id, marker, "message_id")
        expect_eq(body_bytes(message), marker.encode(), "body")
        receiver.complete_message(message)
        expect_no_message(receiver)


def expect_no_message(receiver, max_wait_time=2):
    extra = receiver.receive_messages(max_message_count=1, max_wait_time=max_wait_time)
    if extra:
        message = extra[0]
        raise ScenarioFailure(
            f"expected no message within {max_wait_time}s, got one: message_id={message.message_id!r} "
            f"sequence_number={message.sequence_number} delivery_count={message.delivery_count} "
            f"body={body_bytes(message)!r}"
        )


def run_phases(phases):
    """Runs the scenario phase named by the third argument. `phases` maps each name to a
    function of (client, entity name, connection string, further arguments)."""

    def main():
        conn, entity, extras = scenario_args(["phase"])
        phase = phases.get(extras["phase"])
        if phase is None:
            raise ScenarioFailure(f"unknown phase {extras['phase']!r}; expected one of {sorted(phases)}")
        with client(conn) as sb:
            phase(sb, entity, conn, sys.argv[4:])

    run(main)


def run(main):
    """Runs a scenario's main function and turns its outcome into the exit code."""
    name = os.path.basename(sys.argv[0])
    try:
        main()
    except ScenarioFailure as failure:
        print(f"FAIL {name}: {failure}", flush=True)
        sys.exit(1)
    except Exception:  # noqa: BLE001 - any other exception is a scenario error worth its traceback
        traceback.print_exc()
        print(f"ERROR {name}: unexpected exception (see traceback above)", flush=True)
        sys.exit(2)
    print(f"PASS {name}", flush=True)
