"""Send and receive over TLS: the SDK with a connection string without the emulator flag
(so it speaks TLS), a custom endpoint naming the port, and the broker's CA trusted with
connection_verify. Without the CA, the same client is refused: the certificate really is
verified."""

from azure.servicebus import ServiceBusMessage
from azure.servicebus.exceptions import ServiceBusError

from sbcommon import expect_raises, log, run, scenario_args, send_receive_one
from tlscommon import tls_client


def main():
    conn, queue, extras = scenario_args(("ca", "port"))
    port, ca = extras["port"], extras["ca"]
    with tls_client(conn, port, ca) as sb:
        send_receive_one(sb, queue, "tls")
    log(f"sent and received over TLS on port {port}")

    def send_untrusted():
        with tls_client(conn, port, None, retry_total=0) as sb:
            with sb.get_queue_sender(queue) as sender:
                sender.send_messages(ServiceBusMessage("never"))

    error = expect_raises(ServiceBusError, send_untrusted, "send without trusting the CA")
    log(f"untrusted: {type(error).__name__}")


if __name__ == "__main__":
    run(main)
