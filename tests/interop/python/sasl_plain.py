"""SASL PLAIN is checked against the policies, as Service Bus does: the user name is a policy's
key name and the password its key. A wrong key or an unknown key name is refused during SASL;
the right pair gives the connection that policy's rights, with no $cbs token: a Send-only
pair sends but cannot receive.

argv: SEND_CONN QUEUE (the connection string of a Send-only policy)
"""

from proton import Message

from proton_generic_client import parse_connection_string, plain_connection
from sbcommon import ScenarioFailure, check, log, run, scenario_args


def connect(host, port, user, password):
    return plain_connection(host, port, user, password, timeout=10)


def expect_refused(host, port, user, password, what):
    try:
        connection = connect(host, port, user, password)
    except Exception as error:  # noqa: BLE001 - proton reports SASL failure as several classes
        text = str(error)
        check("auth" in text.lower() or "sasl" in text.lower(), f"{what}: unexpected failure {type(error).__name__}: {text}")
        log(f"{what}: refused during SASL ({type(error).__name__}: {text})")
        return
    connection.close()
    raise ScenarioFailure(f"{what}: the connection was accepted")


def main():
    conn, queue, _ = scenario_args()
    host, port, key_name, key = parse_connection_string(conn)
    expect_refused(host, port, key_name, key + "x", "PLAIN with a wrong key")
    expect_refused(host, port, "no-such-policy", key, "PLAIN with an unknown key name")
    expect_refused(host, port, key_name, "", "PLAIN with an empty key")

    connection = connect(host, port, key_name, key)
    try:
        sender = connection.create_sender(queue)
        sender.send(Message(body="sent with SASL PLAIN credentials"))
        log("PLAIN with the right key: sent without a $cbs token")
        try:
            connection.create_receiver(queue)
        except Exception as error:  # noqa: BLE001 - proton's LinkDetached
            check("unauthorized-access" in str(error), f"receiver refusal: {error}")
            log(f"a Send-only PLAIN connection cannot receive: {error}")
        else:
            raise ScenarioFailure("a Send-only PLAIN connection attached a receiver")
    finally:
        connection.close()


if __name__ == "__main__":
    run(main)
