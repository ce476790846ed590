"""Scenario 12: a generic AMQP 1.0 client (Qpid Proton) uses the broker the way any conforming
client uses Service Bus: SASL ANONYMOUS, a put-token request on $cbs carrying a SAS token it
signed itself, then a sender and a receiver on the queue. Five messages go in, come back in
order, are accepted, and a fresh receiver then finds the queue empty."""

import base64
import hashlib
import hmac
import time
import urllib.parse
import uuid

from proton import Message
from proton.handlers import MessagingHandler
from proton.reactor import Container
from proton.utils import BlockingConnection

from sbcommon import ScenarioFailure, log, run, scenario_args

COUNT = 5
OVERALL_TIMEOUT = 45
EMPTY_CHECK_SECONDS = 2


def parse_connection_string(conn):
    fields = dict(part.split("=", 1) for part in conn.split(";") if "=" in part)
    endpoint = urllib.parse.urlparse(fields["Endpoint"])
    return endpoint.hostname, endpoint.port or 5672, fields["SharedAccessKeyName"], fields["SharedAccessKey"]


def plain_connection(host, port, user, password, timeout=15):
    """A blocking Proton connection authenticated with SASL PLAIN (a policy's key name and key)."""
    return BlockingConnection(
        f"amqp://{host}:{port}",
        user=user,
        password=password,
        allowed_mechs="PLAIN",
        allow_insecure_mechs=True,
        sasl_enabled=True,
        timeout=timeout,
    )


def sas_token(audience, key_name, key, lifetime_seconds=3600):
    expiry = int(time.time()) + lifetime_seconds
    resource = urllib.parse.quote_plus(audience)
    digest = hmac.new(key.encode("utf-8"), f"{resource}\n{expiry}".encode("utf-8"), hashlib.sha256).digest()
    signature = urllib.parse.quote_plus(base64.b64encode(digest).decode("ascii"))
    return f"SharedAccessSignature sr={resource}&sig={signature}&se={expiry}&skn={urllib.parse.quote_plus(key_name)}"


class Fire:
    """Timer callback target."""

    def __init__(self, callback):
        self.callback = callback

    def on_timer_task(self, _event):
        self.callback()


class GenericClient(MessagingHandler):
    def __init__(self, conn, queue):
        # Credit and acceptance are managed by hand so each step is explicit.
        super().__init__(prefetch=0, auto_accept=False)
        self.host, self.port, self.key_name, self.key = parse_connection_string(conn)
        self.queue = queue
        self.audience = f"sb://{self.host}:{self.port}/{queue}"
        self.cbs_reply_address = f"cbs-reply-{uuid.uuid4()}"
        self.put_token_id = str(uuid.uuid4())
        self.failure = None
        self.done = False
        self.token_sent = False
        self.authorized = False
        self.sent = 0
        self.accepted = 0
        self.received = []
        self.queue_sender = None
        self.first_receiver = None
        self.second_receiver = None
        self.container = None
        self.connection = None
        self.deadline_task = None

    def fail(self, message):
        if self.failure is None and not self.done:
            self.failure = message
            log(f"failure: {message}")
        self.finish()

    def finish(self):
        if self.deadline_task is not None:
            self.deadline_task.cancel()
            self.deadline_task = None
        if self.connection is not None:
            self.connection.close()
            self.connection = None
        if self.container is not None:
            self.container.stop()

    def on_start(self, event):
        self.container = event.container
        self.deadline_task = self.container.schedule(
            OVERALL_TIMEOUT, Fire(lambda: self.fail(f"scenario did not finish within {OVERALL_TIMEOUT}s "
                                                    f"(authorized={self.authorized}, sent={self.sent}, "
                                                    f"accepted={self.accepted}, received={len(self.received)})")))
        self.connection = self.container.connect(
            url=f"amqp://{self.host}:{self.port}", allowed_mechs="ANONYMOUS", sasl_enabled=True, reconnect=False)
        self.cbs_receiver = self.container.create_receiver(
            self.connection, source="$cbs", target=self.cbs_reply_address, name=self.cbs_reply_address)
        self.cbs_receiver.flow(1)
        self.cbs_sender = self.container.create_sender(self.connection, target="$cbs", name=f"cbs-request-{uuid.uuid4()}")

    def on_sendable(self, event):
        if event.sender == self.cbs_sender and not self.token_sent:
            self.token_sent = True
            request = Message(
                id=self.put_token_id,
                reply_to=self.cbs_reply_address,
                address="$cbs",
                properties={
                    "operation": "put-token",
                    "type": "servicebus.windows.net:sastoken",
                    "name": self.audience,
                },
                body=sas_token(self.audience, self.key_name, self.key),
            )
            event.sender.send(request)
            log(f"put-token sent for {self.audience}")
        elif event.sender == self.queue_sender:
            while self.sent < COUNT and event.sender.credit > 0:
                event.sender.send(Message(id=f"generic-{self.sent}", body=f"generic body {self.sent}"))
                self.sent += 1

    def on_link_opened(self, event):
        if event.link == self.queue_sender:
            limit = event.link.remote_max_message_size
            log(f"queue sender attached; broker max-message-size {limit}")
            if not limit or limit <= 0:
                self.fail(f"broker's attach for the sender link must carry a positive max-message-size, got {limit!r}")

    def on_message(self, event):
        if event.receiver == self.cbs_receiver:
            self.on_put_token_response(event)
        elif event.receiver == self.first_receiver:
            self.on_queue_message(event)
        elif event.receiver == self.second_receiver:
            message = event.message
            self.fail(f"queue should be empty after accepting all {COUNT}, but {message.id!r} arrived again")

    def on_put_token_response(self, event):
        response = event.message
        props = response.properties or {}
        status = props.get("status-code")
        self.accept(event.delivery)
        if response.correlation_id != self.put_token_id:
            self.fail(f"put-token response correlation-id {response.correlation_id!r} != request id {self.put_token_id!r}")
            return
        # Service Bus answers a taken token with 202 Accepted; clients such as fe2o3-amqp-cbs
        # (under the azservicebus crate) accept nothing else.
        description = props.get("status-description")
        if (status, description) != (202, "Accepted"):
            self.fail(f"put-token answered status-code {status!r} ({description!r}), expected 202 ('Accepted')")
            return
        log(f"put-token accepted: {props.get('status-description')!r}")
        self.authorized = True
        self.queue_sender = self.container.create_sender(self.connection, target=self.queue, name=f"generic-sender-{uuid.uuid4()}")

    def on_accepted(self, event):
        if event.link != self.queue_sender:
            return
        self.accepted += 1
        if self.accepted == COUNT:
            log(f"all {COUNT} transfers accepted; attaching a receiver")
            self.first_receiver = self.container.create_receiver(
                self.connection, source=self.queue, name=f"generic-receiver-{uuid.uuid4()}")
            self.first_receiver.flow(COUNT)

    def on_rejected(self, event):
        condition = event.delivery.remote.condition
        self.fail(f"broker rejected a transfer on {event.link.name}: {condition}")

    def on_released(self, event):
        self.fail(f"broker released a transfer on {event.link.name} instead of accepting it")

    def on_queue_message(self, event):
        message = event.message
        self.received.append((message.id, message.body))
        self.accept(event.delivery)
        if len(self.received) < COUNT:
            return
        expected = [(f"generic-{i}", f"generic body {i}") for i in range(COUNT)]
        if self.received != expected:
            self.fail(f"received {self.received}, expected {expected}")
            return
        log(f"received and accepted {COUNT} messages in order; checking the queue is now empty")
        self.first_receiver.close()
        self.second_receiver = self.container.create_receiver(
            self.connection, source=self.queue, name=f"generic-check-{uuid.uuid4()}")
        self.second_receiver.flow(COUNT)
        self.container.schedule(EMPTY_CHECK_SECONDS, Fire(self.on_empty_check_done))

    def on_empty_check_done(self):
        if self.failure is None:
            self.done = True
            log("queue empty as expected")
        self.finish()

    def on_link_error(self, event):
        self.fail(f"link {event.link.name} closed by the broker: {event.link.remote_condition}")

    def on_session_error(self, event):
        self.fail(f"session closed by the broker: {event.session.remote_condition}")

    def on_connection_error(self, event):
        self.fail(f"connection closed by the broker: {event.connection.remote_condition}")

    def on_transport_error(self, event):
        condition = event.transport.condition
        self.fail(f"transport error (is the broker running?): {condition}")

    def on_disconnected(self, event):
        if not self.done:
            condition = event.transport.condition if event.transport is not None else None
            self.fail(f"disconnected before the scenario finished (is the broker running?): {condition}")


def main():
    conn, queue, _ = scenario_args()
    client = GenericClient(conn, queue)
    Container(client).run()
    if client.failure:
        raise ScenarioFailure(client.failure)
    if not client.done:
        raise ScenarioFailure("the client stopped before finishing the scenario")


if __name__ == "__main__":
    run(main)
