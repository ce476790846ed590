"""One connection string for the data and the administration clients: the Python
ServiceBusAdministrationClient always speaks HTTPS to the Endpoint's host and port, so with
the string the data client uses (the AMQP port, emulator flag: plain AMQP) it reaches HTTPS
on the AMQP port, trusting the broker's CA; the data client sends and receives plain AMQP on
the same port, and over TLS without the emulator flag.

Arguments: CONNECTION_STRING (the AMQP port, emulator flag) QUEUE CA AMQP_PORT."""

from azure.servicebus.management import ServiceBusAdministrationClient

from sbcommon import check, client, log, run, scenario_args, send_receive_one
from tlscommon import tls_client


def main():
    conn, queue, extras = scenario_args(("ca", "port"))
    ca, port = extras["ca"], extras["port"]
    with ServiceBusAdministrationClient.from_connection_string(conn, connection_verify=ca) as mgmt:
        properties = mgmt.get_namespace_properties()
        log(f"namespace over HTTPS on the AMQP port: {properties.name}")
        names = [q.name for q in mgmt.list_queues()]
        check(queue in names, f"{queue} listed over HTTPS: {names}")
        runtime = mgmt.get_queue_runtime_properties(queue)
        check(runtime.total_message_count == 0, f"{queue} starts empty: {runtime.total_message_count}")
    with client(conn) as sb:
        send_receive_one(sb, queue, "plain")
    log("plain AMQP on the same port, same string")
    with tls_client(conn.replace(";UseDevelopmentEmulator=true", ""), port, ca) as sb:
        send_receive_one(sb, queue, "tls")
    log("AMQP over TLS on the same port")


if __name__ == "__main__":
    run(main)
