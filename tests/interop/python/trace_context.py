"""Messages carrying a trace context through the broker: one with a W3C `traceparent`,
completed, and one with the older `Diagnostic-Id`, dead-lettered. The broker's exported
spans are checked by the Rust test that runs this script.

Arguments: connection string, queue, the `traceparent` to send, the `Diagnostic-Id` to send.
"""

from azure.servicebus import ServiceBusMessage

from sbcommon import app_properties, client, expect_eq, log, receive_exactly, run, scenario_args


def main():
    conn, queue, extras = scenario_args(("traceparent", "diagnostic_id"))
    traceparent = extras["traceparent"]
    diagnostic_id = extras["diagnostic_id"]
    with client(conn) as sb:
        with sb.get_queue_sender(queue) as sender:
            sender.send_messages(
                ServiceBusMessage("traced", application_properties={"traceparent": traceparent})
            )
            sender.send_messages(
                ServiceBusMessage("older", application_properties={"Diagnostic-Id": diagnostic_id})
            )
        log("sent a message with traceparent and one with Diagnostic-Id")
        with sb.get_queue_receiver(queue) as receiver:
            for message in receive_exactly(receiver, 2):
                properties = app_properties(message)
                if properties.get("traceparent") == traceparent:
                    receiver.complete_message(message)
                    log("completed the traceparent message")
                else:
                    expect_eq(properties.get("Diagnostic-Id"), diagnostic_id, "Diagnostic-Id")
                    receiver.dead_letter_message(message, reason="TraceTest")
                    log("dead-lettered the Diagnostic-Id message")

if __name__ == "__main__":
    run(main)
