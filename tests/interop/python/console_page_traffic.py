"""Orders for the console's browser scenarios, made with the Python SDK while a page watches.

    console_page_traffic.py CONN QUEUE send COUNT [FIRST]
        sends orders FIRST.. (default 1), COUNT of them, as JSON (ids order-<n>, subject "order", application
        properties amount and region); the odd ones have a negative total
    console_page_traffic.py CONN TOPIC publish COUNT
        the same to a topic
    console_page_traffic.py CONN QUEUE dead-letter COUNT
        sends COUNT orders with a negative total, receives them and dead-letters each with
        reason "InvalidOrderTotal" and a description naming its total
"""

import json

from azure.servicebus import ServiceBusMessage

from sbcommon import log, receive_exactly, run_phases

REASON = "InvalidOrderTotal"


def orders(count, broken=False, first=1):
    """Orders first..first+count-1; the odd ones (or, when broken, all) have a negative total."""
    for n in range(first, first + count):
        total = -3.5 if broken or n % 2 else 120 + n
        yield ServiceBusMessage(
            json.dumps({"orderId": n, "total": total, "currency": "EUR"}),
            message_id=f"order-{n}",
            subject="order",
            content_type="application/json",
            application_properties={"amount": total, "region": "eu"},
        )


def send(sb, queue, _conn, args):
    first = int(args[1]) if len(args) > 1 else 1
    with sb.get_queue_sender(queue) as sender:
        sender.send_messages(list(orders(int(args[0]), first=first)))
    log(f"sent {args[0]} order(s) to {queue}")


def publish(sb, topic, _conn, args):
    with sb.get_topic_sender(topic) as sender:
        sender.send_messages(list(orders(int(args[0]))))
    log(f"published {args[0]} order(s) to {topic}")


def dead_letter(sb, queue, _conn, args):
    count = int(args[0])
    with sb.get_queue_sender(queue) as sender:
        sender.send_messages(list(orders(count, broken=True)))
    with sb.get_queue_receiver(queue) as receiver:
        for message in receive_exactly(receiver, count):
            total = json.loads(b"".join(message.body))["total"]
            receiver.dead_letter_message(message, reason=REASON, error_description=f"order total {total} is negative")
    log(f"dead-lettered {count} order(s) in {queue}")


if __name__ == "__main__":
    run_phases({"send": send, "publish": publish, "dead-letter": dead_letter})
