#!/usr/bin/env bash
# Private RabbitMQ 3.x node on loopback with the AMQP 1.0 plugin, for benchmarks.
#   rabbit.sh start | stop | declare | declare-fanout N... | declare-queues N [TYPE] | purge | reset | pid | status
# State lives in $RABBIT_DIR (default /tmp/busbar-bench-rabbit); AMQP on 127.0.0.1:$RABBIT_PORT
# (default 5682). Queues: 'bench' (durable classic) and 'benchq' (durable quorum), addressed
# over AMQP 1.0 as /amq/queue/bench and /amq/queue/benchq; SASL PLAIN guest/guest.
# declare-fanout N: fanout exchange fanN bound to N durable quorum queues fanN-0..fanN-{N-1}
# (published to as /exchange/fanN), purged. declare-queues N [TYPE]: durable queues of TYPE
# (classic, the default, or quorum) TYPE-q0..TYPE-q{N-1} (named by type, since a queue's
# type cannot change once declared).
set -euo pipefail
R=${RABBIT_DIR:-/tmp/busbar-bench-rabbit}
PORT=${RABBIT_PORT:-5682}
mkdir -p "$R/home" "$R/mnesia" "$R/log"
# The node's name follows the port, so two benchmark nodes on one machine do not meet.
export HOME=$R/home RABBITMQ_NODENAME=busbarbench$PORT@localhost
export RABBITMQ_CONFIG_FILE=$R/rabbitmq.conf RABBITMQ_ENABLED_PLUGINS_FILE=$R/enabled_plugins
export RABBITMQ_MNESIA_BASE=$R/mnesia RABBITMQ_LOG_BASE=$R/log RABBITMQ_PID_FILE=$R/rabbit.pid
export ERL_EPMD_ADDRESS=127.0.0.1 RABBITMQ_DIST_PORT=$((PORT + 20000)) RABBITMQ_NODE_IP_ADDRESS=127.0.0.1
# No scheduler busy-waiting (RabbitMQ's advice for shared or small hosts): an idle node
# then leaves the two cores alone while the other broker is measured.
export RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS="-kernel inet_dist_use_interface {127,0,0,1} +sbwt none +sbwtdcpu none +sbwtdio none"
export PATH=/usr/lib/rabbitmq/bin:$PATH

cat > "$R/rabbitmq.conf" <<CONF
listeners.tcp.1 = 127.0.0.1:$PORT
loopback_users.guest = true
vm_memory_high_watermark.relative = 0.4
disk_free_limit.absolute = 50MB
queue_index_embed_msgs_below = 4096
CONF

case "${1:-}" in
start)
    if ! command -v rabbitmq-server >/dev/null; then
        DEBIAN_FRONTEND=noninteractive apt-get install -y -q rabbitmq-server python3-pika >/dev/null
    fi
    rabbitmq-plugins enable --offline rabbitmq_amqp1_0 >/dev/null
    if [ -f "$R/rabbit.pid" ] && kill -0 "$(cat "$R/rabbit.pid")" 2>/dev/null; then
        echo "already running: pid $(cat "$R/rabbit.pid")" >&2
        exit 0
    fi
    nohup nice -n -10 rabbitmq-server >"$R/log/stdout.log" 2>&1 &
    rabbitmqctl wait --timeout 120 "$R/rabbit.pid" >/dev/null
    echo "rabbitmq up: pid $(cat "$R/rabbit.pid") port $PORT" >&2
    ;;
declare)
    /usr/bin/python3 - "$PORT" <<'PY'
import sys, pika
c = pika.BlockingConnection(pika.ConnectionParameters("127.0.0.1", int(sys.argv[1]),
                            credentials=pika.PlainCredentials("guest", "guest")))
ch = c.channel()
ch.queue_declare("bench", durable=True)
ch.queue_declare("benchq", durable=True, arguments={"x-queue-type": "quorum"})
for q in ("bench", "benchq"):
    ch.queue_purge(q)
c.close()
PY
    ;;
declare-fanout)
    shift
    /usr/bin/python3 - "$PORT" "$@" <<'PY'
import sys, pika
c = pika.BlockingConnection(pika.ConnectionParameters("127.0.0.1", int(sys.argv[1]),
                            credentials=pika.PlainCredentials("guest", "guest")))
ch = c.channel()
for n in map(int, sys.argv[2:]):
    ch.exchange_declare(f"fan{n}", exchange_type="fanout", durable=True)
    for i in range(n):
        q = f"fan{n}-{i}"
        ch.queue_declare(q, durable=True, arguments={"x-queue-type": "quorum"})
        ch.queue_bind(q, f"fan{n}")
        ch.queue_purge(q)
c.close()
PY
    ;;
declare-queues)
    /usr/bin/python3 - "$PORT" "$2" "${3:-classic}" <<'PY'
import sys, pika
c = pika.BlockingConnection(pika.ConnectionParameters("127.0.0.1", int(sys.argv[1]),
                            credentials=pika.PlainCredentials("guest", "guest")))
ch = c.channel()
kind = sys.argv[3]
for i in range(int(sys.argv[2])):
    ch.queue_declare(f"{kind}-q{i}", durable=True, arguments={"x-queue-type": kind})
c.close()
PY
    ;;
purge)
    /usr/bin/python3 - "$PORT" <<'PY'
import sys, pika
c = pika.BlockingConnection(pika.ConnectionParameters("127.0.0.1", int(sys.argv[1]),
                            credentials=pika.PlainCredentials("guest", "guest")))
ch = c.channel()
for q in ("bench", "benchq"):
    ch.queue_purge(q)
c.close()
PY
    ;;
reset)
    # The node's data (queues, messages), so the next start begins empty; only when stopped.
    if [ -f "$R/rabbit.pid" ] && kill -0 "$(cat "$R/rabbit.pid")" 2>/dev/null; then
        echo "running: stop it first" >&2
        exit 1
    fi
    rm -rf "$R/mnesia"
    mkdir -p "$R/mnesia"
    ;;
pid)
    cat "$R/rabbit.pid"
    ;;
status)
    rabbitmqctl list_queues name type messages
    ;;
stop)
    if [ -f "$R/rabbit.pid" ]; then
        rabbitmqctl stop "$R/rabbit.pid" >/dev/null || true
    fi
    ;;
*)
    echo "usage: $0 start|stop|declare|declare-fanout N...|declare-queues N [TYPE]|purge|reset|pid|status" >&2
    exit 2
    ;;
esac
