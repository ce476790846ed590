//! `busbar queue|topic|subscription|rule ...` against a broker process: the commands speak
//! the administration (Atom) API and print what the broker holds.

use busbar_interop::Broker;

const CONFIG: &str = r#"{"UserConfig":{"Namespaces":[{"Name":"sbemulatorns",
  "Queues":[{"Name":"orders","Properties":{"LockDuration":"PT30S","MaxDeliveryCount":5}}],
  "Topics":[{"Name":"events","Properties":{},"Subscriptions":[
    {"Name":"all","Properties":{}},
    {"Name":"created","Properties":{},"Rules":[{"Name":"created-only","Properties":{
      "FilterType":"Sql","SqlFilter":{"SqlExpression":"kind = 'created'"}}}]}]}]}]}}"#;

struct Cli<'b> {
    broker: &'b Broker,
    http: String,
}

impl Cli<'_> {
    /// Runs `busbar args...`; returns whether it succeeded and what it printed.
    fn run(&self, args: &[&str]) -> (bool, String) {
        let mut all: Vec<&str> = args.to_vec();
        all.extend(["--http", &self.http]);
        let outcome = self.broker.run_cli(&all);
        let ok = matches!(outcome.status, Some(status) if status.success());
        (ok, outcome.output)
    }

    fn ok(&self, args: &[&str]) -> String {
        let (ok, output) = self.run(args);
        if !ok {
            self.broker
                .fail(&format!("busbar {} failed:\n{output}", args.join(" ")));
        }
        output
    }

    fn fails(&self, args: &[&str]) -> String {
        let (ok, output) = self.run(args);
        if ok {
            self.broker
                .fail(&format!("busbar {} succeeded:\n{output}", args.join(" ")));
        }
        output
    }
}

/// The line of `output` that starts with `name` (a table row or a `Field: value` line).
fn line<'o>(output: &'o str, name: &str) -> &'o str {
    output
        .lines()
        .find(|l| l.starts_with(name))
        .unwrap_or_else(|| panic!("no line for {name} in:\n{output}"))
}

#[test]
fn entities_are_made_shown_changed_listed_and_deleted_from_the_command_line() {
    let broker = Broker::start(Some(CONFIG), &[]);
    let cli = Cli {
        broker: &broker,
        http: broker.http_addr().to_string(),
    };

    let queues = cli.ok(&["queue", "list"]);
    assert!(line(&queues, "NAME").contains("ACTIVE"), "{queues}");
    assert!(line(&queues, "orders ").contains("Active"), "{queues}");
    let orders = cli.ok(&["queue", "show", "orders"]);
    assert_eq!(line(&orders, "LockDuration:"), "LockDuration: PT30S");
    assert_eq!(line(&orders, "MaxDeliveryCount:"), "MaxDeliveryCount: 5");
    assert_eq!(
        line(&orders, "ActiveMessageCount:"),
        "ActiveMessageCount: 0"
    );
    assert!(
        cli.fails(&["queue", "show", "nope"])
            .contains("no queue named 'nope'")
    );
    // `/{name}` is shared by queues and topics: a topic is not shown as a queue.
    assert!(
        cli.fails(&["queue", "show", "events"])
            .contains("no queue named 'events'")
    );

    let topics = cli.ok(&["topic", "list"]);
    let events = line(&topics, "events");
    assert!(
        events.split_whitespace().any(|c| c == "2"),
        "two subscriptions: {topics}"
    );
    let subscriptions = cli.ok(&["subscription", "list", "events"]);
    line(&subscriptions, "all ");
    line(&subscriptions, "created ");

    let rules = cli.ok(&["rule", "list", "events", "created"]);
    assert!(
        line(&rules, "created-only").contains("kind = 'created'"),
        "{rules}"
    );

    let created = cli.ok(&[
        "rule",
        "create",
        "events",
        "all",
        "big",
        "--sql",
        "amount > 100",
    ]);
    assert_eq!(
        line(&created, "SqlExpression:"),
        "SqlExpression: amount > 100"
    );
    let rules = cli.ok(&["rule", "list", "events", "all"]);
    assert!(line(&rules, "$Default").contains("1=1"), "{rules}");
    assert!(line(&rules, "big").contains("amount > 100"), "{rules}");
    assert!(
        cli.fails(&[
            "rule",
            "create",
            "events",
            "all",
            "big",
            "--sql",
            "amount > 1"
        ])
        .contains("already exists")
    );
    cli.ok(&[
        "rule",
        "update",
        "events",
        "all",
        "big",
        "--sql",
        "amount > 5",
        "--action",
        "SET tier = 'gold'",
    ]);
    let big = cli.ok(&["rule", "show", "events", "all", "big"]);
    assert!(big.contains("SqlExpression: amount > 5"), "{big}");
    assert!(big.contains("SqlExpression: SET tier = 'gold'"), "{big}");
    assert!(
        cli.fails(&[
            "rule", "create", "events", "all", "broken", "--sql", "amount >"
        ])
        .contains("400")
    );

    assert!(
        cli.ok(&["rule", "delete", "events", "all", "big"])
            .contains("deleted rule events/all/big")
    );
    assert!(
        cli.fails(&["rule", "delete", "events", "all", "big"])
            .contains("no rule")
    );
    assert!(
        cli.fails(&["subscription", "list", "nope"])
            .contains("no subscription")
    );
    assert!(
        cli.fails(&["rule", "create", "events"])
            .contains("usage: busbar rule create TOPIC SUBSCRIPTION NAME")
    );

    // Entities made, changed and deleted at run time.
    let made = cli.ok(&[
        "queue",
        "create",
        "jobs",
        "--lock-duration",
        "PT45S",
        "--max-delivery-count",
        "3",
        "--requires-session",
    ]);
    assert_eq!(line(&made, "LockDuration:"), "LockDuration: PT45S");
    assert_eq!(line(&made, "RequiresSession:"), "RequiresSession: true");
    assert!(
        cli.fails(&["queue", "create", "jobs"])
            .contains("queue 'jobs' already exists")
    );
    let changed = cli.ok(&[
        "queue",
        "update",
        "jobs",
        "--max-delivery-count",
        "8",
        "--status",
        "SendDisabled",
    ]);
    assert_eq!(line(&changed, "MaxDeliveryCount:"), "MaxDeliveryCount: 8");
    assert_eq!(
        line(&changed, "LockDuration:"),
        "LockDuration: PT45S",
        "kept"
    );
    assert_eq!(line(&changed, "Status:"), "Status: SendDisabled");
    assert!(
        cli.fails(&["queue", "update", "jobs", "--requires-session", "false"])
            .contains("RequiresSession property of an existing Queue cannot be changed")
    );
    assert!(
        cli.fails(&["queue", "create", "bad", "--lock-duration", "PT10M"])
            .contains("5")
    );
    cli.ok(&["topic", "create", "audit", "--default-message-ttl", "P1D"]);
    let sub = cli.ok(&[
        "subscription",
        "create",
        "audit",
        "errors",
        "--forward-to",
        "jobs",
    ]);
    assert!(line(&sub, "ForwardTo:").ends_with("/jobs"), "{sub}");
    assert!(line(&cli.ok(&["subscription", "list", "audit"]), "errors").contains("Active"));
    assert!(
        cli.ok(&["queue", "delete", "jobs"])
            .contains("deleted queue jobs")
    );
    assert!(
        cli.fails(&["queue", "delete", "audit"])
            .contains("no queue named 'audit'")
    );
    cli.ok(&["topic", "delete", "audit"]);
    assert!(!cli.ok(&["topic", "list"]).contains("audit"));
}

/// Over HTTPS with the development CA, on the HTTP listener and on the AMQP port alike (both
/// serve HTTP and HTTPS); a CA that did not sign the broker's certificate is refused.
#[test]
fn the_commands_speak_https_with_the_development_ca() {
    let broker = Broker::start(Some(CONFIG), &[]);
    let ca = broker.dev_ca();
    let ca = ca.to_str().expect("UTF-8 path");
    for port in [broker.http_port(), broker.amqp_port()] {
        let cli = Cli {
            broker: &broker,
            http: format!("127.0.0.1:{port}"),
        };
        let queues = cli.ok(&["queue", "list", "--tls-ca", ca]);
        assert!(line(&queues, "orders ").contains("Active"), "{queues}");
        cli.ok(&["queue", "create", &format!("tls-{port}"), "--tls-ca", ca]);
    }
    let other = tempfile::tempdir().expect("temp dir");
    let stranger = Broker::start(Some(CONFIG), &[]);
    let foreign_ca = other.path().join("foreign-ca.pem");
    std::fs::copy(stranger.dev_ca(), &foreign_ca).expect("copy another broker's CA");
    let cli = Cli {
        broker: &broker,
        http: broker.http_addr().to_string(),
    };
    let refused = cli.fails(&[
        "queue",
        "list",
        "--tls-ca",
        foreign_ca.to_str().expect("UTF-8 path"),
    ]);
    assert!(refused.contains("TLS"), "{refused}");
}
