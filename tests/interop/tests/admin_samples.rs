//! The management samples published with the Python SDK (`mgmt_queue`, `mgmt_topic`,
//! `mgmt_subscription`, `mgmt_rule`, `topic_subscription_with_rule_operations`, from the
//! azure-servicebus 7.11.4 release, fetched by `.ci/setup` into `python/sdk_samples/`) run
//! unchanged against the broker, with the environment variables they read and the broker's
//! development CA trusted through REQUESTS_CA_BUNDLE.

use busbar_interop::{Broker, python_dir, run_python};

const CONFIG: &str = r#"{"UserConfig":{"Namespaces":[{"Name":"sbemulatorns","Queues":[],
  "Topics":[{"Name":"samples","Properties":{},"Subscriptions":[{"Name":"all","Properties":{}}]}]}]}}"#;

const SAMPLES: [&str; 5] = [
    "mgmt_queue",
    "mgmt_topic",
    "mgmt_subscription",
    "mgmt_rule",
    "topic_subscription_with_rule_operations",
];

#[test]
fn the_python_sdks_management_samples_run_unchanged() {
    let samples = python_dir().join("sdk_samples");
    assert!(
        samples.join("mgmt_queue.py").exists(),
        "the samples are missing: run .ci/setup"
    );
    let broker = Broker::start(Some(CONFIG), &[]);
    let conn = broker.conn_str();
    let ca = broker.dev_ca();
    let ca = ca.to_str().expect("UTF-8 path");
    for sample in SAMPLES {
        let script = format!("sdk_samples/{sample}.py");
        let env = [
            ("SERVICEBUS_CONNECTION_STR", conn.as_str()),
            ("SERVICEBUS_TOPIC_NAME", "samples"),
            ("SERVICEBUS_SUBSCRIPTION_NAME", "all"),
            ("REQUESTS_CA_BUNDLE", ca),
        ];
        if let Err(report) = run_python(&script, &[], &env) {
            broker.fail(&format!("sample {sample} failed:\n{report}"));
        }
    }
}
