"""Health check used after abuse scenarios: one message goes in and comes back out."""

from sbcommon import client, log, run, scenario_args, send_receive_one


def main():
    conn, queue, _ = scenario_args()
    with client(conn) as sb:
        send_receive_one(sb, queue, "smoke")
    log("send/receive works")


if __name__ == "__main__":
    run(main)
