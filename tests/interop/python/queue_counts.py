"""Exact queue counts over the HTTP API (and GET /metrics), after the SDK put messages in every state.

Arguments: CONNECTION_STRING QUEUE HTTP_ADDR (host:port of the broker's HTTP listener).
Three messages are sent; one is dead-lettered, one deferred and one left active, and a fourth is
scheduled an hour ahead. GET /api/queues/<queue> (and the same name in upper case, since lookup
is case-insensitive) must then report exactly active 1, dead-letter 1, deferred 1, scheduled 1,
locked 0, transfer 0 and total 4; GET /api/queues lists every queue sorted by name with the
same numbers for this one. While a receiver holds the active message, locked is 1 and active
still 1; after it is abandoned, locked is 0 again. GET /api/queues/nope answers 404 with a JSON
error. The messages are left in place for the caller to check the `busbar queues` command."""

import datetime
import json
import urllib.error
import urllib.request

from azure.servicebus import ServiceBusMessage

from sbcommon import (
    ScenarioFailure,
    check,
    client,
    expect_eq,
    log,
    prometheus_samples,
    receive_exactly,
    run,
    scenario_args,
)

EXPECTED = {
    "active_message_count": 1,
    "scheduled_message_count": 1,
    "deferred_message_count": 1,
    "locked_message_count": 0,
    "dead_letter_message_count": 1,
    "transfer_message_count": 0,
    "transfer_dead_letter_message_count": 0,
    "total_message_count": 4,
}


def get(http, path):
    """(status, parsed JSON body) of GET http://<http><path>."""
    try:
        with urllib.request.urlopen(f"http://{http}{path}", timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def metrics_of(http):
    """The samples of GET /metrics as {'name{labels}': value}."""
    with urllib.request.urlopen(f"http://{http}/metrics", timeout=10) as response:
        check(response.headers.get("Content-Type", "").startswith("text/plain"), "metrics content type")
        return prometheus_samples(response.read().decode())


def counts_of(info):
    return {key: info.get(key) for key in EXPECTED}


def expect_counts(info, expected, what):
    expect_eq(counts_of(info), expected, what)


def main():
    conn, queue, extras = scenario_args(("HTTP_ADDR",))
    http = extras["HTTP_ADDR"]
    with client(conn, retry_total=0) as sb:
        with sb.get_queue_sender(queue) as sender:
            sender.send_messages([ServiceBusMessage(f"body {n}", message_id=f"count-{n}") for n in (1, 2, 3)])
            later = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(hours=1)
            sender.schedule_messages(ServiceBusMessage("far future", message_id="count-scheduled"), later)
        with sb.get_queue_receiver(queue) as receiver:
            first, second, third = receive_exactly(receiver, 3)
            receiver.dead_letter_message(first, reason="counted", error_description="for the counts")
            receiver.defer_message(second)
            receiver.abandon_message(third)

        status, info = get(http, f"/api/queues/{queue}")
        log(f"GET /api/queues/{queue}: {status} {info}")
        expect_eq(status, 200, f"status of GET /api/queues/{queue}")
        expect_eq(info.get("name"), queue, "name")
        expect_counts(info, EXPECTED, f"counts from /api/queues/{queue}")

        status, upper = get(http, f"/api/queues/{queue.upper()}")
        expect_eq(status, 200, f"status of GET /api/queues/{queue.upper()}")
        expect_eq(upper.get("name"), queue, "name looked up in upper case")

        status, listing = get(http, "/api/queues")
        log(f"GET /api/queues: {status} {[(q.get('name'), q.get('total_message_count')) for q in listing]}")
        expect_eq(status, 200, "status of GET /api/queues")
        check(isinstance(listing, list), f"/api/queues should be a JSON array, got {listing!r}")
        names = [q.get("name") for q in listing]
        expect_eq(names, sorted(names), "/api/queues order")
        mine = [q for q in listing if q.get("name") == queue]
        expect_eq(len(mine), 1, f"entries named {queue} in /api/queues")
        expect_counts(mine[0], EXPECTED, f"counts of {queue} in /api/queues")
        for other in listing:
            if other.get("name") != queue:
                expect_eq(other.get("total_message_count"), 0, f"total_message_count of untouched queue {other.get('name')}")

        with sb.get_queue_receiver(queue) as receiver:
            [held] = receive_exactly(receiver, 1)
            expect_eq(held.message_id, "count-3", "the active message")
            _, info = get(http, f"/api/queues/{queue}")
            expect_counts(info, {**EXPECTED, "locked_message_count": 1}, "counts while the active message is locked")
            receiver.abandon_message(held)
            _, info = get(http, f"/api/queues/{queue}")
            expect_counts(info, EXPECTED, "counts after abandoning the locked message")

    metrics = metrics_of(http)
    for state, value in (("active", 1), ("scheduled", 1), ("deferred", 1), ("dead_letter", 1)):
        key = f'busbar_entity_{state}_messages{{entity="{queue}"}}'
        expect_eq(metrics.get(key), value, key)
    # Three sends and one scheduled message stored; three deliveries, then count-3 again.
    expect_eq(metrics.get(f'busbar_entity_incoming_messages_total{{entity="{queue}"}}'), 4, "incoming messages")
    expect_eq(metrics.get(f'busbar_entity_outgoing_messages_total{{entity="{queue}"}}'), 4, "outgoing messages")
    log("GET /metrics agrees with the API")

    status, missing = get(http, "/api/queues/nope")
    log(f"GET /api/queues/nope: {status} {missing}")
    expect_eq(status, 404, "status of GET /api/queues/nope")
    if not isinstance(missing, dict) or "nope" not in str(missing.get("error", "")):
        raise ScenarioFailure(f"404 body should be a JSON error naming the queue, got {missing!r}")


if __name__ == "__main__":
    run(main)
