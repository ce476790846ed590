"""Plaintext on a listener bound to a non-loopback address (0.0.0.0), reached via 127.0.0.1.

Mode `refused` (the default): plain AMQP is refused in AMQP's terms (amqp:not-allowed, the
reason naming TLS and --allow-plaintext), plain HTTP gets 403 with the same explanation,
while TLS (AMQP and HTTPS) is served. Mode `allowed` (--allow-plaintext): plain AMQP and
HTTP are served.

Arguments: CONNECTION_STRING (with the emulator flag: plaintext) QUEUE CA AMQP_PORT MODE."""

import requests
from azure.servicebus import ServiceBusMessage
from azure.servicebus.exceptions import ServiceBusError

from sbcommon import check, client, expect_eq, expect_raises, log, run, scenario_args, send_receive_one
from tlscommon import tls_client


def main():
    conn, queue, extras = scenario_args(("ca", "port", "mode"))
    ca, port, mode = extras["ca"], extras["port"], extras["mode"]
    plain_health = f"http://127.0.0.1:{port}/health"
    if mode == "allowed":
        with client(conn) as sb:
            send_receive_one(sb, queue, "plain")
        log("plain AMQP served")
        expect_eq(requests.get(plain_health, timeout=10).status_code, 200, f"GET {plain_health}")
        log("plain HTTP served")
        return

    def send_plain():
        with client(conn, retry_total=0) as sb:
            with sb.get_queue_sender(queue) as sender:
                sender.send_messages(ServiceBusMessage("never"))

    error = expect_raises(ServiceBusError, send_plain, "plain AMQP send")
    text = str(error)
    check("not-allowed" in text or "not_allowed" in text, f"the refusal names amqp:not-allowed: {text}")
    check("--allow-plaintext" in text, f"the refusal says what to do: {text}")

    response = requests.get(plain_health, timeout=10)
    expect_eq(response.status_code, 403, f"GET {plain_health}")
    check("TLS" in response.text and "--allow-plaintext" in response.text, f"403 body explains: {response.text!r}")
    log(f"plain HTTP refused: {response.text}")

    tls_conn = conn.replace(";UseDevelopmentEmulator=true", "")
    with tls_client(tls_conn, port, ca) as sb:
        send_receive_one(sb, queue, "plain")
    log("AMQP over TLS served")
    secure_health = f"https://localhost:{port}/health"
    expect_eq(requests.get(secure_health, verify=ca, timeout=10).status_code, 200, f"GET {secure_health}")
    log("HTTPS served")


if __name__ == "__main__":
    run(main)
