#!/usr/bin/env python3
"""A stand-in for `busbar serve` used only to test the interop harness itself: it accepts the
same arguments, answers GET /health with 200, records each start in DATA_DIR/starts, exits 0 on
SIGTERM, and can be told to exit at once (--max-message-size 1) or never become healthy
(--max-message-size 2). It speaks no AMQP: connections to the AMQP port are closed at once."""

import os
import signal
import socket
import sys
import threading


def option(args, name):
    return args[args.index(name) + 1] if name in args else None


def listen(address):
    host, port = address.rsplit(":", 1)
    server = socket.socket()
    server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    server.bind((host, int(port)))
    server.listen(16)
    return server


def serve_forever(server, reply):
    while True:
        connection, _ = server.accept()
        if reply:
            connection.recv(1024)
            connection.sendall(reply)
        connection.close()


def main():
    args = sys.argv[1:]
    mode = option(args, "--max-message-size")
    data_dir = option(args, "--data-dir")
    with open(os.path.join(data_dir, "starts"), "a", encoding="utf-8") as starts:
        starts.write(f"{os.getpid()}\n")
    if mode == "1":
        print("stand-in: refusing to start (asked to)", flush=True)
        sys.exit(3)
    amqp = listen(option(args, "--amqp-listen"))
    threading.Thread(target=serve_forever, args=(amqp, None), daemon=True).start()
    if mode != "2":
        http = listen(option(args, "--http-listen"))
        reply = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok"
        threading.Thread(target=serve_forever, args=(http, reply), daemon=True).start()
    print("stand-in: ready", flush=True)

    def on_sigterm(*_):
        print("stand-in: SIGTERM, exiting", flush=True)
        sys.exit(0)

    signal.signal(signal.SIGTERM, on_sigterm)
    while True:
        signal.pause()


if __name__ == "__main__":
    main()
