"""Entities made with the Python admin client survive the broker's kill -9, and a status set
through it is what the data plane enforces.

Arguments: CONNECTION_STRING PREFIX PHASE, the admin client reached as admin_client.py says.
Phase `create`: queue PREFIX-kept (max delivery 4, user metadata), topic PREFIX-t with
subscription s and rule only-x, queues PREFIX-disabled, PREFIX-send-disabled and
PREFIX-receive-disabled created Active and then updated to their status, and queue
PREFIX-gone created and deleted. Phase `check` (after a restart): every one is there as it
was left, PREFIX-gone is not, and the rule still routes."""

import sys

from azure.core.exceptions import ResourceNotFoundError
from azure.servicebus import ServiceBusMessage
from azure.servicebus.management import SqlRuleFilter

from admin_client import admin
from sbcommon import ScenarioFailure, client, expect_eq, expect_raises, receive_exactly, run, scenario_args

STATUSES = {"disabled": "Disabled", "send-disabled": "SendDisabled", "receive-disabled": "ReceiveDisabled"}


def create(mgmt, prefix):
    mgmt.create_queue(f"{prefix}-kept", max_delivery_count=4, user_metadata="kept")
    mgmt.create_topic(f"{prefix}-t")
    mgmt.create_subscription(f"{prefix}-t", "s")
    mgmt.delete_rule(f"{prefix}-t", "s", "$Default")
    mgmt.create_rule(f"{prefix}-t", "s", "only-x", filter=SqlRuleFilter("kind = @k", parameters={"@k": "x"}))
    for suffix, status in STATUSES.items():
        queue = mgmt.create_queue(f"{prefix}-{suffix}")
        queue.status = status
        mgmt.update_queue(queue)
    mgmt.create_queue(f"{prefix}-gone")
    mgmt.delete_queue(f"{prefix}-gone")


def check(mgmt, conn, prefix):
    kept = mgmt.get_queue(f"{prefix}-kept")
    expect_eq((kept.max_delivery_count, kept.user_metadata), (4, "kept"), "queue settings after restart")
    for suffix, status in STATUSES.items():
        expect_eq(mgmt.get_queue(f"{prefix}-{suffix}").status, status, f"{suffix} status after restart")
    expect_raises(ResourceNotFoundError, lambda: mgmt.get_queue(f"{prefix}-gone"), "deleted queue")
    expect_eq([r.name for r in mgmt.list_rules(f"{prefix}-t", "s")], ["only-x"], "rules after restart")
    with client(conn) as sb:
        with sb.get_topic_sender(f"{prefix}-t") as sender:
            sender.send_messages([
                ServiceBusMessage("y", application_properties={"kind": "y"}),
                ServiceBusMessage("x", application_properties={"kind": "x"}),
            ])
        with sb.get_subscription_receiver(f"{prefix}-t", "s") as receiver:
            got = receive_exactly(receiver, 1)
            expect_eq(str(got[0]), "x", "the rule kept its parameter")


def main():
    conn, prefix, extras = scenario_args(["phase"])
    mgmt = admin(conn)
    if extras["phase"] == "create":
        create(mgmt, prefix)
    elif extras["phase"] == "check":
        check(mgmt, conn, prefix)
    else:
        raise ScenarioFailure(f"unknown phase {extras['phase']!r}")


if __name__ == "__main__":
    run(main)
