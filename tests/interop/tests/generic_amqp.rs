//! A generic AMQP 1.0 client (Qpid Proton) that authenticates the Service Bus way: SASL
//! ANONYMOUS, then a put-token on `$cbs` with a SAS token it signs itself.

use busbar_interop::{Broker, QueueSpec, emulator_config};

#[test]
fn proton_client_authenticates_via_cbs_and_round_trips_five_messages() {
    let broker = Broker::start(Some(&emulator_config(&[QueueSpec::new("generic")])), &[]);
    let output = broker.run_python("proton_generic_client.py", &["generic"]);
    println!("{output}");
}
