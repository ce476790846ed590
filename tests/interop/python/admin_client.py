"""The Python SDK's ServiceBusAdministrationClient against Busbar, following the test plan of
the reference's servicebus-admin-api.md §7: every operation on queues, topics, subscriptions
and rules, runtime counts made by the data-plane client, paging, and the errors the SDK maps
to its exceptions.

Arguments: CONNECTION_STRING PREFIX. The one connection string serves both clients: plain
AMQP for ServiceBusClient and HTTPS on the same port for the admin client, which trusts the
CA file named by BUSBAR_ADMIN_CA. Entities are named
PREFIX-<role>, so the scenario can run on a broker that has others. With ASYNC=1 in the
environment, the core subset runs with azure.servicebus.aio.management instead."""

import asyncio
import base64
import datetime
import hashlib
import hmac
import os
import time
import urllib.parse

from azure.core.exceptions import (
    ClientAuthenticationError,
    HttpResponseError,
    ResourceExistsError,
    ResourceNotFoundError,
)
from azure.servicebus import ServiceBusMessage, ServiceBusSubQueue
from azure.servicebus.management import (
    CorrelationRuleFilter,
    FalseRuleFilter,
    ServiceBusAdministrationClient,
    SqlRuleAction,
    SqlRuleFilter,
    TrueRuleFilter,
)

from sbcommon import check, client, expect_eq, expect_raises, log, receive_exactly, run, scenario_args

INFINITE = datetime.timedelta(days=10675199)


def admin_kwargs():
    return {"connection_verify": os.environ["BUSBAR_ADMIN_CA"]}


def admin(conn):
    return ServiceBusAdministrationClient.from_connection_string(conn, **admin_kwargs())


def host_of(conn):
    """The host:port the admin client addresses (forward targets come back as URLs on it)."""
    endpoint = next(p for p in conn.split(";") if p.lower().startswith("endpoint="))
    return endpoint.split("://", 1)[1].rstrip("/")


def namespace_and_auth(mgmt, conn, prefix):
    props = mgmt.get_namespace_properties()
    expect_eq(props.messaging_sku, "Standard", "messaging_sku")
    expect_eq(props.namespace_type, "Messaging", "namespace_type")
    check(props.name, "namespace name from the entry title")
    check(
        props.created_at_utc.year >= 2024,
        f"namespace created when the broker first opened its data, not {props.created_at_utc}",
    )
    wrong = conn.replace("SharedAccessKey=", "SharedAccessKey=wrong-")
    bad = ServiceBusAdministrationClient.from_connection_string(wrong, **admin_kwargs())
    expect_raises(ClientAuthenticationError, lambda: list(bad.list_queues()), "list_queues with a wrong key")
    expect_raises(ClientAuthenticationError, lambda: bad.get_queue(f"{prefix}-x"), "get_queue with a wrong key")
    # A connection string holding a SAS token: the client sends it as `Bearer SharedAccessSignature ...`.
    with_token = ServiceBusAdministrationClient.from_connection_string(sas_token_connection(conn), **admin_kwargs())
    check(isinstance(list(with_token.list_queues()), list), "list_queues with a SAS-token connection string")


def sas_token_connection(conn):
    """`conn` with its key replaced by a token for the namespace signed with it."""
    parts = dict(p.split("=", 1) for p in conn.split(";") if "=" in p)
    resource = urllib.parse.quote_plus("https://" + host_of(conn))
    expiry = str(int(time.time()) + 600)
    digest = hmac.new(parts["SharedAccessKey"].encode(), f"{resource}\n{expiry}".encode(), hashlib.sha256).digest()
    signature = urllib.parse.quote_plus(base64.b64encode(digest).decode())
    token = f"SharedAccessSignature sr={resource}&sig={signature}&se={expiry}&skn={parts['SharedAccessKeyName']}"
    return f"Endpoint={parts['Endpoint']};SharedAccessSignature={token}"


def queues(mgmt, sb, conn, prefix):
    q1, q2, q3 = f"{prefix}-q1", f"{prefix}-q2", f"{prefix}-q3"
    created = mgmt.create_queue(q1)
    expect_eq(created.lock_duration, datetime.timedelta(seconds=60), "default lock_duration")
    expect_eq(created.max_delivery_count, 10, "default max_delivery_count")
    expect_eq(created.max_size_in_megabytes, 1024, "default max_size_in_megabytes")
    check(created.default_message_time_to_live >= INFINITE, "default TTL is infinite")
    check(created.auto_delete_on_idle >= INFINITE, "default auto_delete_on_idle is infinite")
    expect_eq(created.duplicate_detection_history_time_window, datetime.timedelta(minutes=10), "default window")
    expect_eq(created.enable_batched_operations, True, "default batched")
    expect_eq(created.status, "Active", "default status")
    expect_eq(created.availability_status, "Available", "availability")
    expect_eq(created.max_message_size_in_kilobytes, 256, "default max message size")

    full = mgmt.create_queue(
        q2,
        lock_duration=datetime.timedelta(seconds=45),
        max_size_in_megabytes=2048,
        requires_duplicate_detection=True,
        requires_session=True,
        default_message_time_to_live=datetime.timedelta(days=1),
        dead_lettering_on_message_expiration=True,
        duplicate_detection_history_time_window="PT5M",
        max_delivery_count=7,
        enable_batched_operations=False,
        auto_delete_on_idle=datetime.timedelta(hours=2),
        forward_to=q1,
        forward_dead_lettered_messages_to=q1,
        user_metadata="meta &<>",
        max_message_size_in_kilobytes=1024,
    )
    got = mgmt.get_queue(q2)
    for props in (full, got):
        expect_eq(props.lock_duration, datetime.timedelta(seconds=45), "lock_duration")
        expect_eq(props.max_size_in_megabytes, 2048, "max_size_in_megabytes")
        expect_eq(props.requires_duplicate_detection, True, "requires_duplicate_detection")
        expect_eq(props.requires_session, True, "requires_session")
        expect_eq(props.default_message_time_to_live, datetime.timedelta(days=1), "TTL")
        expect_eq(props.dead_lettering_on_message_expiration, True, "dead-lettering on expiration")
        expect_eq(props.duplicate_detection_history_time_window, datetime.timedelta(minutes=5), "window")
        expect_eq(props.max_delivery_count, 7, "max_delivery_count")
        expect_eq(props.enable_batched_operations, False, "batched")
        expect_eq(props.auto_delete_on_idle, datetime.timedelta(hours=2), "auto_delete_on_idle")
        expect_eq(props.forward_to, f"sb://{host_of(conn)}/{q1}", "forward_to")
        expect_eq(props.forward_dead_lettered_messages_to, f"sb://{host_of(conn)}/{q1}", "forward DLQ to")
        expect_eq(props.user_metadata, "meta &<>", "user_metadata")
        expect_eq(props.max_message_size_in_kilobytes, 1024, "max message size")
    expect_raises(ResourceExistsError, lambda: mgmt.create_queue(q1), "create_queue twice")
    dict(mgmt.get_queue(q1))
    expect_raises(ResourceNotFoundError, lambda: mgmt.get_queue(f"{prefix}-missing"), "get_queue missing")
    expect_raises(
        ResourceNotFoundError,
        lambda: mgmt.get_queue_runtime_properties(f"{prefix}-missing"),
        "get_queue_runtime_properties missing",
    )

    # Counts made through the data plane: 3 active, 1 scheduled, 2 dead-lettered.
    with sb.get_queue_sender(q1) as sender:
        sender.send_messages([ServiceBusMessage(f"m{i}") for i in range(5)])
        sender.schedule_messages(
            ServiceBusMessage("later"),
            datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(hours=1),
        )
    with sb.get_queue_receiver(q1) as receiver:
        for message in receive_exactly(receiver, 2):
            receiver.dead_letter_message(message, reason="test")
    runtime = mgmt.get_queue_runtime_properties(q1)
    expect_eq(
        (
            runtime.active_message_count,
            runtime.scheduled_message_count,
            runtime.dead_letter_message_count,
            runtime.transfer_message_count,
            runtime.transfer_dead_letter_message_count,
            runtime.total_message_count,
        ),
        (3, 1, 2, 0, 0, 6),
        "queue counts (active, scheduled, dead-letter, transfer, transfer DL, total)",
    )
    check(runtime.size_in_bytes > 0, f"size_in_bytes {runtime.size_in_bytes}")
    check(runtime.created_at_utc <= runtime.updated_at_utc, "created <= updated")
    check(runtime.accessed_at_utc.year > 2000, f"accessed_at_utc after a receive: {runtime.accessed_at_utc}")

    mgmt.create_queue(q3)
    names = [q.name for q in mgmt.list_queues()]
    check({q1, q2, q3} <= set(names), f"list_queues: {names}")
    paged = [q.name for q in mgmt.list_queues(max_page_size=1)]
    expect_eq(paged, names, "list_queues one per page")
    later = [q.name for q in mgmt.list_queues(start_index=1, max_page_size=1)]
    expect_eq(later, names[1:], "list_queues from index 1")
    listed = {q.name: q for q in mgmt.list_queues_runtime_properties()}
    expect_eq(listed[q1].dead_letter_message_count, 2, "listed dead-letter count")
    expect_eq(listed[q1].scheduled_message_count, 1, "listed scheduled count")

    props = mgmt.get_queue(q1)
    props.max_delivery_count = 5
    mgmt.update_queue(props)
    mgmt.update_queue(dict(mgmt.get_queue(q1)), lock_duration="PT2M")
    again = mgmt.get_queue(q1)
    expect_eq((again.max_delivery_count, again.lock_duration), (5, datetime.timedelta(minutes=2)), "updated")
    again.requires_session = True
    expect_raises(HttpResponseError, lambda: mgmt.update_queue(again), "changing requires_session")
    ghost = mgmt.get_queue(q3)
    ghost.name = f"{prefix}-ghost"
    expect_raises(ResourceNotFoundError, lambda: mgmt.update_queue(ghost), "update of a missing queue")
    too_long = mgmt.get_queue(q3)
    too_long.lock_duration = datetime.timedelta(minutes=6)
    expect_raises(HttpResponseError, lambda: mgmt.update_queue(too_long), "lock over 5 minutes")

    mgmt.delete_queue(q2)
    expect_raises(ResourceNotFoundError, lambda: mgmt.delete_queue(q2), "delete_queue twice")
    for odd in (f"{prefix}/nested/q", f"{prefix}-a.b-c_d"):
        mgmt.create_queue(odd)
        expect_eq(mgmt.get_queue(odd).name, odd, f"get {odd}")
        check(odd in [q.name for q in mgmt.list_queues()], f"{odd} listed")
        mgmt.delete_queue(odd)
    for bad in (f"{prefix}@x", f"/{prefix}", "x" * 261):
        expect_raises(HttpResponseError, lambda: mgmt.create_queue(bad), f"invalid name {bad[:20]}")
    return q1


def topics(mgmt, sb, prefix, q1):
    t1 = f"{prefix}-t1"
    mgmt.create_topic(
        t1,
        max_size_in_megabytes=2048,
        default_message_time_to_live="PT1H",
        requires_duplicate_detection=True,
        support_ordering=True,
        user_metadata="tm",
    )
    got = mgmt.get_topic(t1)
    expect_eq(
        (got.max_size_in_megabytes, got.default_message_time_to_live, got.requires_duplicate_detection, got.user_metadata),
        (2048, datetime.timedelta(hours=1), True, "tm"),
        "topic settings",
    )
    expect_raises(ResourceExistsError, lambda: mgmt.create_queue(t1), "a queue named like a topic")
    expect_raises(ResourceNotFoundError, lambda: mgmt.get_topic(f"{prefix}-missing"), "get_topic missing")
    check(t1 in [t.name for t in mgmt.list_topics()], "list_topics")
    got.user_metadata = "changed"
    mgmt.update_topic(got)
    expect_eq(mgmt.get_topic(t1).user_metadata, "changed", "updated topic metadata")

    s1, s2 = "s1", "s2"
    sub = mgmt.create_subscription(
        t1,
        s1,
        lock_duration="PT30S",
        max_delivery_count=3,
        dead_lettering_on_filter_evaluation_exceptions=False,
        forward_dead_lettered_messages_to=q1,
        user_metadata="sm",
        auto_delete_on_idle="PT1H",
    )
    expect_eq(
        (sub.lock_duration, sub.max_delivery_count, sub.dead_lettering_on_filter_evaluation_exceptions, sub.user_metadata),
        (datetime.timedelta(seconds=30), 3, False, "sm"),
        "subscription settings",
    )
    default = mgmt.create_subscription(t1, s2)
    expect_eq(default.dead_lettering_on_filter_evaluation_exceptions, True, "default filter-exception dead-lettering")
    expect_raises(ResourceExistsError, lambda: mgmt.create_subscription(t1, s2), "subscription twice")
    expect_raises(
        ResourceNotFoundError, lambda: mgmt.create_subscription(f"{prefix}-nope", "s"), "subscription of a missing topic"
    )
    expect_eq(mgmt.get_topic_runtime_properties(t1).subscription_count, 2, "subscription_count")

    with sb.get_topic_sender(t1) as sender:
        sender.send_messages([ServiceBusMessage("a", message_id="a"), ServiceBusMessage("b", message_id="b")])
    with sb.get_subscription_receiver(t1, s2) as receiver:
        receiver.dead_letter_message(receive_exactly(receiver, 1)[0], reason="test")
    runtime = mgmt.get_subscription_runtime_properties(t1, s2)
    expect_eq(
        (runtime.active_message_count, runtime.dead_letter_message_count, runtime.total_message_count),
        (1, 1, 2),
        "subscription counts (active, dead-letter, total)",
    )
    expect_eq([s.name for s in mgmt.list_subscriptions(t1, max_page_size=1)], [s1, s2], "list_subscriptions paged")
    listed = {s.name: s for s in mgmt.list_subscriptions_runtime_properties(t1)}
    expect_eq(listed[s2].active_message_count, 1, "listed subscription count")
    props = mgmt.get_subscription(t1, s1)
    props.max_delivery_count = 9
    mgmt.update_subscription(t1, props)
    expect_eq(mgmt.get_subscription(t1, s1).max_delivery_count, 9, "updated max_delivery_count")
    expect_raises(ResourceNotFoundError, lambda: mgmt.get_subscription(t1, "missing"), "get_subscription missing")
    return t1, s1, s2


def rules(mgmt, sb, t1, s1, s2):
    defaults = list(mgmt.list_rules(t1, s2))
    expect_eq([r.name for r in defaults], ["$Default"], "a new subscription's rules")
    check(isinstance(defaults[0].filter, TrueRuleFilter), f"$Default filter {defaults[0].filter}")
    expect_eq(defaults[0].filter.sql_expression, "1=1", "$Default expression")
    expect_eq(defaults[0].action, None, "$Default action")

    mgmt.create_rule(
        t1, s1, "r_sql",
        filter=SqlRuleFilter("color = @c AND n > @n", parameters={"@c": "red", "@n": 2}),
        action=SqlRuleAction("SET x = @v", parameters={"@v": 1.5}),
    )
    # Parameters are kept written into their expressions.
    got = mgmt.get_rule(t1, s1, "r_sql")
    expect_eq(got.filter.sql_expression, "color = 'red' AND n > 2", "sql filter with its parameters")
    expect_eq(got.action.sql_expression, "SET x = 1.5", "sql action with its parameters")

    properties = {"s": "v", "i": 7, "big": 2**40, "b": True, "f": 1.25}
    mgmt.create_rule(
        t1, s1, "r_corr",
        filter=CorrelationRuleFilter(
            correlation_id="cid", message_id="mid", to="to", reply_to="rt", label="lbl",
            session_id="sid", reply_to_session_id="rsid", content_type="ct", properties=properties,
        ),
    )
    corr = mgmt.get_rule(t1, s1, "r_corr").filter
    expect_eq(
        (corr.correlation_id, corr.message_id, corr.to, corr.reply_to, corr.label, corr.session_id, corr.reply_to_session_id, corr.content_type),
        ("cid", "mid", "to", "rt", "lbl", "sid", "rsid", "ct"),
        "correlation fields",
    )
    expect_eq(dict(corr.properties), properties, "correlation properties with their types")
    mgmt.create_rule(t1, s1, "r_true", filter=TrueRuleFilter())
    mgmt.create_rule(t1, s1, "r_false", filter=FalseRuleFilter())
    mgmt.create_rule(t1, s1, "r_def")
    for name, kind in (("r_true", TrueRuleFilter), ("r_false", FalseRuleFilter), ("r_def", TrueRuleFilter)):
        check(isinstance(mgmt.get_rule(t1, s1, name).filter, kind), f"{name} is a {kind.__name__}")
    expect_raises(ResourceExistsError, lambda: mgmt.create_rule(t1, s1, "r_true"), "rule twice")
    expect_raises(ResourceNotFoundError, lambda: mgmt.get_rule(t1, s1, "missing"), "get_rule missing")
    rule = mgmt.get_rule(t1, s1, "r_sql")
    rule.filter = SqlRuleFilter("a = 1")
    mgmt.update_rule(t1, s1, rule)
    expect_eq(mgmt.get_rule(t1, s1, "r_sql").filter.sql_expression, "a = 1", "updated rule")
    names = [r.name for r in mgmt.list_rules(t1, s1)]
    expect_eq(sorted(names), sorted(["$Default", "r_sql", "r_corr", "r_true", "r_false", "r_def"]), "list_rules")
    expect_eq([r.name for r in mgmt.list_rules(t1, s1, max_page_size=2)], names, "list_rules paged")
    mgmt.delete_rule(t1, s1, "r_sql")
    expect_raises(ResourceNotFoundError, lambda: mgmt.delete_rule(t1, s1, "r_sql"), "delete_rule twice")

    # The rules route: s2 keeps only what matches `sys.label = @subject` with @subject 'x'.
    mgmt.delete_rule(t1, s2, "$Default")
    mgmt.create_rule(
        t1, s2, "only-x", filter=SqlRuleFilter("sys.label = @subject", parameters={"@subject": "x"})
    )
    with sb.get_topic_sender(t1) as sender:
        sender.send_messages([ServiceBusMessage("x", subject="x"), ServiceBusMessage("y", subject="y")])
    runtime = mgmt.get_subscription_runtime_properties(t1, s2)
    expect_eq(runtime.active_message_count, 2, "s2 took only the x message (1 before, 1 now)")


def cascade(mgmt, prefix, t1, s1):
    mgmt.delete_subscription(t1, s1)
    expect_raises(ResourceNotFoundError, lambda: mgmt.delete_subscription(t1, s1), "delete_subscription twice")
    mgmt.delete_topic(t1)
    expect_raises(ResourceNotFoundError, lambda: mgmt.delete_topic(t1), "delete_topic twice")
    for q in [q.name for q in mgmt.list_queues() if q.name.startswith(prefix)]:
        mgmt.delete_queue(q)
    expect_eq([q.name for q in mgmt.list_queues() if q.name.startswith(prefix)], [], "no queues left")
    expect_eq([t.name for t in mgmt.list_topics() if t.name.startswith(prefix)], [], "no topics left")


async def async_subset(conn, prefix):
    from azure.servicebus.aio.management import ServiceBusAdministrationClient as AsyncAdmin

    async with AsyncAdmin.from_connection_string(conn, **admin_kwargs()) as mgmt:
        name = f"{prefix}-aq"
        await mgmt.create_queue(name, max_delivery_count=4)
        expect_eq((await mgmt.get_queue(name)).max_delivery_count, 4, "async get_queue")
        expect_eq((await mgmt.get_queue_runtime_properties(name)).total_message_count, 0, "async counts")
        check(name in [q.name async for q in mgmt.list_queues(max_page_size=1)], "async list_queues")
        try:
            await mgmt.create_queue(name)
            raise AssertionError("async create twice succeeded")
        except ResourceExistsError:
            log("async create twice: ResourceExistsError as expected")
        await mgmt.delete_queue(name)
        try:
            await mgmt.get_queue(name)
            raise AssertionError("async get after delete succeeded")
        except ResourceNotFoundError:
            log("async get after delete: ResourceNotFoundError as expected")


def main():
    conn, prefix, _ = scenario_args()
    if os.environ.get("ASYNC") == "1":
        asyncio.run(async_subset(conn, prefix))
        return
    mgmt = admin(conn)
    with client(conn) as sb:
        namespace_and_auth(mgmt, conn, prefix)
        q1 = queues(mgmt, sb, conn, prefix)
        t1, s1, s2 = topics(mgmt, sb, prefix, q1)
        rules(mgmt, sb, t1, s1, s2)
        cascade(mgmt, prefix, t1, s1)


if __name__ == "__main__":
    run(main)
