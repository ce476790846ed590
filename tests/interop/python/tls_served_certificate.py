"""The certificate a new TLS connection to PORT is shown is the one in EXPECTED_CERT (PEM),
verified against the CA files that follow.

Arguments: PORT EXPECTED_CERT CA_FILE..."""

import sys

from sbcommon import ScenarioFailure, expect_eq, log, run
from tlscommon import pem_certificate_der, served_certificate


def main():
    if len(sys.argv) < 4:
        raise ScenarioFailure("usage: tls_served_certificate.py PORT EXPECTED_CERT CA_FILE...")
    port, expected, cafiles = sys.argv[1], sys.argv[2], sys.argv[3:]
    expect_eq(served_certificate(port, cafiles) == pem_certificate_der(expected), True, "served certificate is the expected one")
    log(f"port {port} serves {expected}")


if __name__ == "__main__":
    run(main)
