"""Topics and filtered subscriptions, through the Python SDK.

Arguments: connection string, topic name ("orders"), then a phase:
  filters      fan-out by correlation and SQL filters, rule actions, duplicate detection
               on the topic, forwarding from a subscription, a subscription's dead-letter
               queue, and the refusals for receiving from a topic / sending to a subscription
  schedule     messages scheduled on the topic (through the management node and through
               the scheduled-enqueue-time of a send) reach the subscriptions when due,
               filtered then; a cancelled one never does
  counts       (with the HTTP address as 4th argument) GET /api/topics[/orders] report the
               topic's scheduled messages and each subscription's counts and rules;
               GET /api/queues leaves subscriptions out
  deadletters  (topic "events") a filter that fails on a message dead-letters it in a
               subscription with DeadLetteringOnFilterEvaluationExceptions and skips it in one
               without; a session subscription dead-letters messages without a session id;
               dead letters of queue "fragile" are forwarded into the topic
  send         sends one message to the topic and schedules one (before a restart)
  check        receives both from two subscriptions (after a restart)

Subscriptions of "orders" as the test configures them:
  all       no rules (the default rule: everything)
  created   correlation filter Label = 'created'
  big       SQL  amount >= 100 AND region IN ('eu', 'uk')
  tagged    SQL  vip = TRUE  with action  SET priority = 'high'; REMOVE internal
            and  SQL  EXISTS(region)  without action
  audit     default rule, ForwardTo queue "auditq"
"""

import datetime
import json
import time
import urllib.error
import urllib.request

from azure.servicebus import ServiceBusMessage, ServiceBusSubQueue
from azure.servicebus.exceptions import ServiceBusError

from sbcommon import (
    ScenarioFailure,
    app_properties,
    body_bytes,
    check,
    client,
    expect_eq,
    expect_no_message,
    log,
    receive_exactly,
    run_phases,
)


def order(message_id, subject, **properties):
    return ServiceBusMessage(
        f"order {message_id}",
        message_id=message_id,
        subject=subject,
        application_properties=properties or None,
    )


def drain(sb, topic, subscription, count):
    """Receives exactly `count` messages from the subscription, completes them, and checks
    nothing else is there. Returns (message_id, application properties) pairs."""
    with sb.get_subscription_receiver(topic, subscription) as receiver:
        messages = receive_exactly(receiver, count)
        for message in messages:
            receiver.complete_message(message)
        expect_no_message(receiver, max_wait_time=1)
    return [(m.message_id, app_properties(m)) for m in messages]


def filters(sb, topic, conn):
    with sb.get_topic_sender(topic) as sender:
        sender.send_messages(
            order("o-1", "created", amount=150, region="eu", vip=True, internal="secret")
        )
        sender.send_messages(order("o-2", "updated", amount=50, region="us"))
        sender.send_messages([order("o-3", "created", amount=500, region="uk"), order("o-4", "deleted")])
        # A repeat of o-1 within the topic's duplicate-detection window: dropped.
        sender.send_messages(order("o-1", "created", amount=999, region="eu"))

    everything = drain(sb, topic, "all", 4)
    expect_eq([m for m, _ in everything], ["o-1", "o-2", "o-3", "o-4"], "ids in 'all'")
    expect_eq(everything[0][1].get("amount"), 150, "the first o-1 is the one kept")

    created = drain(sb, topic, "created", 2)
    expect_eq([m for m, _ in created], ["o-1", "o-3"], "ids in 'created' (correlation filter)")

    big = drain(sb, topic, "big", 2)
    expect_eq([m for m, _ in big], ["o-1", "o-3"], "ids in 'big' (SQL filter)")

    tagged = drain(sb, topic, "tagged", 4)
    expect_eq(sorted(m for m, _ in tagged), ["o-1", "o-1", "o-2", "o-3"], "ids in 'tagged'")
    annotated = [p for m, p in tagged if p.get("RuleName") == "vip"]
    expect_eq(len(annotated), 1, "copies made by the rule with an action")
    expect_eq(annotated[0].get("priority"), "high", "property set by the action")
    check("internal" not in annotated[0], f"property removed by the action is still there: {annotated[0]}")
    plain = [p for m, p in tagged if m == "o-1" and "RuleName" not in p]
    expect_eq(len(plain), 1, "unchanged copy of o-1 (rule without action)")
    expect_eq(plain[0].get("internal"), "secret", "the unchanged copy keeps its properties")
    log("correlation and SQL filters selected, rule actions annotated, the duplicate was dropped")

    with sb.get_queue_receiver("auditq") as receiver:
        forwarded = receive_exactly(receiver, 4)
        expect_eq(sorted(m.message_id for m in forwarded), ["o-1", "o-2", "o-3", "o-4"], "ids forwarded to auditq")
        for message in forwarded:
            receiver.complete_message(message)
    with sb.get_subscription_receiver(topic, "audit") as receiver:
        expect_no_message(receiver, max_wait_time=1)
    log("a subscription with ForwardTo passed its copies on to a queue")

    with sb.get_topic_sender(topic) as sender:
        sender.send_messages(order("o-5", "created", amount=1, region="fr"))
    with sb.get_subscription_receiver(topic, "created") as receiver:
        [message] = receive_exactly(receiver, 1)
        receiver.dead_letter_message(message, reason="bad order", error_description="amount too small")
    with sb.get_subscription_receiver(topic, "created", sub_queue=ServiceBusSubQueue.DEAD_LETTER) as receiver:
        [dead] = receive_exactly(receiver, 1)
        expect_eq(dead.message_id, "o-5", "dead-lettered id")
        expect_eq(dead.dead_letter_reason, "bad order", "dead_letter_reason")
        expect_eq(body_bytes(dead), b"order o-5", "dead-lettered body")
        receiver.complete_message(dead)
    for name in ("all", "tagged"):
        drain(sb, topic, name, 1)
    drain(sb, topic, "created", 0)
    with sb.get_queue_receiver("auditq") as receiver:
        [message] = receive_exactly(receiver, 1)
        receiver.complete_message(message)
    log("a subscription's dead-letter queue works like a queue's")

    refused(conn, topic)


def refused(conn, topic):
    with client(conn, retry_total=0) as strict:
        try:
            with strict.get_subscription_receiver(topic, "missing") as receiver:
                receiver.receive_messages(max_message_count=1, max_wait_time=2)
            raise ScenarioFailure("receiving from a missing subscription succeeded")
        except ServiceBusError as error:
            log(f"missing subscription refused: {type(error).__name__}")
        try:
            with strict.get_queue_sender(f"{topic}/Subscriptions/all") as sender:
                sender.send_messages(ServiceBusMessage("nope"))
            raise ScenarioFailure("sending to a subscription succeeded")
        except ServiceBusError as error:
            log(f"send to a subscription refused: {type(error).__name__}")
        try:
            with strict.get_queue_receiver(topic) as receiver:
                receiver.receive_messages(max_message_count=1, max_wait_time=2)
            raise ScenarioFailure("receiving from a topic succeeded")
        except ServiceBusError as error:
            log(f"receive from a topic refused: {type(error).__name__}")


def in_seconds(seconds):
    return datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(seconds=seconds)


def schedule(sb, topic):
    with sb.get_topic_sender(topic) as sender:
        [kept] = sender.schedule_messages(order("s-1", "created", amount=200, region="uk"), in_seconds(3))
        [cancelled] = sender.schedule_messages(order("s-2", "created", amount=300, region="eu"), in_seconds(3))
        check(kept != cancelled, f"scheduled messages share sequence number {kept}")
        sender.cancel_scheduled_messages(cancelled)
        timed = order("s-3", "updated", amount=5, region="us")
        timed.scheduled_enqueue_time_utc = in_seconds(3)
        sender.send_messages(timed)
    with sb.get_subscription_receiver(topic, "all") as receiver:
        expect_no_message(receiver, max_wait_time=1)
    log(f"scheduled s-1 (sequence number {kept}), cancelled s-2, sent s-3 with a scheduled time")
    time.sleep(3)
    everything = drain(sb, topic, "all", 2)
    expect_eq(sorted(m for m, _ in everything), ["s-1", "s-3"], "ids in 'all' once due")
    expect_eq([m for m, _ in drain(sb, topic, "big", 1)], ["s-1"], "ids in 'big' once due")
    expect_eq([m for m, _ in drain(sb, topic, "created", 1)], ["s-1"], "ids in 'created' once due")
    expect_eq(sorted(m for m, _ in drain(sb, topic, "tagged", 2)), ["s-1", "s-3"], "ids in 'tagged'")
    with sb.get_queue_receiver("auditq") as receiver:
        got = receive_exactly(receiver, 2)
        for message in got:
            receiver.complete_message(message)
    log("scheduled messages reached the subscriptions when due; the cancelled one did not")


def get(http, path):
    try:
        with urllib.request.urlopen(f"http://{http}{path}", timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"null")


def counts(sb, topic, http):
    with sb.get_topic_sender(topic) as sender:
        sender.send_messages([
            order("c-1", "created", amount=150, region="eu"),
            order("c-2", "updated", amount=5, region="us"),
            order("c-3", "created", amount=1, region="fr"),
        ])
        sender.schedule_messages(order("c-4", "created"), in_seconds(600))
    with sb.get_subscription_receiver(topic, "created") as receiver:
        first = receive_exactly(receiver, 1)[0]
        receiver.dead_letter_message(first, reason="counted")
    status, body = get(http, f"/api/topics/{topic.upper()}")
    expect_eq(status, 200, "GET /api/topics/<name> status (name in another case)")
    expect_eq(body["name"], topic, "topic name")
    expect_eq(body["scheduled_message_count"], 1, "messages scheduled on the topic")
    expect_eq(body["requires_duplicate_detection"], True, "requires_duplicate_detection")
    subscriptions = {s["subscription_name"]: s for s in body["subscriptions"]}
    expect_eq(sorted(subscriptions), ["all", "audit", "big", "created", "ruled", "tagged"], "subscription names")
    expected = {
        # name: (active, dead-letter, rules)
        "all": (3, 0, ["$Default"]),
        "created": (1, 1, ["created-only"]),
        "big": (1, 0, ["big-eu"]),
        "tagged": (3, 0, ["vip", "any-region"]),
        "audit": (0, 0, ["$Default"]),
        "ruled": (3, 0, ["$Default"]),
    }
    for name, (active, dead, rules) in expected.items():
        info = subscriptions[name]
        expect_eq(info["active_message_count"], active, f"active_message_count of '{name}'")
        expect_eq(info["dead_letter_message_count"], dead, f"dead_letter_message_count of '{name}'")
        expect_eq(info["rules"], rules, f"rules of '{name}'")
        expect_eq(info["name"], f"{topic}/Subscriptions/{name}", f"queue path of '{name}'")
    status, listed = get(http, "/api/topics")
    expect_eq((status, [t["name"] for t in listed]), (200, ["events", topic]), "GET /api/topics")
    status, queues = get(http, "/api/queues")
    expect_eq([q["name"] for q in queues], ["auditq", "fragile"], "GET /api/queues leaves subscriptions out")
    expect_eq(queues[0]["active_message_count"], 3, "messages forwarded to auditq")
    status, missing = get(http, "/api/topics/nope")
    expect_eq(status, 404, "GET /api/topics/nope status")
    log("the topic API reported scheduled messages, subscription counts and rules")


def dead_letters(sb, topic):
    with sb.get_topic_sender(topic) as sender:
        sender.send_messages([
            order("e-1", "created", amount=50),
            order("e-2", "created", amount="lots"),
        ])
        in_session = order("e-3", "created", amount=5)
        in_session.session_id = "S1"
        sender.send_messages(in_session)
    with sb.get_queue_sender("fragile") as sender:
        sender.send_messages(order("e-4", "created", amount=100))
    with sb.get_queue_receiver("fragile") as receiver:
        [message] = receive_exactly(receiver, 1)
        receiver.abandon_message(message)  # MaxDeliveryCount 1: dead-lettered, then forwarded

    def ids(name, sub_queue=None, count=0):
        with sb.get_subscription_receiver(topic, name, sub_queue=sub_queue) as receiver:
            got = receive_exactly(receiver, count)
            for message in got:
                receiver.complete_message(message)
            expect_no_message(receiver, max_wait_time=1)
        return got

    dlq = ServiceBusSubQueue.DEAD_LETTER
    expect_eq([m.message_id for m in ids("typed", count=2)], ["e-1", "e-4"], "ids in 'typed'")
    [failed] = ids("typed", dlq, 1)
    expect_eq((failed.message_id, failed.dead_letter_reason), ("e-2", "FilterException"), "dead-lettered by a failing filter")
    check("'big'" in (failed.dead_letter_error_description or ""), f"description names the rule: {failed.dead_letter_error_description!r}")
    expect_eq([m.message_id for m in ids("strict", count=2)], ["e-1", "e-4"], "ids in 'strict'")
    ids("strict", dlq, 0)
    no_session = ids("sessions", dlq, 3)
    expect_eq(sorted(m.message_id for m in no_session), ["e-1", "e-2", "e-4"], "messages without session id dead-lettered")
    expect_eq({m.dead_letter_reason for m in no_session}, {"Session ID is null"}, "their reason")
    with sb.get_subscription_receiver(topic, "sessions", session_id="S1") as receiver:
        [message] = receive_exactly(receiver, 1)
        expect_eq(message.message_id, "e-3", "the session message")
        receiver.complete_message(message)
    log("failing filters dead-lettered or skipped as configured; sessionless copies dead-lettered; DLQ forwarded into the topic")


def send_before_restart(sb, topic):
    with sb.get_topic_sender(topic) as sender:
        sender.send_messages(order("durable-1", "created", amount=100, region="eu"))
        sender.schedule_messages(order("durable-2", "created", amount=100, region="eu"), in_seconds(4))
    log("sent one message to the topic and scheduled one")


def check_after_restart(sb, topic):
    time.sleep(4)  # until the scheduled one is due
    for name in ("all", "big"):
        got = drain(sb, topic, name, 2)
        expect_eq(sorted(m for m, _ in got), ["durable-1", "durable-2"], f"ids in '{name}' after restart")
    # The duplicate-detection window of the topic survived too.
    with sb.get_topic_sender(topic) as sender:
        sender.send_messages(order("durable-1", "created", amount=100, region="eu"))
    with sb.get_subscription_receiver(topic, "all") as receiver:
        expect_no_message(receiver, max_wait_time=2)
    log("subscriptions and the topic's duplicate window survived the restart")


if __name__ == "__main__":
    run_phases(
        {
            "filters": lambda sb, topic, conn, _: filters(sb, topic, conn),
            "schedule": lambda sb, topic, _conn, _: schedule(sb, topic),
            "counts": lambda sb, topic, _conn, rest: counts(sb, topic, rest[0]),
            "deadletters": lambda sb, topic, _conn, _: dead_letters(sb, topic),
            "send": lambda sb, topic, _conn, _: send_before_restart(sb, topic),
            "check": lambda sb, topic, _conn, _: check_after_restart(sb, topic),
        }
    )
