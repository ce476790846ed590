//! The HTTP queue API and the `busbar queues` command, after an official SDK put messages in
//! every state. The scripts (`python/queue_counts.py`, `js/queue_counts.mjs`) check the API's
//! JSON; the tests here then check what the command prints for the same queue.

use busbar_interop::{Broker, ProcessOutcome, QueueSpec, emulator_config};

const QUEUE: &str = "tally";
/// A second queue, never touched, so listings hold more than one row.
const IDLE: &str = "idle";

/// What the scripts leave in `tally`, by `busbar queues` column title.
const EXPECTED_COLUMNS: [(&str, u64); 6] = [
    ("ACTIVE", 1),
    ("SCHEDULED", 1),
    ("DEFERRED", 1),
    ("DEAD-LETTER", 1),
    ("TRANSFER", 0),
    ("LOCKED", 0),
];

/// The same, by API field name.
const EXPECTED_FIELDS: [(&str, u64); 8] = [
    ("active_message_count", 1),
    ("scheduled_message_count", 1),
    ("deferred_message_count", 1),
    ("dead_letter_message_count", 1),
    ("transfer_message_count", 0),
    ("transfer_dead_letter_message_count", 0),
    ("locked_message_count", 0),
    ("total_message_count", 4),
];

fn start() -> Broker {
    Broker::start(
        Some(&emulator_config(&[
            QueueSpec::new(QUEUE),
            QueueSpec::new(IDLE),
        ])),
        &[],
    )
}

fn cli_ok(broker: &Broker, args: &[&str]) -> String {
    let outcome = broker.run_cli(args);
    if !matches!(outcome.status, Some(status) if status.success()) {
        broker.fail(&describe(args, &outcome));
    }
    outcome.output
}

fn describe(args: &[&str], outcome: &ProcessOutcome) -> String {
    format!(
        "busbar {} ended with {:?}\n--- output ---\n{}",
        args.join(" "),
        outcome.status,
        outcome.output
    )
}

/// The table's rows as (queue name, column title → value), read by header position so the
/// column order is not assumed.
fn table_rows(broker: &Broker, output: &str) -> Vec<(String, Vec<(String, String)>)> {
    let mut lines = output.lines().filter(|line| !line.trim().is_empty());
    let Some(header) = lines.next() else {
        broker.fail(&format!("`busbar queues` printed nothing:\n{output}"));
    };
    let titles: Vec<&str> = header.split_whitespace().collect();
    if titles.first() != Some(&"NAME") {
        broker.fail(&format!(
            "`busbar queues` header should start with NAME:\n{output}"
        ));
    }
    lines
        .map(|line| {
            let cells: Vec<&str> = line.split_whitespace().collect();
            if cells.len() != titles.len() {
                broker.fail(&format!(
                    "row {line:?} has {} cells, the header {}:\n{output}",
                    cells.len(),
                    titles.len()
                ));
            }
            let columns = titles
                .iter()
                .zip(&cells)
                .skip(1)
                .map(|(title, cell)| ((*title).to_owned(), (*cell).to_owned()))
                .collect();
            (cells[0].to_owned(), columns)
        })
        .collect()
}

fn check_row(
    broker: &Broker,
    output: &str,
    columns: &[(String, String)],
    expected: &[(&str, u64)],
) {
    for (title, value) in expected {
        let shown = columns
            .iter()
            .find(|(name, _)| name == title)
            .map(|(_, cell)| cell.as_str());
        if shown != Some(value.to_string().as_str()) {
            broker.fail(&format!(
                "`busbar queues` column {title}: expected {value}, got {shown:?}\n{output}"
            ));
        }
    }
}

/// The integer after `"key":` in JSON text (pretty-printed or not), without a JSON library.
fn json_u64(text: &str, key: &str) -> Option<u64> {
    let needle = format!("\"{key}\"");
    let after = &text[text.find(&needle)? + needle.len()..];
    let after = after.trim_start().strip_prefix(':')?.trim_start();
    let digits: String = after.chars().take_while(char::is_ascii_digit).collect();
    digits.parse().ok()
}

/// `busbar queues` (all queues, one queue, `--json`, and an unknown queue) against the
/// broker the script just filled.
fn check_queues_command(broker: &Broker) {
    let http = broker.http_addr().to_string();

    let all = cli_ok(broker, &["queues", "--http", &http]);
    let rows = table_rows(broker, &all);
    let names: Vec<&str> = rows.iter().map(|(name, _)| name.as_str()).collect();
    if names != [IDLE, QUEUE] {
        broker.fail(&format!(
            "`busbar queues` rows: expected [{IDLE}, {QUEUE}], got {names:?}\n{all}"
        ));
    }
    check_row(broker, &all, &rows[1].1, &EXPECTED_COLUMNS);
    let idle: Vec<(&str, u64)> = EXPECTED_COLUMNS
        .iter()
        .map(|(title, _)| (*title, 0))
        .collect();
    check_row(broker, &all, &rows[0].1, &idle);

    let one = cli_ok(broker, &["queues", QUEUE, "--http", &http]);
    let rows = table_rows(broker, &one);
    if rows.len() != 1 || rows[0].0 != QUEUE {
        broker.fail(&format!(
            "`busbar queues {QUEUE}` should print one row for {QUEUE}:\n{one}"
        ));
    }
    check_row(broker, &one, &rows[0].1, &EXPECTED_COLUMNS);

    let json = cli_ok(broker, &["queues", QUEUE, "--json", "--http", &http]);
    if !json.contains(&format!("\"name\": \"{QUEUE}\""))
        && !json.contains(&format!("\"name\":\"{QUEUE}\""))
    {
        broker.fail(&format!(
            "`busbar queues {QUEUE} --json` does not name the queue:\n{json}"
        ));
    }
    for (field, value) in EXPECTED_FIELDS {
        let shown = json_u64(&json, field);
        if shown != Some(value) {
            broker.fail(&format!(
                "`busbar queues {QUEUE} --json` field {field}: expected {value}, got {shown:?}\n{json}"
            ));
        }
    }

    let args = ["queues", "nope", "--http", &http];
    let missing = broker.run_cli(&args);
    let succeeded = matches!(missing.status, Some(status) if status.success());
    if succeeded || missing.status.is_none() || !missing.output.contains("nope") {
        broker.fail(&format!(
            "`busbar queues nope` should fail naming the queue; {}",
            describe(&args, &missing)
        ));
    }
}

#[test]
fn python_queue_counts_over_http_and_cli() {
    let broker = start();
    let http = broker.http_addr().to_string();
    broker.run_python("queue_counts.py", &[QUEUE, &http]);
    check_queues_command(&broker);
}

#[test]
fn js_queue_counts_over_http_and_cli() {
    let broker = start();
    let http = broker.http_addr().to_string();
    broker.run_node("queue_counts.mjs", &[QUEUE, &http]);
    check_queues_command(&broker);
}

#[test]
fn json_u64_reads_compact_and_pretty_fields() {
    assert_eq!(json_u64(r#"{"a":1,"b": 22}"#, "b"), Some(22));
    assert_eq!(json_u64("{\n  \"a\": 7,\n}", "a"), Some(7));
    assert_eq!(json_u64(r#"{"a":null}"#, "a"), None);
    assert_eq!(json_u64(r#"{"ab":3}"#, "a"), None);
}
