"""Rights on every operation: three connection strings, each of a policy holding one right
(Send, Listen, Manage).

Through the official SDK (azure-servicebus 7.15.0): a Send-only client sends, schedules and
cancels but cannot receive; a Listen-only client receives and settles but cannot send or
schedule; Manage does both.

Through a generic AMQP client (Qpid Proton), because the SDK never sends a `$management`
request on a link it could not open: every `$management` operation, sent by each policy's
token, is refused with status 401 and `amqp:unauthorized-access` exactly when the policy
lacks the right the operation needs (Send: schedule, cancel; Listen: peek, receive by
sequence number, renew lock, update disposition, session lock and state, list sessions;
Manage: rules), and is served otherwise.

Session operations are for the session's holder only: a second connection with Listen
rights cannot renew, read or write the state of a session another connection holds, while
the holder can.

argv: SEND_CONN QUEUE LISTEN_CONN MANAGE_CONN SESSION_QUEUE TOPIC SUBSCRIPTION
"""

import datetime
import time
import uuid

from azure.servicebus import ServiceBusMessage
from azure.servicebus.exceptions import MessageNotFoundError, ServiceBusAuthorizationError
from proton import UNDESCRIBED, Array, Data, Message, timestamp
from proton.utils import BlockingConnection, LinkDetached

from proton_generic_client import parse_connection_string, sas_token
from sbcommon import ScenarioFailure, check, client, expect_eq, expect_raises, log, run, scenario_args

MANAGEMENT_RIGHTS = {
    "com.microsoft:schedule-message": "Send",
    "com.microsoft:cancel-scheduled-message": "Send",
    "com.microsoft:renew-lock": "Listen",
    "com.microsoft:peek-message": "Listen",
    "com.microsoft:receive-by-sequence-number": "Listen",
    "com.microsoft:update-disposition": "Listen",
    "com.microsoft:renew-session-lock": "Listen",
    "com.microsoft:get-session-state": "Listen",
    "com.microsoft:set-session-state": "Listen",
    "com.microsoft:get-message-sessions": "Listen",
    "com.microsoft:add-rule": "Manage",
    "com.microsoft:remove-rule": "Manage",
    "com.microsoft:enumerate-rules": "Manage",
}


def sdk_checks(send_conn, listen_conn, manage_conn, queue):
    with client(send_conn, retry_total=0) as sb:
        with sb.get_queue_sender(queue) as sender:
            sender.send_messages(ServiceBusMessage("from the sender"))
            later = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(hours=1)
            seqs = sender.schedule_messages(ServiceBusMessage("later"), later)
            sender.cancel_scheduled_messages(seqs)
        log("Send-only: sent, scheduled and cancelled")

        def receive():
            with sb.get_queue_receiver(queue, max_wait_time=2) as receiver:
                receiver.receive_messages(max_message_count=1, max_wait_time=2)

        expect_raises(ServiceBusAuthorizationError, receive, "Send-only receive")

    with client(listen_conn, retry_total=0) as sb:
        with sb.get_queue_receiver(queue, max_wait_time=5) as receiver:
            got = receiver.receive_messages(max_message_count=1, max_wait_time=5)
            expect_eq(len(got), 1, "messages a Listen-only client receives")
            receiver.complete_message(got[0])
        log("Listen-only: received and completed")

        def send():
            with sb.get_queue_sender(queue) as sender:
                sender.send_messages(ServiceBusMessage("should not be accepted"))

        def schedule():
            with sb.get_queue_sender(queue) as sender:
                later = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(hours=1)
                sender.schedule_messages(ServiceBusMessage("later"), later)

        expect_raises(ServiceBusAuthorizationError, send, "Listen-only send")
        expect_raises(ServiceBusAuthorizationError, schedule, "Listen-only schedule")

    with client(manage_conn, retry_total=0) as sb:
        with sb.get_queue_sender(queue) as sender:
            sender.send_messages(ServiceBusMessage("from the manager"))
        with sb.get_queue_receiver(queue, max_wait_time=5) as receiver:
            got = receiver.receive_messages(max_message_count=1, max_wait_time=5)
            expect_eq(len(got), 1, "messages a Manage client receives")
            receiver.complete_message(got[0])
        log("Manage: sent, received and completed")


class Raw:
    """A generic AMQP connection that puts one SAS token and talks to management nodes."""

    def __init__(self, conn, scope):
        host, port, key_name, key = parse_connection_string(conn)
        self.base = f"sb://{host}:{port}"
        self.connection = BlockingConnection(
            f"amqp://{host}:{port}", allowed_mechs="ANONYMOUS", sasl_enabled=True, timeout=10
        )
        self.nodes = {}
        token = sas_token(f"{self.base}/{scope}", key_name, key)
        status, description, _ = self.request(
            "$cbs",
            "put-token",
            token,
            extra={"type": "servicebus.windows.net:sastoken", "name": f"{self.base}/{scope}"},
        )
        expect_eq(status, 202, f"put-token for {key_name} ({description})")

    def node(self, name):
        if name not in self.nodes:
            reply_to = f"reply-{uuid.uuid4()}"
            sender = self.connection.create_sender(name)
            receiver = self.connection.create_receiver(name, name=reply_to, credit=10)
            self.nodes[name] = (sender, receiver, reply_to)
        return self.nodes[name]

    def request(self, node, operation, body, extra=None):
        sender, receiver, reply_to = self.node(node)
        properties = {"operation": operation}
        properties.update(extra or {})
        message_id = str(uuid.uuid4())
        sender.send(Message(id=message_id, reply_to=reply_to, properties=properties, body=body))
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            response = receiver.receive(timeout=10)

            if response.correlation_id != message_id:
                continue
            props = response.properties or {}
            status = props.get("statusCode", props.get("status-code"))
            description = props.get("statusDescription", props.get("status-description"))
            return status, description, props.get("errorCondition")
        raise ScenarioFailure(f"no response to {operation} on {node}")

    def close(self):
        self.connection.close()


def longs(*values):
    return Array(UNDESCRIBED, Data.LONG, *values)


def uuids(*values):
    return Array(UNDESCRIBED, Data.UUID, *values)


def request_bodies(queue, session_queue, subscription_node):
    """(node, operation, body) for every $management operation, with harmless arguments."""
    scheduled = Message(body="scheduled by a raw client")
    encoded = scheduled.encode()
    in_an_hour = timestamp(int((time.time() + 3600) * 1000))
    queue_node = f"{queue}/$management"
    session_node = f"{session_queue}/$management"
    rule = {
        "rule-name": "raw-rule",
        "rule-description": {
            "sql-filter": {"expression": "1=1"},
            "sql-rule-action": None,
            "rule-name": "raw-rule",
        },
    }
    return [
        (queue_node, "com.microsoft:schedule-message",
         {"messages": [{"message-id": str(uuid.uuid4()), "message": encoded}],
          "scheduled-enqueue-time": in_an_hour}),
        (queue_node, "com.microsoft:cancel-scheduled-message", {"sequence-numbers": longs(987654)}),
        (queue_node, "com.microsoft:renew-lock", {"lock-tokens": uuids(uuid.uuid4())}),
        (queue_node, "com.microsoft:peek-message", {"from-sequence-number": 1, "message-count": 1}),
        (queue_node, "com.microsoft:receive-by-sequence-number",
         {"sequence-numbers": longs(987654), "receiver-settle-mode": 1}),
        (queue_node, "com.microsoft:update-disposition",
         {"lock-tokens": uuids(uuid.uuid4()), "disposition-status": "completed"}),
        (session_node, "com.microsoft:renew-session-lock", {"session-id": "nobody-holds-this"}),
        (session_node, "com.microsoft:get-session-state", {"session-id": "nobody-holds-this"}),
        (session_node, "com.microsoft:set-session-state",
         {"session-id": "nobody-holds-this", "session-state": b"x"}),
        (session_node, "com.microsoft:get-message-sessions", {"skip": 0, "top": 10}),
        (subscription_node, "com.microsoft:add-rule", rule),
        (subscription_node, "com.microsoft:enumerate-rules", {"top": 10, "skip": 0}),
        (subscription_node, "com.microsoft:remove-rule", {"rule-name": "raw-rule"}),
    ]


def management_checks(policies, queue, session_queue, topic, subscription):
    subscription_node = f"{topic}/Subscriptions/{subscription}/$management"
    checked = 0
    for right, conn in policies.items():
        raw = Raw(conn, "")
        try:
            for node, operation, body in request_bodies(queue, session_queue, subscription_node):
                needed = MANAGEMENT_RIGHTS[operation]
                allowed = right == "Manage" or right == needed
                status, description, condition = raw.request(node, operation, body)
                if allowed:
                    check(status != 401, f"{right}: {operation} refused with 401 ({description})")
                else:
                    expect_eq(status, 401, f"{right}: status of {operation} ({description})")
                    expect_eq(str(condition), "amqp:unauthorized-access", f"{right}: condition of {operation}")
                checked += 1
                log(f"{right}: {operation} -> {status}")
        finally:
            raw.close()
    expect_eq(checked, 3 * len(MANAGEMENT_RIGHTS), "requests checked")


def session_holder_checks(send_conn, listen_conn, session_queue):
    with client(send_conn, retry_total=0) as sb:
        with sb.get_queue_sender(session_queue) as sender:
            sender.send_messages(ServiceBusMessage("in session", session_id="held"))
    with client(listen_conn, retry_total=0) as sb:
        with sb.get_queue_receiver(session_queue, session_id="held", max_wait_time=5) as receiver:
            session = receiver.session
            session.set_state(b"holder's state")
            log("holder: set its session state")

            stranger = Raw(listen_conn, "")
            try:
                node = f"{session_queue}/$management"
                for operation, body in [
                    ("com.microsoft:renew-session-lock", {"session-id": "held"}),
                    ("com.microsoft:get-session-state", {"session-id": "held"}),
                    ("com.microsoft:set-session-state", {"session-id": "held", "session-state": b"stolen"}),
                    ("com.microsoft:peek-message", {"from-sequence-number": 1, "message-count": 1, "session-id": "held"}),
                ]:
                    status, description, condition = stranger.request(node, operation, body)
                    expect_eq(status, 410, f"another connection's {operation} on a held session ({description})")
                    expect_eq(str(condition), "com.microsoft:session-lock-lost", f"condition of a stranger's {operation}")
                    log(f"stranger: {operation} -> {status} {condition}")
            finally:
                stranger.close()

            expect_eq(bytes(session.get_state()), b"holder's state", "state after a stranger tried to write it")
            session.renew_lock()
            got = receiver.receive_messages(max_message_count=1, max_wait_time=5)
            expect_eq(len(got), 1, "messages the holder receives")
            receiver.defer_message(got[0])
            deferred = got[0].sequence_number
            log(f"holder: state intact, lock renewed, message {deferred} deferred")

            # Another connection holding another session of the queue can't take it.
            with client(listen_conn, retry_total=0) as other_sb:
                with other_sb.get_queue_receiver(session_queue, session_id="other", max_wait_time=5) as other:
                    expect_raises(
                        MessageNotFoundError,
                        lambda: other.receive_deferred_messages([deferred]),
                        "another session's holder receiving the deferred message",
                    )
            stranger = Raw(listen_conn, "")
            try:
                status, description, _ = stranger.request(
                    f"{session_queue}/$management",
                    "com.microsoft:receive-by-sequence-number",
                    {"sequence-numbers": longs(deferred), "receiver-settle-mode": 1},
                )
                check(status in (400, 410), f"a sessionless receive of a session's message: {status} {description}")
            finally:
                stranger.close()

            again = receiver.receive_deferred_messages([deferred])
            expect_eq(len(again), 1, "the holder receives its deferred message")
            receiver.complete_message(again[0])
            log("holder: its deferred message was kept for it and completed")


def downgrade_checks(manage_conn, listen_conn, queue):
    """A new token with fewer rights for the same audience takes effect on open links."""
    raw = Raw(manage_conn, "")
    try:
        sender = raw.connection.create_sender(queue)
        sender.send(Message(body="sent while the token allowed it"))
        _, _, key_name, key = parse_connection_string(listen_conn)
        audience = f"{raw.base}/"
        detached = None
        try:
            status, description, _ = raw.request(
                "$cbs",
                "put-token",
                sas_token(audience, key_name, key),
                extra={"type": "servicebus.windows.net:sastoken", "name": audience},
            )
            expect_eq(status, 202, f"put-token of the Listen-only key ({description})")
            sender.send(Message(body="must not be accepted"))
        except LinkDetached as error:
            # Proton reports the sender's detach wherever it is waiting when it comes.
            detached = error
        check(detached is not None, "a sender kept sending after its token was replaced by a Listen-only one")
        check("unauthorized-access" in str(detached), f"the sender's detach: {detached}")
        log(f"after a Listen-only token replaced the Manage one the sender was detached: {detached}")
    finally:
        raw.close()


def main():
    send_conn, queue, extras = scenario_args(
        ("LISTEN_CONN", "MANAGE_CONN", "SESSION_QUEUE", "TOPIC", "SUBSCRIPTION")
    )
    listen_conn, manage_conn = extras["LISTEN_CONN"], extras["MANAGE_CONN"]
    sdk_checks(send_conn, listen_conn, manage_conn, queue)
    management_checks(
        {"Send": send_conn, "Listen": listen_conn, "Manage": manage_conn},
        queue,
        extras["SESSION_QUEUE"],
        extras["TOPIC"],
        extras["SUBSCRIPTION"],
    )
    session_holder_checks(send_conn, listen_conn, extras["SESSION_QUEUE"])
    downgrade_checks(manage_conn, listen_conn, queue)


if __name__ == "__main__":
    run(main)
