"""Duplicate detection and a far-future schedule across a restart. Arguments: connection
string, queue, phase.

send:  sends message id "keep-1" and completes it; schedules "later-1" 30 days ahead.
check: (after the broker restarted) sends "keep-1" again and a new "keep-2"; only keep-2
       may arrive. "later-1" is still scheduled, under the same sequence number, and not
       receivable.
"""

import datetime

from azure.servicebus import ServiceBusMessage, ServiceBusMessageState

from sbcommon import client, expect_eq, expect_no_message, log, receive_exactly, run, scenario_args


def conn_port(conn):
    return conn.split("sb://", 1)[1].split(";", 1)[0].replace(":", "_")


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
            when = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(days=30)
            with sb.get_queue_sender(queue) as sender:
                [seq] = sender.schedule_messages(ServiceBusMessage("later", message_id="later-1"), when)
            print(f"SCHEDULED {seq}", flush=True)
            with open(f"/tmp/busbar-interop-scheduled-{queue}-{conn_port(conn)}", "w") as note:
                note.write(str(seq))
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
            with open(f"/tmp/busbar-interop-scheduled-{queue}-{conn_port(conn)}") as note:
                seq = int(note.read())
            with sb.get_queue_receiver(queue) as receiver:
                peeked = receiver.peek_messages(max_message_count=10, sequence_number=1)
                later = [m for m in peeked if m.message_id == "later-1"]
                expect_eq(len(later), 1, "the scheduled message is still there")
                expect_eq(later[0].sequence_number, seq, "its sequence number")
                expect_eq(later[0].state, ServiceBusMessageState.SCHEDULED, "its state")
                expect_no_message(receiver, max_wait_time=1)
            log("the 30-day schedule survived the restart")


if __name__ == "__main__":
    run(main)
