"""Duplicate detection across a restart. Arguments: connection string, queue, phase.

send:  sends message id "keep-1" and completes it.
check: (after the broker restarted) sends "keep-1" again and a new "keep-2"; only keep-2
       may arrive.
"""

from azure.servicebus import ServiceBusMessage

from sbcommon import client, expect_eq, expect_no_message, log, receive_exactly, run, scenario_args


def main():
    conn, queue, extras = scenario_args(("phase",))
    with client(conn) as sb:
        if extras["phase"] == "send":
            with sb.get_queue_sender(queue) as sender:
                sender.send_messages(ServiceBusMessage("original", message_id="keep-1"))
            with sb.get_queue_receiver(queue) as receiver:
                [message] = receive_exactly(receiver, 1)
                receiver.complete_message(message)
            log("sent and completed keep-1")
        else:
            with sb.get_queue_sender(queue) as sender:
                sender.send_messages(ServiceBusMessage("repeat", message_id="keep-1"))
                sender.send_messages(ServiceBusMessage("new", message_id="keep-2"))
            with sb.get_queue_receiver(queue) as receiver:
                [message] = receive_exactly(receiver, 1)
                expect_eq(message.message_id, "keep-2", "only the new id arrives")
                receiver.complete_message(message)
                expect_no_message(receiver, max_wait_time=1)
            log("the window survived the restart")


if __name__ == "__main__":
    run(main)
