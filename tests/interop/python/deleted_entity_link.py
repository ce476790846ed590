"""Links open on an entity that the admin client deletes: the broker detaches them with
amqp:not-found, so the receiver's next receive raises MessagingEntityNotFoundError. The
sender's next send finds its link gone (the SDK reports that as a retryable connection
error) and its retry's attach is refused with amqp:not-found: MessagingEntityNotFoundError
too. The messages the queue held are gone with it (a queue
created again under the same name is empty). Arguments: CONNECTION_STRING QUEUE, the admin
client reached as admin_client.py says."""

from azure.servicebus import ServiceBusMessage
from azure.servicebus.exceptions import MessagingEntityNotFoundError

from admin_client import admin
from sbcommon import client, expect_eq, expect_raises, log, run, scenario_args


def main():
    conn, queue, _ = scenario_args()
    mgmt = admin(conn)
    mgmt.create_queue(queue)
    # One retry, for the sender's reattach after its link was detached.
    with client(conn, retry_total=1, retry_backoff_factor=0.1) as sb:
        sender = sb.get_queue_sender(queue)
        receiver = sb.get_queue_receiver(queue, max_wait_time=5)
        with sender, receiver:
            sender.send_messages([ServiceBusMessage("first"), ServiceBusMessage("left behind")])
            got = receiver.receive_messages(max_message_count=1, max_wait_time=5)
            expect_eq([str(m) for m in got], ["first"], "received before the delete")
            receiver.complete_message(got[0])

            mgmt.delete_queue(queue)
            log("queue deleted with the receiver and the sender attached")
            expect_raises(
                MessagingEntityNotFoundError,
                lambda: receiver.receive_messages(max_message_count=1, max_wait_time=5),
                "receive after the delete",
            )
            expect_raises(
                MessagingEntityNotFoundError,
                lambda: sender.send_messages(ServiceBusMessage("too late")),
                "send after the delete",
            )

    mgmt.create_queue(queue)
    counts = mgmt.get_queue_runtime_properties(queue)
    expect_eq(counts.total_message_count, 0, "messages of the queue created again")


if __name__ == "__main__":
    run(main)
