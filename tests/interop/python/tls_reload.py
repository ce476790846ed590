"""Certificate reload without dropping connections. A client opens a sender and a receiver
over TLS; the certificate files are replaced and the broker gets SIGHUP; new TLS
connections are then shown the new certificate, while the sender and receiver opened before
keep sending and receiving.

Arguments: CONNECTION_STRING (no emulator flag) QUEUE PORT BROKER_PID SERVED_CERT SERVED_KEY
NEW_CERT NEW_KEY CA_BUNDLE (trusting the old and the new certificate's CAs)."""

import os
import shutil
import signal
import time
import uuid

from azure.servicebus import ServiceBusMessage

from sbcommon import ScenarioFailure, body_bytes, expect_eq, log, receive_exactly, run, scenario_args
from tlscommon import pem_certificate_der, served_certificate, tls_client

RELOAD_DEADLINE_SECONDS = 30


def round_trip(sender, receiver, what):
    marker = f"{what}-{uuid.uuid4()}"
    sender.send_messages(ServiceBusMessage(marker, message_id=marker))
    [message] = receive_exactly(receiver, 1)
    expect_eq(body_bytes(message), marker.encode(), f"{what}: body")
    receiver.complete_message(message)


def main():
    names = ("port", "pid", "served_cert", "served_key", "new_cert", "new_key", "ca_bundle")
    conn, queue, args = scenario_args(names)
    port, bundle = args["port"], args["ca_bundle"]
    old = pem_certificate_der(args["served_cert"])
    new = pem_certificate_der(args["new_cert"])
    expect_eq(served_certificate(port, [bundle]) == old, True, "the certificate served at start is the file's")

    with tls_client(conn, port, bundle) as sb:
        with sb.get_queue_sender(queue) as sender, sb.get_queue_receiver(queue) as receiver:
            round_trip(sender, receiver, "before the reload")
            shutil.copyfile(args["new_key"], args["served_key"])
            shutil.copyfile(args["new_cert"], args["served_cert"])
            os.kill(int(args["pid"]), signal.SIGHUP)
            deadline = time.monotonic() + RELOAD_DEADLINE_SECONDS
            while served_certificate(port, [bundle]) != new:
                if time.monotonic() > deadline:
                    raise ScenarioFailure(f"no new certificate within {RELOAD_DEADLINE_SECONDS}s of SIGHUP")
                time.sleep(0.1)
            log("new TLS connections get the new certificate")
            round_trip(sender, receiver, "after the reload")
            log("the sender and receiver opened before the reload still work")


if __name__ == "__main__":
    run(main)
