"""A peek answers at most about a megabyte of messages, however many are asked for: ten
messages of 200,000 bytes come back over several peeks, each continuing from the next
sequence number, all of them in order and none twice.

argv: CONN QUEUE
"""

from azure.servicebus import ServiceBusMessage

from sbcommon import check, client, expect_eq, log, run, scenario_args

BODY = 200_000
COUNT = 10


def main():
    conn, queue, _ = scenario_args()
    with client(conn) as sb:
        with sb.get_queue_sender(queue) as sender:
            for n in range(COUNT):
                sender.send_messages(ServiceBusMessage(f"{n:02d}".encode() * (BODY // 2)))
        seen = []
        pages = []
        with sb.get_queue_receiver(queue) as receiver:
            next_seq = 1
            while len(seen) < COUNT and len(pages) < COUNT:
                page = receiver.peek_messages(max_message_count=COUNT, sequence_number=next_seq)
                check(page, f"a peek from {next_seq} returned nothing with {COUNT - len(seen)} left")
                pages.append(len(page))
                seen.extend(message.sequence_number for message in page)
                next_seq = page[-1].sequence_number + 1
        log(f"pages of {pages} messages")
        check(pages[0] < COUNT, f"the first peek returned all {pages[0]} messages ({COUNT * BODY} bytes)")
        expect_eq(seen, sorted(set(seen)), "sequence numbers in order, none twice")
        expect_eq(len(seen), COUNT, "messages peeked in all")


if __name__ == "__main__":
    run(main)
