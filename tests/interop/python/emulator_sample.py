"""Microsoft's sample emulator Config.json, served as it is, through the Python SDK.

Arguments: connection string, topic name ("topic.1").

One message that every rule of the sample selects (content type application/json,
prop1 = 'value1', message id '123456', userProp1 = 'value1') is sent to the topic. Each of
the four subscriptions gets a copy; only subscription.4's rule has an action,
SET sys.To = 'Entity', so only that copy carries `to` = 'Entity' (and the RuleName the
service adds), while the other copies keep the message's own `to`.
"""

from azure.servicebus import ServiceBusMessage

from sbcommon import app_properties, client, expect_eq, expect_no_message, log, receive_exactly, run, scenario_args

SUBSCRIPTIONS = ["subscription.1", "subscription.2", "subscription.3", "subscription.4"]


def main():
    conn, topic, _ = scenario_args()
    with client(conn) as sb:
        with sb.get_topic_sender(topic) as sender:
            sender.send_messages(
                ServiceBusMessage(
                    "sample",
                    message_id="123456",
                    content_type="application/json",
                    to="original",
                    application_properties={"prop1": "value1", "userProp1": "value1"},
                )
            )
        for subscription in SUBSCRIPTIONS:
            with sb.get_subscription_receiver(topic, subscription) as receiver:
                [message] = receive_exactly(receiver, 1)
                expect_eq(message.message_id, "123456", f"{subscription} message_id")
                expect_eq(message.content_type, "application/json", f"{subscription} content_type")
                properties = app_properties(message)
                if subscription == "subscription.4":
                    expect_eq(message.to, "Entity", "subscription.4 `to`, set by the rule action")
                    expect_eq(properties.get("RuleName"), "sql-filter-1", "subscription.4 RuleName")
                else:
                    expect_eq(message.to, "original", f"{subscription} `to`")
                expect_eq(properties.get("userProp1"), "value1", f"{subscription} userProp1")
                receiver.complete_message(message)
                expect_no_message(receiver)
            log(f"{subscription}: copy as the sample's rules say")


if __name__ == "__main__":
    run(main)
