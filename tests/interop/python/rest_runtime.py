"""The REST runtime API (Service Bus's HTTP data plane), with requests shaped as Microsoft's
REST reference documents them ("Send Message", "Send Message Batch", "Peek-Lock Message",
"Unlock Message", "Delete Message", "Renew-Lock for a Message", "Receive and Delete
Message"): SAS token in `Authorization` (signed over the entity's URL, as Microsoft's Rust
crate signs it), broker properties as JSON in `BrokerProperties`, custom properties as
headers, the lock's URI in `Location`.

argv: MANAGE_CONN QUEUE PHASE HTTP_ADDRESS TOPIC SUBSCRIPTION SEND_KEY LISTEN_KEY MANAGE_KEY

Phases:
- lock_cycle: send, peek-lock, unlock (the delivery count grows), renew, complete; then an
  empty queue answers 204 after the timeout.
- batch_and_delete: a batch of three, taken by receive-and-delete (200) in order; 204 after.
- refusals: 401 without a token, with a bad signature, and with a token lacking the right;
  410 for an unknown entity; 404 for an unknown lock; 400 for bad BrokerProperties; 403
  for a message over the size limit and for what an entity's status refuses.
- cross_protocol: sent over REST and received by the SDK with its properties and custom
  properties; sent by the SDK (to a queue, and to a topic) and received over REST, and
  read from the dead-letter queue over REST.
"""

import datetime
import email.utils
import json
import os
import threading
import time
import uuid

import requests
from azure.servicebus import ServiceBusMessage

from proton_generic_client import sas_token
from sbcommon import ScenarioFailure, app_properties, body_bytes, check, client, expect_eq, log, run, scenario_args

SENDER = "sender"
LISTENER = "listener"
MANAGER = "manager"


class Rest:
    def __init__(self, address, keys):
        # REST_CA: speak HTTPS, trusting that CA (the broker's listeners serve both).
        self.ca = os.environ.get("REST_CA")
        self.base = f"{'https' if self.ca else 'http'}://{address}"
        self.keys = keys

    def url(self, entity, *tail):
        return "/".join([self.base, entity, *tail])

    def token(self, entity, policy):
        return sas_token(self.url(entity), policy, self.keys[policy])

    def request(self, method, url, entity, policy=MANAGER, headers=None, **kwargs):
        headers = dict(headers or {})
        if policy is not None:
            headers["Authorization"] = self.token(entity, policy)
        if self.ca:
            kwargs.setdefault("verify", self.ca)
        response = requests.request(method, url, headers=headers, timeout=30, **kwargs)
        log(f"{method} {url} -> {response.status_code}")
        return response

    def send(self, entity, body, broker_properties=None, custom=None, policy=SENDER, content_type="text/plain"):
        headers = {"Content-Type": content_type}
        if broker_properties is not None:
            headers["BrokerProperties"] = json.dumps(broker_properties)
        headers.update(custom or {})
        return self.request("POST", self.url(entity, "messages"), entity, policy, headers, data=body)

    def peek_lock(self, entity, timeout=10, policy=LISTENER):
        return self.request("POST", self.url(entity, "messages", "head") + f"?timeout={timeout}", entity, policy)

    def receive_and_delete(self, entity, timeout=10, policy=LISTENER):
        return self.request("DELETE", self.url(entity, "messages", "head") + f"?timeout={timeout}", entity, policy)


def expect_status(response, status, what):
    if response.status_code != status:
        raise ScenarioFailure(
            f"{what}: expected HTTP {status}, got {response.status_code}: {response.headers} {response.text!r}"
        )


def broker_properties(response):
    raw = response.headers.get("BrokerProperties")
    check(raw is not None, f"no BrokerProperties header in {dict(response.headers)}")
    return json.loads(raw)


def rfc1123(text_value):
    return email.utils.parsedate_to_datetime(text_value)


def lock_cycle(rest, queue, _args):
    sent = rest.send(
        queue,
        "This is a message.",
        {"Label": "M1", "MessageId": "rest-1", "CorrelationId": "c-1", "TimeToLive": 300},
        {"Priority": "High", "Customer": "12345,ABC"},
        content_type="application/atom+xml;type=entry;charset=utf-8",
    )
    expect_status(sent, 201, "send")

    first = rest.peek_lock(queue)
    expect_status(first, 201, "peek-lock")
    expect_eq(first.text, "This is a message.", "peek-lock body")
    expect_eq(first.headers.get("Content-Type"), "application/atom+xml;type=entry;charset=utf-8", "content type")
    props = broker_properties(first)
    for key, value in [("Label", "M1"), ("MessageId", "rest-1"), ("CorrelationId", "c-1"), ("DeliveryCount", 1), ("State", "Active")]:
        expect_eq(props.get(key), value, f"BrokerProperties {key}")
    expect_eq(props.get("TimeToLive"), 300, "BrokerProperties TimeToLive")
    expect_eq(props.get("SequenceNumber"), props.get("EnqueuedSequenceNumber"), "sequence numbers")
    check(rfc1123(props["LockedUntilUtc"]) > rfc1123(props["EnqueuedTimeUtc"]), f"locked until after enqueued: {props}")
    uuid.UUID(props["LockToken"])
    expect_eq(first.headers.get("Priority"), '"High"', "custom property Priority")
    expect_eq(first.headers.get("Customer"), '"12345,ABC"', "custom property Customer")
    location = first.headers.get("Location")
    expect_eq(location, rest.url(queue, "messages", str(props["SequenceNumber"]), props["LockToken"]), "Location")

    # Locked: nobody else gets it meanwhile.
    expect_status(rest.peek_lock(queue, timeout=1), 204, "peek-lock while the only message is locked")

    expect_status(rest.request("PUT", location, queue, LISTENER), 200, "unlock")
    second = rest.peek_lock(queue)
    expect_status(second, 201, "peek-lock after unlock")
    props = broker_properties(second)
    expect_eq(props["DeliveryCount"], 2, "delivery count after unlock")
    location = second.headers["Location"]

    before = rfc1123(props["LockedUntilUtc"])
    time.sleep(1.1)
    renewed = rest.request("POST", location, queue, LISTENER)
    expect_status(renewed, 200, "renew lock")
    after = rfc1123(broker_properties(renewed)["LockedUntilUtc"])
    check(after > before, f"renewal moved the lock from {before} to {after}")

    expect_status(rest.request("DELETE", location, queue, LISTENER), 200, "complete")
    expect_status(rest.request("DELETE", location, queue, LISTENER), 404, "complete twice")
    started = time.monotonic()
    expect_status(rest.peek_lock(queue, timeout=2), 204, "peek-lock on an empty queue")
    check(time.monotonic() - started >= 1.5, "the empty peek-lock waited for its timeout")


def batch_and_delete(rest, queue, _args):
    batch = [
        {"Body": "first", "BrokerProperties": {"Label": "one", "MessageId": "b-1"}, "UserProperties": {"Color": "red"}},
        {"Body": "second", "BrokerProperties": {"Label": "two"}, "UserProperties": {"Count": 2}},
        {"Body": "third", "UserProperties": {"Ok": True}},
    ]
    sent = rest.send(queue, json.dumps(batch), content_type="application/vnd.microsoft.servicebus.json")
    expect_status(sent, 201, "batch send")
    expected = [("first", "one", ("Color", '"red"')), ("second", "two", ("Count", "2")), ("third", None, ("Ok", "true"))]
    for body, label, (name, value) in expected:
        taken = rest.receive_and_delete(queue)
        expect_status(taken, 200, f"receive-and-delete of {body}")
        expect_eq(taken.text, body, "body")
        props = broker_properties(taken)
        expect_eq(props.get("Label"), label, "Label")
        check("LockToken" not in props, f"no lock for receive-and-delete: {props}")
        check("Location" not in taken.headers, "no Location for receive-and-delete")
        expect_eq(taken.headers.get(name), value, f"custom property {name}")
    expect_status(rest.receive_and_delete(queue, timeout=1), 204, "receive-and-delete on an empty queue")

    # A receive that is already waiting gets a message sent meanwhile.
    sender = threading.Timer(1.0, lambda: expect_status(rest.send(queue, "late"), 201, "send while a receive waits"))
    sender.start()
    waited = rest.receive_and_delete(queue, timeout=60)
    sender.join()
    expect_status(waited, 200, "a waiting receive-and-delete")
    expect_eq(waited.text, "late", "the message sent while it waited")


def refusals(rest, queue, _args):
    url = rest.url(queue, "messages")
    expect_status(requests.post(url, data="x", timeout=10), 401, "send without a token")
    forged = sas_token(rest.url(queue), SENDER, "not-the-key")
    expect_status(requests.post(url, data="x", headers={"Authorization": forged}, timeout=10), 401, "bad signature")
    expect_status(rest.send(queue, "x", policy=LISTENER), 401, "send with a Listen-only token")
    expect_status(rest.peek_lock(queue, policy=SENDER), 401, "peek-lock with a Send-only token")
    bearer = {"Authorization": "Bearer " + rest.token(queue, SENDER)}
    expect_status(requests.post(url, data="tolerated", headers=bearer, timeout=10), 201, "Bearer-prefixed token")
    expect_status(rest.receive_and_delete(queue), 200, "take the Bearer-sent message")

    expect_status(rest.send("no-such-queue", "x"), 410, "send to an unknown queue")
    expect_status(rest.peek_lock("no-such-queue", timeout=1), 410, "peek-lock on an unknown queue")
    unknown_lock = rest.url(queue, "messages", "1", str(uuid.uuid4()))
    expect_status(rest.request("DELETE", unknown_lock, queue, LISTENER), 404, "complete an unknown lock")
    expect_status(rest.request("PUT", unknown_lock, queue, LISTENER), 404, "unlock an unknown lock")
    expect_status(rest.request("POST", unknown_lock, queue, LISTENER), 404, "renew an unknown lock")

    bad = rest.request("POST", url, queue, SENDER, {"BrokerProperties": "{not json"}, data="x")
    expect_status(bad, 400, "unreadable BrokerProperties")
    expect_status(rest.send(queue, "x", {"TimeToLive": "soon"}), 400, "TimeToLive not a number")
    expect_status(rest.send(queue, b"x" * (300 * 1024)), 403, "a message over the size limit")
    expect_status(rest.receive_and_delete(queue, timeout=1), 204, "nothing refused was stored")

    # An entity's status is enforced: 403 for what it refuses, the rest served.
    send_off, receive_off = f"{queue}-send-disabled", f"{queue}-receive-disabled"
    expect_status(rest.send(send_off, "x"), 403, "send to a SendDisabled queue")
    expect_status(rest.receive_and_delete(send_off, timeout=1), 204, "receive from a SendDisabled queue")
    expect_status(rest.send(receive_off, "x"), 201, "send to a ReceiveDisabled queue")
    expect_status(rest.peek_lock(receive_off, timeout=1), 403, "peek-lock on a ReceiveDisabled queue")
    expect_status(rest.receive_and_delete(receive_off, timeout=1), 403, "receive-and-delete on a ReceiveDisabled queue")


def cross_protocol(rest, queue, args, conn):
    topic, subscription = args
    scheduled = datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0) + datetime.timedelta(hours=1)
    sent = rest.send(
        queue,
        "over http",
        {
            "MessageId": "x-1",
            "CorrelationId": "corr",
            "Label": "subject",
            "ReplyTo": "replies",
            "ReplyToSessionId": "reply-session",
            "To": "someone",
            "TimeToLive": 600,
        },
        {"Quoted": '"text"', "Number": "42", "Flag": "true", "Ratio": "0.5"},
        content_type="application/json",
    )
    expect_status(sent, 201, "send over REST")
    later = rest.send(queue, "later", {"MessageId": "x-2", "ScheduledEnqueueTimeUtc": email.utils.format_datetime(scheduled, usegmt=True)})
    expect_status(later, 201, "scheduled send over REST")
    with client(conn) as sb:
        with sb.get_queue_receiver(queue, max_wait_time=10) as receiver:
            messages = receiver.receive_messages(max_message_count=1, max_wait_time=10)
            expect_eq(len(messages), 1, "messages the SDK received")
            message = messages[0]
            expect_eq(body_bytes(message), b"over http", "body via the SDK")
            expect_eq(message.message_id, "x-1", "message_id")
            expect_eq(message.correlation_id, "corr", "correlation_id")
            expect_eq(message.subject, "subject", "subject")
            expect_eq(message.reply_to, "replies", "reply_to")
            expect_eq(message.reply_to_session_id, "reply-session", "reply_to_session_id")
            expect_eq(message.to, "someone", "to")
            expect_eq(message.content_type, "application/json", "content_type")
            expect_eq(message.time_to_live, datetime.timedelta(seconds=600), "time_to_live")
            expect_eq(
                app_properties(message),
                {"quoted": "text", "number": 42, "flag": True, "ratio": 0.5},
                "application properties (header names arrive in lower case)",
            )
            receiver.complete_message(message)
            peeked = receiver.peek_messages(max_message_count=5)
            expect_eq([(m.message_id, m.scheduled_enqueue_time_utc) for m in peeked], [("x-2", scheduled)], "scheduled message")

        with sb.get_queue_sender(queue) as sender:
            sender.send_messages(
                ServiceBusMessage(
                    b"from the sdk",
                    message_id="sdk-1",
                    correlation_id="c",
                    subject="s",
                    content_type="text/plain",
                    time_to_live=datetime.timedelta(minutes=5),
                    application_properties={"color": "blue", "count": 7, "ok": False, "ratio": 1.5},
                )
            )
        with sb.get_topic_sender(topic) as sender:
            sender.send_messages(ServiceBusMessage("to the topic", message_id="sdk-2", application_properties={"k": "v"}))

    taken = rest.peek_lock(queue)
    expect_status(taken, 201, "peek-lock of the SDK's message")
    expect_eq(taken.content, b"from the sdk", "body over REST")
    expect_eq(taken.headers.get("Content-Type"), "text/plain", "content type over REST")
    props = broker_properties(taken)
    for key, value in [("MessageId", "sdk-1"), ("CorrelationId", "c"), ("Label", "s"), ("TimeToLive", 300), ("DeliveryCount", 1)]:
        expect_eq(props.get(key), value, f"BrokerProperties {key}")
    for name, value in [("color", '"blue"'), ("count", "7"), ("ok", "false"), ("ratio", "1.5")]:
        expect_eq(taken.headers.get(name), value, f"custom property {name}")
    expect_status(rest.request("DELETE", taken.headers["Location"], queue, LISTENER), 200, "complete over REST")

    path = f"{topic}/subscriptions/{subscription}"
    from_topic = rest.receive_and_delete(path)
    expect_status(from_topic, 200, "receive-and-delete from the subscription")
    expect_eq(from_topic.text, "to the topic", "subscription body")
    expect_eq(broker_properties(from_topic).get("MessageId"), "sdk-2", "subscription MessageId")
    expect_eq(from_topic.headers.get("k"), '"v"', "subscription custom property")

    # And REST sends to a topic reach its subscription.
    expect_status(rest.send(topic, "rest to topic", {"MessageId": "x-3"}), 201, "send to the topic over REST")
    copy = rest.receive_and_delete(path)
    expect_status(copy, 200, "subscription copy")
    expect_eq(broker_properties(copy).get("MessageId"), "x-3", "copy MessageId")

    # A message the SDK dead-letters is read from the dead-letter queue over REST.
    with client(conn) as sb:
        with sb.get_queue_sender(queue) as sender:
            sender.send_messages(ServiceBusMessage("bad", message_id="dl-1"))
        with sb.get_queue_receiver(queue, max_wait_time=10) as receiver:
            (message,) = receiver.receive_messages(max_message_count=1, max_wait_time=10)
            receiver.dead_letter_message(message, reason="because", error_description="testing")
    dead = rest.receive_and_delete(f"{queue}/$DeadLetterQueue")
    expect_status(dead, 200, "receive-and-delete from the dead-letter queue")
    expect_eq(broker_properties(dead).get("MessageId"), "dl-1", "dead-lettered MessageId")
    expect_eq(dead.headers.get("DeadLetterReason"), '"because"', "dead-letter reason")


def main():
    conn, queue, extras = scenario_args(["phase", "http", "topic", "subscription", "send_key", "listen_key", "manage_key"])
    keys = {SENDER: extras["send_key"], LISTENER: extras["listen_key"], MANAGER: extras["manage_key"]}
    rest = Rest(extras["http"], keys)
    phase = extras["phase"]
    if phase == "cross_protocol":
        cross_protocol(rest, queue, [extras["topic"], extras["subscription"]], conn)
    elif phase in ("lock_cycle", "batch_and_delete", "refusals"):
        globals()[phase](rest, queue, [])
    else:
        raise ScenarioFailure(f"unknown phase {phase!r}")
    log(f"{phase}: every check held")


if __name__ == "__main__":
    run(main)
