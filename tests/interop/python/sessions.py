"""Sessions, through the Python SDK, on a queue with RequiresSession.

Arguments: connection string, the session queue, then a phase:
  receive      messages of two sessions; a session receiver gets only its session's messages,
               in order; the lock is exclusive and renewable; state is kept; the next
               available session is handed out; with none left the wait times out; plain
               receivers and messages without a session id are refused
  state-send   stores a session state and leaves a message in that session (before a restart)
  state-check  both are still there (after a restart)
"""

from azure.servicebus import NEXT_AVAILABLE_SESSION, ServiceBusMessage
from azure.servicebus.exceptions import (
    OperationTimeoutError,
    ServiceBusError,
    SessionCannotBeLockedError,
)

from sbcommon import (
    ScenarioFailure,
    body_bytes,
    check,
    client,
    expect_eq,
    expect_no_message,
    log,
    receive_exactly,
    run_phases,
)


def receive(sb, conn, queue):
    with sb.get_queue_sender(queue) as sender:
        sender.send_messages([ServiceBusMessage(f"A{i}", session_id="A") for i in range(3)])
        sender.send_messages([ServiceBusMessage(f"B{i}", session_id="B") for i in range(2)])
        sender.send_messages(ServiceBusMessage("A3", session_id="A"))
    expect_eq(sorted(sb.list_queue_sessions(queue)), ["A", "B"], "list_queue_sessions")

    with sb.get_queue_receiver(queue, session_id="A") as receiver:
        session = receiver.session
        expect_eq(session.session_id, "A", "session id of the receiver")
        check(session.locked_until_utc is not None, "locked_until_utc is not set")
        peeked = receiver.peek_messages(max_message_count=10)
        expect_eq([body_bytes(m) for m in peeked], [b"A0", b"A1", b"A2", b"A3"], "peek within session A")
        messages = receive_exactly(receiver, 4)
        expect_eq([body_bytes(m) for m in messages], [b"A0", b"A1", b"A2", b"A3"], "bodies of session A, in order")
        expect_eq({m.session_id for m in messages}, {"A"}, "session ids received")
        before = session.locked_until_utc
        renewed = session.renew_lock()
        check(renewed >= before, f"renewed lock {renewed} is earlier than {before}")
        session.set_state(b"progress: 4")
        expect_eq(session.get_state(), b"progress: 4", "session state read back")

        with client(conn, retry_total=0) as strict:
            try:
                with strict.get_queue_receiver(queue, session_id="A", max_wait_time=5) as rival:
                    rival.receive_messages(max_message_count=1, max_wait_time=1)
                raise ScenarioFailure("a second receiver locked session A")
            except SessionCannotBeLockedError:
                log("a second receiver for a locked session was refused")

        for message in messages:
            receiver.complete_message(message)
        expect_no_message(receiver, max_wait_time=1)
    log("session A: 4 messages in order, lock renewed, state kept")

    with sb.get_queue_receiver(queue, session_id=NEXT_AVAILABLE_SESSION, max_wait_time=5) as receiver:
        expect_eq(receiver.session.session_id, "B", "next available session")
        messages = receive_exactly(receiver, 2)
        expect_eq([body_bytes(m) for m in messages], [b"B0", b"B1"], "bodies of session B")
        for message in messages:
            receiver.complete_message(message)
    log("the next available session was B")

    with client(conn, retry_total=0) as strict:
        try:
            with strict.get_queue_receiver(queue, session_id=NEXT_AVAILABLE_SESSION, max_wait_time=2) as receiver:
                receiver.receive_messages(max_message_count=1, max_wait_time=1)
            raise ScenarioFailure("a next-available receiver got a session with none left")
        except OperationTimeoutError:
            log("waiting for a session with none available timed out")

        try:
            with strict.get_queue_receiver(queue) as receiver:
                receiver.receive_messages(max_message_count=1, max_wait_time=2)
            raise ScenarioFailure("a plain receiver was accepted on a session queue")
        except ServiceBusError as error:
            log(f"a plain receiver was refused: {type(error).__name__}")

        try:
            with strict.get_queue_sender(queue) as sender:
                sender.send_messages(ServiceBusMessage("no session"))
            raise ScenarioFailure("a message without a session id was accepted")
        except ServiceBusError as error:
            log(f"a message without a session id was refused: {type(error).__name__}")

    with sb.get_queue_receiver(queue, session_id="A") as receiver:
        expect_eq(receiver.session.get_state(), b"progress: 4", "state of A after its lock was given up")
        receiver.session.set_state(None)
        expect_eq(receiver.session.get_state(), None, "cleared state")
    expect_eq(list(sb.list_queue_sessions(queue)), [], "list_queue_sessions once all is consumed and cleared")


def state_send(sb, queue):
    with sb.get_queue_sender(queue) as sender:
        sender.send_messages(ServiceBusMessage("kept", session_id="C"))
    with sb.get_queue_receiver(queue, session_id="C") as receiver:
        receiver.session.set_state(b"checkpoint 7")
    log("state and a message of session C stored")


def state_check(sb, queue):
    with sb.get_queue_receiver(queue, session_id="C") as receiver:
        expect_eq(receiver.session.get_state(), b"checkpoint 7", "state of C after the restart")
        [message] = receive_exactly(receiver, 1)
        expect_eq(body_bytes(message), b"kept", "message of C after the restart")
        receiver.complete_message(message)
    log("session C's state and message survived the restart")


if __name__ == "__main__":
    run_phases(
        {
            "receive": lambda sb, queue, conn, _: receive(sb, conn, queue),
            "state-send": lambda sb, queue, _conn, _: state_send(sb, queue),
            "state-check": lambda sb, queue, _conn, _: state_check(sb, queue),
        }
    )
