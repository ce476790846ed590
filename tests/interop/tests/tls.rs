//! TLS on the broker's listeners, driven by the official SDKs and Python's `requests`: the
//! AMQP port recognises TLS (AMQP or HTTPS inside) and HTTP by their first bytes, the AMQPS
//! port serves TLS only, the HTTP port serves HTTP and HTTPS; the certificate comes from the
//! development CA the broker makes in its data directory (`busbar dev-cert` prints it).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use busbar_interop::{Broker, QueueSpec, busbar_binary, emulator_config, run_with_timeout};

fn broker(queue: &str, extra_args: &[&str]) -> Broker {
    Broker::start(Some(&emulator_config(&[QueueSpec::new(queue)])), extra_args)
}

#[test]
fn python_sends_and_receives_over_tls_on_the_amqps_and_the_amqp_port() {
    let broker = broker("secure", &[]);
    let ca = broker.dev_ca().display().to_string();
    for port in [broker.amqps_port(), broker.amqp_port()] {
        broker.run_python_with(
            "tls_send_receive.py",
            &broker.tls_conn_str(),
            &["secure", &ca, &port.to_string()],
            &[],
        );
    }
}

#[test]
fn js_sends_and_receives_over_tls_trusting_the_dev_ca() {
    let queues = [QueueSpec::new("via-amqps"), QueueSpec::new("via-amqp")];
    let broker = Broker::start(Some(&emulator_config(&queues)), &[]);
    let ca = broker.dev_ca().display().to_string();
    for (queue, port) in [
        ("via-amqps", broker.amqps_port()),
        ("via-amqp", broker.amqp_port()),
    ] {
        // Without the emulator flag the JS SDK dials the Endpoint's port with TLS.
        let conn = broker
            .tls_conn_str()
            .replace(&format!(":{};", broker.amqp_port()), &format!(":{port};"));
        broker.run_node_with(
            "send_receive_roundtrip.mjs",
            &conn,
            &[queue],
            &[("NODE_EXTRA_CA_CERTS", &ca)],
        );
    }
}

#[test]
fn https_and_http_on_every_port_verified_with_the_dev_cert_output() {
    let broker = broker("unused", &[]);
    let printed = broker.run_cli(&[
        "dev-cert",
        "--data-dir",
        &broker.data_dir().display().to_string(),
    ]);
    assert!(
        matches!(printed.status, Some(status) if status.success()),
        "busbar dev-cert failed: {}",
        printed.output
    );
    assert!(
        printed.output.starts_with("-----BEGIN CERTIFICATE-----"),
        "{}",
        printed.output
    );
    let ca = tempfile::NamedTempFile::new().expect("temp file");
    std::fs::write(ca.path(), &printed.output).expect("write CA");
    let (amqp, amqps, http) = (broker.amqp_port(), broker.amqps_port(), broker.http_port());
    broker.run_python_args(
        "tls_https.py",
        &[
            &ca.path().display().to_string(),
            &format!("https:{amqp}"),
            &format!("https:{amqps}"),
            &format!("https:{http}"),
            &format!("http:{amqp}"),
            &format!("http:{http}"),
        ],
    );
}

#[test]
fn plaintext_is_refused_on_a_non_loopback_address_unless_allowed() {
    let config = emulator_config(&[QueueSpec::new("exposed")]);
    let refusing = Broker::start_exposed(Some(&config), &[]);
    let ca = refusing.dev_ca().display().to_string();
    let port = refusing.amqp_port().to_string();
    refusing.run_python("tls_plaintext.py", &["exposed", &ca, &port, "refused"]);
    assert!(
        refusing.log_tail(40).contains("plain AMQP refused"),
        "the refusal is logged"
    );

    let allowing = Broker::start_exposed(Some(&config), &["--allow-plaintext"]);
    let ca = allowing.dev_ca().display().to_string();
    let port = allowing.amqp_port().to_string();
    allowing.run_python("tls_plaintext.py", &["exposed", &ca, &port, "allowed"]);
}

/// A development CA and the server certificate it signed, made by `busbar dev-cert` in `dir`.
struct CertificateSet {
    ca: PathBuf,
    cert: PathBuf,
    key: PathBuf,
}

fn certificate_set(dir: &Path) -> CertificateSet {
    let made = run_with_timeout(
        std::process::Command::new(busbar_binary())
            .args(["dev-cert", "--data-dir"])
            .arg(dir),
        Duration::from_secs(60),
    );
    assert!(
        matches!(made.status, Some(status) if status.success()),
        "busbar dev-cert: {}",
        made.output
    );
    let tls = dir.join("tls");
    CertificateSet {
        ca: tls.join("dev-ca.pem"),
        cert: tls.join("dev-server.pem"),
        key: tls.join("dev-server-key.pem"),
    }
}

#[test]
fn a_reloaded_certificate_reaches_new_connections_while_open_ones_keep_working() {
    let fixtures = tempfile::tempdir().expect("temp dir");
    let old = certificate_set(&fixtures.path().join("old"));
    let new = certificate_set(&fixtures.path().join("new"));
    let served_cert = fixtures.path().join("served.pem");
    let served_key = fixtures.path().join("served-key.pem");
    std::fs::copy(&old.cert, &served_cert).expect("copy cert");
    std::fs::copy(&old.key, &served_key).expect("copy key");
    let bundle = fixtures.path().join("both-cas.pem");
    let cas = [old.ca.as_path(), new.ca.as_path()]
        .map(|ca| std::fs::read_to_string(ca).expect("read CA"))
        .concat();
    std::fs::write(&bundle, cas).expect("write CA bundle");

    let text = |path: &Path| path.display().to_string();
    let broker = broker(
        "reloaded",
        &[
            "--tls-cert",
            &text(&served_cert),
            "--tls-key",
            &text(&served_key),
        ],
    );
    let port = broker.amqps_port().to_string();
    broker.run_python_with(
        "tls_reload.py",
        &broker.tls_conn_str(),
        &[
            "reloaded",
            &port,
            &broker.pid().to_string(),
            &text(&served_cert),
            &text(&served_key),
            &text(&new.cert),
            &text(&new.key),
            &text(&bundle),
        ],
        &[],
    );

    // A reload that fails keeps the certificate in use, and says why.
    std::fs::write(&served_key, "not a key").expect("spoil the key");
    broker.hangup();
    let deadline = Instant::now() + Duration::from_secs(30);
    while !broker
        .log_tail(20)
        .contains("TLS certificate reload failed")
    {
        assert!(Instant::now() < deadline, "no failed reload logged");
        std::thread::sleep(Duration::from_millis(100));
    }
    broker.run_python_args(
        "tls_served_certificate.py",
        &[&port, &text(&new.cert), &text(&bundle)],
    );
}

#[test]
fn python_admin_and_data_clients_share_one_connection_string() {
    let broker = broker("shared", &[]);
    let ca = broker.dev_ca().display().to_string();
    let port = broker.amqp_port().to_string();
    broker.run_python("tls_one_connection_string.py", &["shared", &ca, &port]);
}

#[test]
fn js_admin_and_data_clients_share_one_connection_string() {
    let broker = broker("shared", &[]);
    let ca = broker.dev_ca().display().to_string();
    broker.run_node_with(
        "tls_one_connection_string.mjs",
        &broker.tls_conn_str(),
        &["shared"],
        &[("NODE_EXTRA_CA_CERTS", &ca)],
    );
}

/// AMQP over secure WebSockets (wss) on every entry that takes TLS: the WebSocket route is
/// the HTTP router's, which every listener serves inside TLS.
#[test]
fn websockets_over_tls_on_every_entry() {
    // Room for the scenario's 400 KB message.
    let broker = broker("orders", &["--max-message-size", "1048576"]);
    let ca = broker.dev_ca().display().to_string();
    let conn = broker.tls_conn_str();
    for port in [broker.amqp_port(), broker.amqps_port(), broker.http_port()] {
        let endpoint = format!("sb://127.0.0.1:{port}");
        broker.run_python_with(
            "websocket_send_receive.py",
            &conn,
            &["orders", &endpoint, &ca],
            &[],
        );
    }
    // The JS SDK dials wss:// on the Endpoint's port: the AMQP port, or the HTTP port's HTTPS.
    let http_conn = conn.replace(
        &format!(":{};", broker.amqp_port()),
        &format!(":{};", broker.http_port()),
    );
    for conn in [&conn, &http_conn] {
        broker.run_node_with(
            "websocket_send_receive.mjs",
            conn,
            &["orders"],
            &[("NODE_EXTRA_CA_CERTS", &ca)],
        );
    }
}
