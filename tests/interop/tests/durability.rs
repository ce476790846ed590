//! Crash and restart: what the broker confirmed before dying must be there after it restarts
//! on the same data directory, and settled messages must stay settled.

use busbar_interop::{Broker, QueueSpec, emulator_config};

const QUEUE: &str = "durable";

fn durable_broker() -> Broker {
    // Locks shorter than the scripts' receive deadline, so a lock that somehow survived the
    // crash would expire within the run instead of hiding messages.
    let config = emulator_config(&[QueueSpec::new(QUEUE).lock_duration("PT30S")]);
    Broker::start(Some(&config), &[])
}

#[test]
fn kill9_loses_no_confirmed_send_or_completion() {
    let mut broker = durable_broker();
    let sent = broker.run_python("durability.py", &[QUEUE, "send", "500"]);
    println!("{sent}");

    broker.kill9();
    broker.restart();
    // All 500 back; then complete the first 200.
    let first = broker.run_python("durability.py", &[QUEUE, "expect", "0", "500", "200"]);
    println!("{first}");

    broker.kill9();
    broker.restart();
    // Exactly the 300 that were not completed.
    let second = broker.run_python("durability.py", &[QUEUE, "expect", "200", "500"]);
    println!("{second}");
}

#[test]
fn sigterm_exits_cleanly_and_keeps_messages() {
    let mut broker = durable_broker();
    broker.run_python("durability.py", &[QUEUE, "send", "20"]);
    let status = broker.stop();
    assert!(
        status.success(),
        "busbar should exit 0 on SIGTERM, got {status}\n{}",
        broker.log_tail(40)
    );
    broker.restart();
    broker.run_python("durability.py", &[QUEUE, "expect", "0", "20"]);
}

/// The backup the README describes: a copy of the data directory of a stopped broker, put
/// back later, brings back exactly what the broker held when it was copied.
#[test]
fn a_copy_of_a_stopped_brokers_data_directory_restores_it() {
    let mut broker = durable_broker();
    broker.run_python("durability.py", &[QUEUE, "send", "50"]);
    assert!(broker.stop().success(), "{}", broker.log_tail(40));
    let backup = tempfile::tempdir().expect("backup dir");
    copy_dir(&broker.data_dir(), backup.path());

    // Everything is received and completed after the backup...
    broker.restart();
    broker.run_python("durability.py", &[QUEUE, "expect", "0", "50", "50"]);
    assert!(broker.stop().success(), "{}", broker.log_tail(40));

    // ...and the restored copy has all 50 again.
    std::fs::remove_dir_all(broker.data_dir()).expect("remove the data dir");
    copy_dir(backup.path(), &broker.data_dir());
    broker.restart();
    broker.run_python("durability.py", &[QUEUE, "expect", "0", "50"]);
}

fn copy_dir(from: &std::path::Path, to: &std::path::Path) {
    std::fs::create_dir_all(to).expect("create the copy");
    for entry in std::fs::read_dir(from).expect("read the data dir") {
        let entry = entry.expect("dir entry");
        let target = to.join(entry.file_name());
        if entry.file_type().expect("file type").is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).expect("copy a file");
        }
    }
}

/// Flips one byte a little after `marker` in whichever log segment holds it; returns the
/// segment's file name. Panics unless it is a sealed segment with its index, the case where
/// opening the store reads no body and only the read itself can notice the damage.
fn damage_body(broker: &Broker, marker: &str) -> String {
    let data = broker.data_dir();
    let mut segments: Vec<_> = std::fs::read_dir(&data)
        .expect("read the data directory")
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|path| path.extension().is_some_and(|ext| ext == "log"))
        .collect();
    segments.sort();
    for (position, path) in segments.iter().enumerate() {
        let mut bytes = std::fs::read(path).expect("read a segment");
        let Some(at) = bytes
            .windows(marker.len())
            .position(|window| window == marker.as_bytes())
        else {
            continue;
        };
        assert!(
            position + 1 < segments.len() && path.with_extension("idx").exists(),
            "{marker} is not in a sealed, indexed segment: {}",
            path.display()
        );
        bytes[at + marker.len() + 1000] ^= 0x55;
        std::fs::write(path, &bytes).expect("write the damaged segment");
        return path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
    }
    panic!("no segment holds {marker}");
}

#[test]
fn a_body_damaged_on_disk_never_reaches_a_client_and_is_dead_lettered() {
    const COUNT: &str = "40";
    const DAMAGED: &str = "10";
    let config = emulator_config(&[QueueSpec::new(QUEUE)]);
    // Small segments: the 4 MB sent fill several, all but the last sealed and indexed.
    let mut broker = Broker::start(Some(&config), &["--segment-mib", "1"]);
    broker.run_python("damaged_body.py", &[QUEUE, "send", COUNT]);
    let status = broker.stop();
    assert!(
        status.success(),
        "busbar should exit 0 on SIGTERM, got {status}"
    );
    let deferred = damage_body(&broker, "message-0000|");
    let active = damage_body(&broker, "message-0010|");
    println!("damaged the deferred message in {deferred} and message {DAMAGED} in {active}");

    broker.restart();
    let out = broker.run_python("damaged_body.py", &[QUEUE, "check", COUNT, DAMAGED]);
    println!("{out}");
    assert!(
        broker.log_tail(400).contains("damaged"),
        "the broker reports the damage in its log"
    );
}
