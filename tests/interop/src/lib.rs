//! Test harness for the interop suites: starts a real `busbar` process on free loopback ports
//! with a throwaway data directory, and runs the Python and JS scenario scripts against it.
//!
//! This crate is test support only. Its functions panic with a readable report (the script's
//! output and the tail of the broker's log) instead of returning errors, because every caller is
//! a `#[test]` and a panic is how a test fails. It must not grow an HTTP or AMQP client of its
//! own: the point of the suites is that official SDKs and a generic AMQP client do the talking.

use std::ffi::OsString;
use std::fmt::Write as _;
use std::fs::{self, File, OpenOptions};
use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use tempfile::TempDir;

/// How long a broker gets to answer `GET /health` with 200 after being spawned.
pub const READY_TIMEOUT: Duration = Duration::from_secs(20);
/// How long a graceful stop (SIGTERM) may take before the broker is killed.
pub const STOP_TIMEOUT: Duration = Duration::from_secs(15);
/// Default limit for one scenario script.
pub const SCRIPT_TIMEOUT: Duration = Duration::from_secs(120);
/// Lines of broker log quoted in failure reports.
const LOG_TAIL_LINES: usize = 80;

/// Shared access key the broker accepts by default on loopback when none is configured.
pub const DEFAULT_KEY_NAME: &str = "RootManageSharedAccessKey";
pub const DEFAULT_KEY: &str = "SAS_KEY_VALUE";

const SETUP_HINT: &str = "run .ci/run (or .ci/setup) to install the SDKs";

/// Root of the repository (two levels above this crate).
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Directory holding this crate's Python scenario scripts.
pub fn python_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("python")
}

/// Directory holding this crate's JS scenario scripts and their `node_modules`.
pub fn js_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("js")
}

/// Locates the `busbar` binary next to the test executable's profile directory
/// (`target/<profile>/deps/<test>` → `target/<profile>/busbar`). `BUSBAR_BIN` overrides it.
pub fn busbar_binary() -> PathBuf {
    if let Some(explicit) = std::env::var_os("BUSBAR_BIN") {
        let path = PathBuf::from(explicit);
        assert!(
            path.is_file(),
            "BUSBAR_BIN points at {}, which is not a file",
            path.display()
        );
        return path;
    }
    let exe = std::env::current_exe().expect("current_exe of the test binary");
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("test executable lives in target/<profile>/deps");
    let candidate = profile_dir.join(format!("busbar{}", std::env::consts::EXE_SUFFIX));
    assert!(
        candidate.is_file(),
        "busbar binary not found at {}. `cargo nextest run --workspace` builds it; when running \
         only this crate, build it first with `cargo build -p busbar` (same profile).",
        candidate.display()
    );
    candidate
}

/// One queue in an emulator-format `Config.json`.
#[derive(Clone, Debug)]
pub struct QueueSpec {
    pub name: String,
    pub lock_duration: String,
    pub max_delivery_count: u32,
    pub default_message_time_to_live: String,
    /// `Status`: Active, Disabled, SendDisabled or ReceiveDisabled.
    pub status: String,
    pub requires_session: bool,
}

impl QueueSpec {
    /// A plain queue: 1 minute locks, 10 deliveries, 1 hour TTL.
    pub fn new(name: &str) -> Self {
        Self {
            name: name.to_owned(),
            lock_duration: "PT1M".to_owned(),
            max_delivery_count: 10,
            default_message_time_to_live: "PT1H".to_owned(),
            status: "Active".to_owned(),
            requires_session: false,
        }
    }

    pub fn requires_session(mut self) -> Self {
        self.requires_session = true;
        self
    }

    pub fn status(mut self, status: &str) -> Self {
        status.clone_into(&mut self.status);
        self
    }

    pub fn lock_duration(mut self, iso8601: &str) -> Self {
        iso8601.clone_into(&mut self.lock_duration);
        self
    }

    pub fn max_delivery_count(mut self, count: u32) -> Self {
        self.max_delivery_count = count;
        self
    }
}

/// Builds a Config.json in the format of Microsoft's Service Bus emulator, namespace
/// `sbemulatorns`, with the given queues and no topics.
pub fn emulator_config(queues: &[QueueSpec]) -> String {
    let mut queue_json = Vec::with_capacity(queues.len());
    for queue in queues {
        queue_json.push(format!(
            r#"{{"Name":"{name}","Properties":{{"DeadLetteringOnMessageExpiration":false,"DefaultMessageTimeToLive":"{ttl}","DuplicateDetectionHistoryTimeWindow":"PT20S","ForwardDeadLetteredMessagesTo":"","ForwardTo":"","LockDuration":"{lock}","MaxDeliveryCount":{mdc},"RequiresDuplicateDetection":false,"RequiresSession":{sessions},"Status":"{status}"}}}}"#,
            name = queue.name,
            ttl = queue.default_message_time_to_live,
            lock = queue.lock_duration,
            mdc = queue.max_delivery_count,
            status = queue.status,
            sessions = queue.requires_session,
        ));
    }
    format!(
        r#"{{"UserConfig":{{"Namespaces":[{{"Name":"sbemulatorns","Queues":[{}],"Topics":[]}}],"Logging":{{"Type":"File"}}}}}}"#,
        queue_json.join(",")
    )
}

/// A loopback port that was free a moment ago (for tests that spawn `busbar` by hand).
pub fn free_port() -> u16 {
    reserve_port().1
}

/// Reserves a free loopback port. The listener is returned so the caller can hold the port
/// until just before the broker binds it, which narrows the race with parallel tests.
fn reserve_port() -> (TcpListener, u16) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    let port = listener.local_addr().expect("local_addr").port();
    (listener, port)
}

/// A running broker process owned by one test.
pub struct Broker {
    child: Option<Child>,
    workdir: TempDir,
    amqp_port: u16,
    amqps_port: u16,
    http_port: u16,
    args: Vec<OsString>,
    binary: PathBuf,
}

impl Broker {
    /// Starts `busbar serve` with an optional emulator Config.json and extra CLI arguments, and
    /// waits until `/health` answers 200.
    pub fn start(config_json: Option<&str>, extra_args: &[&str]) -> Broker {
        Self::start_binary(busbar_binary(), config_json, extra_args)
    }

    /// [`Broker::start`] with the AMQP and AMQPS listeners on every address (0.0.0.0), where
    /// only TLS is served unless `--allow-plaintext`; HTTP stays on loopback. Exposed
    /// listeners need a key: the development key is given explicitly.
    pub fn start_exposed(config_json: Option<&str>, extra_args: &[&str]) -> Broker {
        let mut args = vec!["--sas-key", DEFAULT_KEY];
        args.extend_from_slice(extra_args);
        Self::start_on(busbar_binary(), "0.0.0.0", config_json, &args)
    }

    /// [`Broker::start`] with an explicit executable (the harness's own tests use a stand-in).
    pub fn start_binary(binary: PathBuf, config_json: Option<&str>, extra_args: &[&str]) -> Broker {
        Self::start_on(binary, "127.0.0.1", config_json, extra_args)
    }

    fn start_on(
        binary: PathBuf,
        amqp_host: &str,
        config_json: Option<&str>,
        extra_args: &[&str],
    ) -> Broker {
        let workdir = tempfile::Builder::new()
            .prefix("busbar-interop-")
            .tempdir()
            .expect("create temp dir");
        let data_dir = workdir.path().join("data");
        fs::create_dir_all(&data_dir).expect("create data dir");

        let (amqp_reservation, amqp_port) = reserve_port();
        let (amqps_reservation, amqps_port) = reserve_port();
        let (http_reservation, http_port) = reserve_port();

        let mut args: Vec<OsString> = vec![
            "serve".into(),
            "--data-dir".into(),
            data_dir.into_os_string(),
            "--amqp-listen".into(),
            format!("{amqp_host}:{amqp_port}").into(),
            "--amqps-listen".into(),
            format!("{amqp_host}:{amqps_port}").into(),
            "--http-listen".into(),
            format!("127.0.0.1:{http_port}").into(),
        ];
        if let Some(config) = config_json {
            let config_path = workdir.path().join("Config.json");
            fs::write(&config_path, config).expect("write Config.json");
            args.push("--config".into());
            args.push(config_path.into_os_string());
        }
        args.extend(extra_args.iter().map(OsString::from));

        let mut broker = Broker {
            child: None,
            workdir,
            amqp_port,
            amqps_port,
            http_port,
            args,
            binary,
        };
        drop(amqp_reservation);
        drop(amqps_reservation);
        drop(http_reservation);
        broker.spawn_and_wait();
        broker
    }

    fn log_path(&self) -> PathBuf {
        self.workdir.path().join("busbar.log")
    }

    fn spawn_and_wait(&mut self) {
        let mut log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path())
            .expect("open broker log");
        writeln!(
            log,
            "=== harness: starting {} {:?}",
            self.binary.display(),
            self.args
        )
        .expect("write broker log");
        let stderr_log = log.try_clone().expect("clone log handle");
        let child = Command::new(&self.binary)
            .args(&self.args)
            .env("RUST_BACKTRACE", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::from(log))
            .stderr(Stdio::from(stderr_log))
            .spawn()
            .unwrap_or_else(|error| panic!("failed to spawn {}: {error}", self.binary.display()));
        self.child = Some(child);
        self.wait_ready();
    }

    fn wait_ready(&mut self) {
        let deadline = Instant::now() + READY_TIMEOUT;
        let mut last_problem = String::from("no attempt yet");
        loop {
            if let Some(status) = self.try_exit_status() {
                self.fail(&format!(
                    "busbar exited with {status} before becoming ready (last health probe: {last_problem})"
                ));
            }
            match health_status(self.http_port) {
                Ok(200) => return,
                Ok(code) => last_problem = format!("GET /health answered {code}"),
                Err(error) => last_problem = error,
            }
            if Instant::now() >= deadline {
                self.fail(&format!(
                    "busbar did not answer GET /health with 200 within {READY_TIMEOUT:?} (last probe: {last_problem})"
                ));
            }
            thread::sleep(Duration::from_millis(100));
        }
    }

    fn try_exit_status(&mut self) -> Option<ExitStatus> {
        self.child
            .as_mut()
            .and_then(|child| child.try_wait().ok().flatten())
    }

    /// The broker process's resident memory now, from `/proc`.
    pub fn rss_bytes(&self) -> u64 {
        let pid = self
            .child
            .as_ref()
            .map(Child::id)
            .unwrap_or_else(|| self.fail("the broker is not running"));
        let status = fs::read_to_string(format!("/proc/{pid}/status"))
            .unwrap_or_else(|error| self.fail(&format!("read /proc/{pid}/status: {error}")));
        status
            .lines()
            .find_map(|line| line.strip_prefix("VmRSS:"))
            .and_then(|kib| kib.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            .map(|kib| kib * 1024)
            .unwrap_or_else(|| self.fail("no VmRSS in /proc/<pid>/status"))
    }

    /// Panics with `message` and the tail of the broker log.
    pub fn fail(&self, message: &str) -> ! {
        panic!(
            "{message}\n--- busbar log tail ({}) ---\n{}",
            self.log_path().display(),
            self.log_tail(LOG_TAIL_LINES)
        );
    }

    /// The last `lines` lines of the broker's combined stdout/stderr.
    pub fn log_tail(&self, lines: usize) -> String {
        tail_of_file(&self.log_path(), lines)
    }

    pub fn amqp_port(&self) -> u16 {
        self.amqp_port
    }

    /// The TLS-only listener.
    pub fn amqps_port(&self) -> u16 {
        self.amqps_port
    }

    /// The development CA the broker made in its data directory (when started without
    /// `--tls-cert`): what clients trust to verify its certificate.
    pub fn dev_ca(&self) -> PathBuf {
        self.data_dir().join("tls/dev-ca.pem")
    }

    pub fn http_port(&self) -> u16 {
        self.http_port
    }

    pub fn amqp_addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.amqp_port))
    }

    /// The HTTP listener, as `busbar queues --http` and the scripts that call the API take it.
    /// Sends one HTTP/1.1 request to the HTTP port, with `Authorization: token` when given;
    /// returns the status code and the body.
    pub fn http_request(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: &str,
    ) -> (u16, String) {
        let mut stream = TcpStream::connect(self.http_addr()).expect("connect to the HTTP port");
        let header = token
            .map(|value| format!("Authorization: {value}\r\n"))
            .unwrap_or_default();
        write!(
            stream,
            "{method} {path} HTTP/1.1\r\nHost: localhost\r\n{header}Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        )
        .expect("write the request");
        let mut response = String::new();
        stream
            .read_to_string(&mut response)
            .expect("read the response");
        let (head, body) = response.split_once("\r\n\r\n").unwrap_or((&response, ""));
        let status = head
            .split_whitespace()
            .nth(1)
            .and_then(|code| code.parse().ok())
            .unwrap_or_else(|| panic!("no status line in {response:?}"));
        (status, body.to_owned())
    }

    pub fn http_addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.http_port))
    }

    /// The executable this broker runs.
    pub fn binary(&self) -> &Path {
        &self.binary
    }

    /// Runs this broker's executable with `args` (a client subcommand such as `queues`), killed
    /// after [`SCRIPT_TIMEOUT`]. Success is not required: the caller checks the outcome.
    pub fn run_cli(&self, args: &[&str]) -> ProcessOutcome {
        run_with_timeout(Command::new(&self.binary).args(args), SCRIPT_TIMEOUT)
    }

    pub fn data_dir(&self) -> PathBuf {
        self.workdir.path().join("data")
    }

    /// The connection string the SDKs use, with the default development key.
    pub fn conn_str(&self) -> String {
        self.conn_str_with_key(DEFAULT_KEY_NAME, DEFAULT_KEY)
    }

    /// [`Broker::conn_str`] without the emulator flag: the SDKs then speak TLS.
    pub fn tls_conn_str(&self) -> String {
        self.conn_str().replace(";UseDevelopmentEmulator=true", "")
    }

    pub fn conn_str_with_key(&self, key_name: &str, key: &str) -> String {
        format!(
            "Endpoint=sb://127.0.0.1:{};SharedAccessKeyName={key_name};SharedAccessKey={key};UseDevelopmentEmulator=true",
            self.amqp_port
        )
    }

    /// Whether `/health` currently answers 200.
    pub fn is_healthy(&self) -> bool {
        matches!(health_status(self.http_port), Ok(200))
    }

    /// The broker process's id, for scripts that signal it themselves.
    pub fn pid(&self) -> u32 {
        self.child
            .as_ref()
            .map(Child::id)
            .unwrap_or_else(|| self.fail("the broker is not running"))
    }

    /// Runs a Python script that takes no connection string (`args` only); it must exit 0.
    pub fn run_python_args(&self, script: &str, args: &[&str]) -> String {
        match run_python(script, args, &[]) {
            Ok(output) => output,
            Err(report) => self.fail(&report),
        }
    }

    /// SIGHUP: the broker reloads its TLS certificate.
    pub fn hangup(&self) {
        let Some(child) = self.child.as_ref() else {
            self.fail("hangup() called on a broker that is not running");
        };
        let sent = Command::new("kill")
            .args(["-HUP", &child.id().to_string()])
            .status();
        if !matches!(sent, Ok(status) if status.success()) {
            self.fail(&format!("could not send SIGHUP to busbar ({sent:?})"));
        }
        self.append_log_marker("sent SIGHUP");
    }

    /// SIGKILL: no chance to flush anything that was not already durable.
    pub fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        self.append_log_marker("killed with SIGKILL");
    }

    /// Starts the broker again with the same data directory, ports and arguments.
    pub fn restart(&mut self) {
        assert!(
            self.child.is_none(),
            "restart() needs the broker stopped first (kill9 or stop)"
        );
        self.spawn_and_wait();
    }

    /// SIGTERM, then waits for the process to exit. Returns its exit status; panics if it does
    /// not exit within [`STOP_TIMEOUT`].
    pub fn stop(&mut self) -> ExitStatus {
        let Some(mut child) = self.child.take() else {
            self.fail("stop() called on a broker that is not running");
        };
        let pid = child.id().to_string();
        let sent = Command::new("kill").args(["-TERM", &pid]).status();
        if !matches!(sent, Ok(status) if status.success()) {
            let _ = child.kill();
            let _ = child.wait();
            self.fail(&format!("could not send SIGTERM to busbar ({sent:?})"));
        }
        let deadline = Instant::now() + STOP_TIMEOUT;
        loop {
            match child.try_wait() {
                Ok(Some(status)) => {
                    self.append_log_marker(&format!("stopped with SIGTERM: {status}"));
                    return status;
                }
                Ok(None) if Instant::now() < deadline => thread::sleep(Duration::from_millis(50)),
                _ => {
                    let _ = child.kill();
                    let _ = child.wait();
                    self.fail(&format!(
                        "busbar did not exit within {STOP_TIMEOUT:?} of SIGTERM"
                    ));
                }
            }
        }
    }

    fn append_log_marker(&self, what: &str) {
        if let Ok(mut log) = OpenOptions::new().append(true).open(self.log_path()) {
            let _ = writeln!(log, "=== harness: {what}");
        }
    }

    /// Runs a Python scenario script with `.venv/bin/python`. The script receives the broker's
    /// connection string as argv[1] followed by `args`; it must exit 0.
    pub fn run_python(&self, script: &str, args: &[&str]) -> String {
        self.run_python_with(script, &self.conn_str(), args, &[])
    }

    /// Like [`Broker::run_python`] with an explicit connection string and extra environment.
    pub fn run_python_with(
        &self,
        script: &str,
        conn_str: &str,
        args: &[&str],
        env: &[(&str, &str)],
    ) -> String {
        let mut full_args = vec![conn_str];
        full_args.extend_from_slice(args);
        match run_python(script, &full_args, env) {
            Ok(output) => output,
            Err(report) => self.fail(&report),
        }
    }

    /// Runs a JS scenario script (`tests/interop/js/<script>`) with node. Same conventions as
    /// [`Broker::run_python`].
    pub fn run_node(&self, script: &str, args: &[&str]) -> String {
        self.run_node_with(script, &self.conn_str(), args, &[])
    }

    pub fn run_node_with(
        &self,
        script: &str,
        conn_str: &str,
        args: &[&str],
        env: &[(&str, &str)],
    ) -> String {
        let mut full_args = vec![conn_str];
        full_args.extend_from_slice(args);
        match run_node(script, &full_args, env) {
            Ok(output) => output,
            Err(report) => self.fail(&report),
        }
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// One plain-HTTP `GET /health`, written by hand so the harness needs no HTTP client.
fn health_status(port: u16) -> Result<u16, String> {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_millis(500))
        .map_err(|error| format!("connect to {addr}: {error}"))?;
    let timeout = Some(Duration::from_secs(2));
    stream
        .set_read_timeout(timeout)
        .and_then(|()| stream.set_write_timeout(timeout))
        .map_err(|error| format!("socket timeouts: {error}"))?;
    stream
        .write_all(
            format!("GET /health HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n")
                .as_bytes(),
        )
        .map_err(|error| format!("write request: {error}"))?;
    let mut response = Vec::new();
    let mut buf = [0u8; 512];
    // The status line is all we need; stop reading once it is complete.
    while !response.contains(&b'\n') {
        match stream.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => response.extend_from_slice(&buf[..n]),
            Err(error) => return Err(format!("read response: {error}")),
        }
    }
    let _ = stream.shutdown(Shutdown::Both);
    let text = String::from_utf8_lossy(&response);
    let status_line = text.lines().next().unwrap_or_default();
    let mut parts = status_line.split_whitespace();
    match (parts.next(), parts.next().map(str::parse::<u16>)) {
        (Some(version), Some(Ok(code))) if version.starts_with("HTTP/") => Ok(code),
        _ => Err(format!("not an HTTP response: {status_line:?}")),
    }
}

/// Output and exit status of a child process run to completion (or killed at the timeout).
pub struct ProcessOutcome {
    /// `None` when the process was killed at the timeout.
    pub status: Option<ExitStatus>,
    /// stdout and stderr, interleaved as written.
    pub output: String,
    pub elapsed: Duration,
}

/// Runs `command` with stdout and stderr captured into one temp file, killing it at `timeout`.
pub fn run_with_timeout(command: &mut Command, timeout: Duration) -> ProcessOutcome {
    let capture = tempfile::NamedTempFile::new().expect("create capture file");
    // One open file description for both streams, so their writes share an offset and
    // interleave instead of overwriting each other.
    let stdout = capture.reopen().expect("reopen capture file");
    let stderr = stdout.try_clone().expect("clone capture handle");
    let started = Instant::now();
    let mut child = command
        .stdin(Stdio::null())
        .stdout(Stdio::from(stdout))
        .stderr(Stdio::from(stderr))
        .spawn()
        .unwrap_or_else(|error| panic!("failed to spawn {command:?}: {error}"));
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break Some(status),
            Ok(None) if started.elapsed() < timeout => thread::sleep(Duration::from_millis(50)),
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                break None;
            }
        }
    };
    let mut output = String::new();
    if let Ok(mut file) = File::open(capture.path()) {
        let mut bytes = Vec::new();
        let _ = file.read_to_end(&mut bytes);
        output = String::from_utf8_lossy(&bytes).into_owned();
    }
    ProcessOutcome {
        status,
        output,
        elapsed: started.elapsed(),
    }
}

fn describe_failure(what: &str, outcome: &ProcessOutcome, timeout: Duration) -> String {
    let mut report = String::new();
    match outcome.status {
        Some(status) => {
            let _ = write!(report, "{what} failed with {status}");
        }
        None => {
            let _ = write!(report, "{what} timed out after {timeout:?} and was killed");
        }
    }
    let _ = write!(
        report,
        " (ran {:.1?})\n--- script output ---\n{}",
        outcome.elapsed, outcome.output
    );
    report
}

/// Path of the project's virtualenv Python; panics with the setup hint when missing.
pub fn venv_python() -> PathBuf {
    let python = repo_root().join(".venv/bin/python");
    assert!(
        python.is_file(),
        "{} not found: {SETUP_HINT}",
        python.display()
    );
    python
}

/// Runs `tests/interop/python/<script>` with the virtualenv's Python. `Err` carries a report
/// with the exit status and everything the script printed.
pub fn run_python(script: &str, args: &[&str], env: &[(&str, &str)]) -> Result<String, String> {
    let python = venv_python();
    let script_path = python_dir().join(script);
    assert!(
        script_path.is_file(),
        "missing script {}",
        script_path.display()
    );
    let mut command = Command::new(python);
    command
        .arg("-u")
        .arg(&script_path)
        .args(args)
        .current_dir(python_dir())
        .env("PYTHONDONTWRITEBYTECODE", "1");
    for (key, value) in env {
        command.env(key, value);
    }
    let outcome = run_with_timeout(&mut command, SCRIPT_TIMEOUT);
    match outcome.status {
        Some(status) if status.success() => Ok(outcome.output),
        _ => Err(describe_failure(
            &format!("python {script}"),
            &outcome,
            SCRIPT_TIMEOUT,
        )),
    }
}

/// Runs `tests/interop/js/<script>` with node; same conventions as [`run_python`].
pub fn run_node(script: &str, args: &[&str], env: &[(&str, &str)]) -> Result<String, String> {
    let sdk = js_dir().join("node_modules/@azure/service-bus");
    assert!(sdk.is_dir(), "{} not found: {SETUP_HINT}", sdk.display());
    let script_path = js_dir().join(script);
    assert!(
        script_path.is_file(),
        "missing script {}",
        script_path.display()
    );
    let mut command = Command::new("node");
    command.arg(&script_path).args(args).current_dir(js_dir());
    for (key, value) in env {
        command.env(key, value);
    }
    let outcome = run_with_timeout(&mut command, SCRIPT_TIMEOUT);
    match outcome.status {
        Some(status) if status.success() => Ok(outcome.output),
        _ => Err(describe_failure(
            &format!("node {script}"),
            &outcome,
            SCRIPT_TIMEOUT,
        )),
    }
}

fn tail_of_file(path: &Path, lines: usize) -> String {
    let Ok(bytes) = fs::read(path) else {
        return format!("(no log at {})", path.display());
    };
    let text = String::from_utf8_lossy(&bytes);
    let all: Vec<&str> = text.lines().collect();
    let start = all.len().saturating_sub(lines);
    all.get(start..).unwrap_or_default().join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emulator_config_carries_queue_properties() {
        let config = emulator_config(&[
            QueueSpec::new("alpha"),
            QueueSpec::new("beta")
                .lock_duration("PT5S")
                .max_delivery_count(3),
        ]);
        assert!(config.starts_with(r#"{"UserConfig":{"Namespaces":[{"Name":"sbemulatorns""#));
        assert!(config.contains(r#""Name":"alpha","Properties":{"#));
        assert!(config.contains(r#""LockDuration":"PT5S","MaxDeliveryCount":3"#));
        assert!(config.contains(r#""LockDuration":"PT1M","MaxDeliveryCount":10"#));
        assert!(config.ends_with(r#""Topics":[]}],"Logging":{"Type":"File"}}}"#));
    }

    #[test]
    fn health_probe_reads_status_line_from_a_hand_written_server() {
        let (listener, port) = reserve_port();
        let server = thread::spawn(move || {
            let (mut socket, _) = listener.accept().expect("accept");
            let mut request = [0u8; 256];
            let _ = socket.read(&mut request);
            socket
                .write_all(b"HTTP/1.1 503 Service Unavailable\r\ncontent-length: 0\r\n\r\n")
                .expect("write");
        });
        assert_eq!(health_status(port), Ok(503));
        server.join().expect("server thread");
    }

    #[test]
    fn health_probe_reports_refused_connection() {
        let (listener, port) = reserve_port();
        drop(listener);
        let result = health_status(port);
        assert!(result.is_err(), "expected an error, got {result:?}");
    }

    #[test]
    fn run_with_timeout_kills_a_hung_process() {
        let outcome = run_with_timeout(
            Command::new("sh").args(["-c", "echo started; sleep 30"]),
            Duration::from_millis(300),
        );
        assert!(outcome.status.is_none());
        assert!(outcome.output.contains("started"));
        assert!(outcome.elapsed < Duration::from_secs(10));
    }
}
