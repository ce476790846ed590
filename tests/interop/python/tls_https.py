"""HTTPS and HTTP on the broker's ports: GET /health over TLS, verified against the CA file
given, on every port named; and plain HTTP on the ports that serve it.

Arguments: CA_FILE, then `https:PORT` or `http:PORT` items."""

import sys

import requests

from sbcommon import ScenarioFailure, expect_eq, log, run


def main():
    if len(sys.argv) < 3:
        raise ScenarioFailure("usage: tls_https.py CA_FILE (https|http):PORT...")
    ca = sys.argv[1]
    for item in sys.argv[2:]:
        scheme, port = item.split(":")
        host = "localhost" if scheme == "https" else "127.0.0.1"
        url = f"{scheme}://{host}:{port}/health"
        response = requests.get(url, verify=ca, timeout=10)
        expect_eq(response.status_code, 200, f"GET {url}")
        expect_eq(response.json().get("status"), "ready", f"GET {url} status")
        log(f"GET {url}: 200 ready")


if __name__ == "__main__":
    run(main)
