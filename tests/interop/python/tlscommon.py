"""Helpers for the TLS scenarios: the Service Bus client over TLS to a chosen port, and the
certificate a TLS listener presents."""

import socket
import ssl

from azure.servicebus import TransportType

from sbcommon import client


def tls_client(conn, port, ca, **kwargs):
    """A client reaching the broker over TLS on `port` (the Endpoint's port is dropped under
    TLS, so a custom endpoint names it; with it, transport_type keeps plain AMQP rather than
    WebSockets), trusting the CA in the file `ca` (None: the system's trust store)."""
    options = dict(custom_endpoint_address=f"sb://127.0.0.1:{port}", transport_type=TransportType.Amqp)
    if ca is not None:
        options["connection_verify"] = ca
    options.update(kwargs)
    return client(conn, **options)


def served_certificate(port, cafiles, host="127.0.0.1"):
    """The DER of the certificate a fresh TLS connection to `port` is shown, verified against
    the CAs in `cafiles`."""
    context = ssl.create_default_context()
    for cafile in cafiles:
        context.load_verify_locations(cafile=cafile)
    with socket.create_connection((host, int(port)), timeout=10) as raw:
        with context.wrap_socket(raw, server_hostname=host) as tls:
            return tls.getpeercert(binary_form=True)


def pem_certificate_der(path):
    """The DER of the first certificate in a PEM file."""
    with open(path, encoding="ascii") as file:
        return ssl.PEM_cert_to_DER_cert(file.read())
