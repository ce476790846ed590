"""GET /metrics around known traffic from the SDK: every counter moves by exactly what was done.

Arguments: CONNECTION_STRING QUEUE HTTP_ADDR TOKEN WRONG_TOKEN TOPIC SUBSCRIPTION. The broker
allows two AMQP connections (--max-connections 2); TOKEN is a SAS token for the namespace, sent
in the Authorization header of every HTTP request; WRONG_TOKEN is one signed with another key.
QUEUE, TOPIC and its SUBSCRIPTION start empty. Without a token, or with the wrong one,
/metrics answers 401.

Each SDK sender or receiver is one AMQP connection. Five messages of 300..700 body bytes are
sent: incoming counts five, and their bytes are what the queue reports it stores
(SizeInBytes from the administration API). One scheduled message counts as incoming and as
scheduled. The five are received (outgoing five, the same bytes), three completed, one
dead-lettered and one abandoned. Two messages to the topic count for the topic and its
subscription. A third connection while two are open is refused: throttled, and neither
opened nor closed. The store's own figures (syncs, commits, bytes) only grow, and the five
bodies are held in memory (resident body bytes)."""

import datetime
import re
import urllib.error
import urllib.request

from azure.servicebus import ServiceBusMessage
from azure.servicebus.exceptions import ServiceBusError

from sbcommon import check, client, expect_eq, log, prometheus_samples, receive_exactly, run, scenario_args

BODY_SIZES = (300, 400, 500, 600, 700)


def http_get(http, token, path):
    headers = {} if token is None else {"Authorization": token}
    request = urllib.request.Request(f"http://{http}{path}", headers=headers)
    with urllib.request.urlopen(request, timeout=10) as response:
        return response.headers.get("Content-Type", ""), response.read().decode()


def expect_unauthorized(http, token, what):
    try:
        http_get(http, token, "/metrics")
    except urllib.error.HTTPError as error:
        expect_eq(error.code, 401, f"status of GET /metrics {what}")
        expect_eq(error.headers.get("WWW-Authenticate"), "SharedAccessSignature", f"challenge {what}")
        return
    check(False, f"GET /metrics {what} answered")


def scrape(http, token):
    """The samples of GET /metrics as {'name{labels}': value}."""
    content_type, text = http_get(http, token, "/metrics")
    check(content_type.startswith("text/plain; version=0.0.4"), f"metrics content type {content_type!r}")
    return prometheus_samples(text)


def size_in_bytes(http, token, queue):
    """What the administration API says the queue stores (SizeInBytes)."""
    _, text = http_get(http, token, f"/{queue}?api-version=2021-05")
    found = re.search(r"<SizeInBytes>(\d+)</SizeInBytes>", text)
    check(found is not None, f"no SizeInBytes in {text!r}")
    return int(found.group(1))


class Watch:
    """Scrapes before and after a step and checks the named samples moved by exactly so much."""

    def __init__(self, http, token):
        self.http = http
        self.token = token
        self.last = scrape(http, token)

    def expect(self, step, deltas):
        now = scrape(self.http, self.token)
        for key, delta in deltas.items():
            expect_eq(now.get(key, 0) - self.last.get(key, 0), delta, f"{step}: change of {key}")
        log(f"{step}: {deltas}")
        before, self.last = self.last, now
        return before, now


def entity(name, metric):
    return f'busbar_entity_{metric}{{entity="{name}"}}'


def main():
    conn, queue, extras = scenario_args(("HTTP_ADDR", "TOKEN", "WRONG_TOKEN", "TOPIC", "SUBSCRIPTION"))
    http, token = extras["HTTP_ADDR"], extras["TOKEN"]
    expect_unauthorized(http, None, "without a token")
    expect_unauthorized(http, extras["WRONG_TOKEN"], "with a token signed by another key")
    topic = extras["TOPIC"]
    subscription = f"{topic}/Subscriptions/{extras['SUBSCRIPTION']}"
    q = lambda metric: entity(queue, metric)  # noqa: E731 - a short alias keeps the tables readable
    watch = Watch(http, token)
    start = watch.last

    with client(conn, retry_total=0) as sb:
        with sb.get_queue_sender(queue) as sender:
            sender.send_messages(
                [ServiceBusMessage(b"x" * size, message_id=f"m-{size}") for size in BODY_SIZES]
            )
            # The sender's connection is open now, and counted.
            watch.expect("send", {
                q("incoming_messages_total"): 5,
                q("active_messages"): 5,
                "busbar_connections_opened_total": 1,
                "busbar_active_connections": 1,
                "busbar_connections_closed_total": 0,
            })
        _, after_send = watch.expect("sender closed", {
            "busbar_connections_closed_total": 1,
            "busbar_active_connections": -1,
        })
        stored = size_in_bytes(http, token, queue)
        check(stored > sum(BODY_SIZES), f"SizeInBytes {stored} holds the bodies and their headers")
        sent_bytes = after_send[q("incoming_bytes_total")] - start.get(q("incoming_bytes_total"), 0)
        expect_eq(sent_bytes, stored, "incoming bytes of the five messages: what the queue stores")
        # The same headers on every message: the bodies account for the differences.
        expect_eq((sent_bytes - sum(BODY_SIZES)) % len(BODY_SIZES), 0, "the same overhead on each message")
        check(after_send["busbar_store_fsyncs_total"] > start["busbar_store_fsyncs_total"], "fsyncs grew")
        check(
            after_send["busbar_store_commit_latency_seconds_count"] > start["busbar_store_commit_latency_seconds_count"],
            "commits were timed",
        )
        check(after_send["busbar_store_bytes"] > start["busbar_store_bytes"], "the log grew")
        # Small messages keep their bodies in memory, so delivering them reads nothing back.
        expect_eq(
            after_send["busbar_resident_body_bytes"] - start["busbar_resident_body_bytes"],
            stored,
            "resident body bytes",
        )

        with sb.get_queue_sender(queue) as sender:
            later = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(hours=1)
            sender.schedule_messages(ServiceBusMessage(b"later", message_id="m-later"), later)
        watch.expect("schedule", {
            q("incoming_messages_total"): 1,
            q("scheduled_messages"): 1,
            q("active_messages"): 0,
            "busbar_connections_opened_total": 1,
            "busbar_connections_closed_total": 1,
        })

        with sb.get_queue_receiver(queue) as receiver:
            received = receive_exactly(receiver, len(BODY_SIZES))
            watch.expect("receive", {
                q("outgoing_messages_total"): 5,
                q("outgoing_bytes_total"): sent_bytes,
                q("active_messages"): 0,
            })
            by_id = {message.message_id: message for message in received}
            for size in BODY_SIZES[:3]:
                receiver.complete_message(by_id[f"m-{size}"])
            receiver.dead_letter_message(by_id["m-600"], reason="counted", error_description="for the metrics")
            receiver.abandon_message(by_id["m-700"])
            watch.expect("settle", {
                q("completed_messages_total"): 3,
                q("dead_lettered_messages_total"): 1,
                q("abandoned_messages_total"): 1,
                q("dead_letter_messages"): 1,
                # Active counts locked messages: five, of which the abandoned one stays.
                q("active_messages"): -4,
                q("outgoing_messages_total"): 0,
            })

            # Two connections are open (this receiver and the next sender): a third is refused.
            with sb.get_topic_sender(topic) as topic_sender:
                topic_sender.send_messages([ServiceBusMessage(b"t" * 50), ServiceBusMessage(b"t" * 60)])
                watch.expect("topic send", {
                    entity(topic, "incoming_messages_total"): 2,
                    entity(subscription, "incoming_messages_total"): 2,
                    entity(subscription, "active_messages"): 2,
                    "busbar_active_connections": 1,
                })
                topic_bytes = watch.last[entity(topic, "incoming_bytes_total")]
                expect_eq(watch.last[entity(subscription, "incoming_bytes_total")], topic_bytes, "the subscription's copies")
                with client(conn, retry_total=0) as refused:
                    try:
                        with refused.get_queue_sender(queue) as third:
                            third.send_messages(ServiceBusMessage(b"refused"))
                    except ServiceBusError as error:
                        log(f"third connection refused as expected: {type(error).__name__}: {error}")
                    else:
                        check(False, "a third connection was let in past --max-connections 2")
                watch.expect("refused connection", {
                    "busbar_throttled_requests_total": 1,
                    "busbar_connections_opened_total": 0,
                    "busbar_connections_closed_total": 0,
                    "busbar_server_errors_total": 0,
                    q("incoming_messages_total"): 0,
                })

    final = scrape(http, token)
    expect_eq(final["busbar_active_connections"], 0, "connections open at the end")
    expect_eq(
        final["busbar_connections_opened_total"] - start["busbar_connections_opened_total"],
        final["busbar_connections_closed_total"] - start["busbar_connections_closed_total"],
        "every connection opened was closed",
    )


if __name__ == "__main__":
    run(main)
