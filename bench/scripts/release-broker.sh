# Sourced by the bench scripts: builds busbar and busbar-bench in release mode and starts one
# broker with the queue `bench` in a temporary directory, removed (and the broker stopped)
# when the script exits. Sets DIR and PID. BROKER_WRAPPER, if set, is put in front of the
# broker's command line (e.g. a valgrind invocation; it must exec the broker in its process).
#
#   start_release_broker NAME AMQP_PORT AMQPS_PORT HTTP_PORT
start_release_broker() {
    local name=$1 amqp_port=$2 amqps_port=$3 http_port=$4
    cargo build --release -p busbar -p busbar-bench >&2
    DIR=$(mktemp -d "/tmp/busbar-bench-$name.XXXXXX")
    cat >"$DIR/Config.json" <<'JSON'
{"UserConfig":{"Namespaces":[{"Name":"sbemulatorns","Queues":[{"Name":"bench","Properties":{}}],"Topics":[]}],"Logging":{"Type":"File"}}}
JSON
    # shellcheck disable=SC2086
    ${BROKER_WRAPPER:-} target/release/busbar serve --config "$DIR/Config.json" --data-dir "$DIR/data" \
        --amqp-listen "127.0.0.1:$amqp_port" --amqps-listen "127.0.0.1:$amqps_port" \
        --http-listen "127.0.0.1:$http_port" --log warn >>"$DIR/busbar.log" 2>&1 &
    PID=$!
    trap 'kill $PID 2>/dev/null; wait $PID 2>/dev/null; rm -rf "$DIR"' EXIT
    until curl -sf "http://127.0.0.1:$http_port/health" >/dev/null 2>&1; do sleep 0.05; done
}
