//! The official SDKs' `ServiceBusAdministrationClient` against a broker process: the test
//! plan of the reference's servicebus-admin-api.md §7 with the Python client, entities it
//! makes surviving kill -9, and the statuses it sets enforced on the data plane.
//!
//! Both clients take the broker's one connection string (`UseDevelopmentEmulator=true`): the
//! data-plane client speaks plain AMQP to the Endpoint's port, the admin clients HTTPS to the
//! same port, trusting the broker's development CA.

use busbar_interop::Broker;

fn run_python_with(broker: &Broker, script: &str, args: &[&str], extra: &[(&str, &str)]) -> String {
    let ca = broker.dev_ca();
    let ca = ca.to_str().expect("UTF-8 path");
    let mut env = vec![("BUSBAR_ADMIN_CA", ca)];
    env.extend_from_slice(extra);
    broker.run_python_with(script, &broker.conn_str(), args, &env)
}

fn run_python(broker: &Broker, script: &str, args: &[&str]) -> String {
    run_python_with(broker, script, args, &[])
}

#[test]
fn python_admin_client_follows_the_test_plan() {
    let broker = Broker::start(None, &[]);
    run_python(&broker, "admin_client.py", &["plan"]);
}

#[test]
fn python_async_admin_client_core_operations() {
    let broker = Broker::start(None, &[]);
    run_python_with(&broker, "admin_client.py", &["async"], &[("ASYNC", "1")]);
}

#[test]
fn js_admin_client_smoke_test() {
    let broker = Broker::start(None, &[]);
    let ca = broker.dev_ca();
    let ca = ca.to_str().expect("UTF-8 path");
    broker.run_node_with(
        "admin_smoke.mjs",
        &broker.conn_str(),
        &["js"],
        &[("NODE_EXTRA_CA_CERTS", ca)],
    );
}

#[test]
fn admin_made_entities_survive_kill_9_and_their_status_is_enforced() {
    let mut broker = Broker::start(None, &[]);
    run_python(&broker, "admin_durability.py", &["kept", "create"]);
    broker.kill9();
    broker.restart();
    run_python(&broker, "admin_durability.py", &["kept", "check"]);
    broker.run_python(
        "entity_status.py",
        &[
            "kept-disabled",
            "kept-send-disabled",
            "kept-receive-disabled",
        ],
    );
}

#[test]
fn python_links_on_a_queue_the_admin_client_deletes_are_detached_with_not_found() {
    let broker = Broker::start(None, &[]);
    run_python(&broker, "deleted_entity_link.py", &["short-lived"]);
}
