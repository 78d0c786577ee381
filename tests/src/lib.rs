//! The end-to-end harness. Every server a test needs is a real process on a
//! free loopback port with its own temporary directory: etcd (Debian's
//! `etcd-server`), the brokers (`weir dev-kafka`, `tansu` with its SQLite
//! engine), `weir-coordinator`, `weir-runner` and `weir standalone`. Each
//! process is killed when its handle drops. Waiting is by polling a
//! condition against a deadline, never by sleeping a fixed time.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::fs::File;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use tempfile::TempDir;

pub mod scale;

/// A port nothing listens on right now.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Polls `condition` every 100 ms until it holds; panics after `timeout`.
pub fn wait_until(timeout: Duration, what: &str, mut condition: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !condition() {
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A workspace binary, built before the tests run (`cargo build --bins`).
pub fn binary(name: &str) -> PathBuf {
    if let Ok(dir) = std::env::var("WEIR_BIN_DIR") {
        return Path::new(&dir).join(name);
    }
    // target/<profile>/deps/<test exe> → target/<profile>/<name>; a binary
    // of this crate sits in target/<profile> itself.
    let exe = std::env::current_exe().unwrap();
    let beside = exe.parent().unwrap().join(name);
    if beside.exists() {
        return beside;
    }
    let path = exe.parent().unwrap().parent().unwrap().join(name);
    assert!(
        path.exists(),
        "{} is missing: run `cargo build --bins` first",
        path.display()
    );
    path
}

/// A child process whose output goes to a log file; killed on drop.
pub struct Process {
    pub name: String,
    child: Option<Child>,
    pub log: PathBuf,
}

impl Process {
    pub fn spawn(name: &str, command: &mut Command, log: PathBuf) -> Process {
        let out = File::create(&log).unwrap();
        let err = out.try_clone().unwrap();
        let child = command
            .stdin(Stdio::null())
            .stdout(Stdio::from(out))
            .stderr(Stdio::from(err))
            .env(
                "RUST_LOG",
                std::env::var("WEIR_TEST_LOG").unwrap_or_else(|_| "info".into()),
            )
            .env("NO_COLOR", "1")
            .spawn()
            .unwrap_or_else(|e| panic!("starting {name}: {e}"));
        Process {
            name: name.to_owned(),
            child: Some(child),
            log,
        }
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The process id (0 once it was stopped).
    pub fn pid(&self) -> u32 {
        self.child.as_ref().map_or(0, Child::id)
    }

    /// SIGKILL, as `kill -9`.
    pub fn kill_hard(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// SIGTERM, then wait for a clean exit.
    pub fn terminate(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = Command::new("kill")
                .arg("-TERM")
                .arg(child.id().to_string())
                .status();
            let deadline = Instant::now() + Duration::from_secs(15);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = child.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = child.kill();
            let _ = child.wait();
            panic!("{} did not stop on SIGTERM", self.name);
        }
    }

    /// Sends a signal by name (`STOP`, `CONT`, ...).
    pub fn signal(&self, name: &str) {
        let status = Command::new("kill")
            .arg(format!("-{name}"))
            .arg(self.pid().to_string())
            .status()
            .unwrap();
        assert!(status.success(), "kill -{name} {}", self.name);
    }

    pub fn is_running(&mut self) -> bool {
        matches!(self.child.as_mut().map(Child::try_wait), Some(Ok(None)))
    }

    /// Waits for a line containing `needle` in the log and returns it.
    pub fn wait_for_log(&mut self, needle: &str, timeout: Duration) -> String {
        let mut found = None;
        wait_until(timeout, &format!("{} to log {needle:?}", self.name), || {
            found = self
                .log_text()
                .lines()
                .find(|l| l.contains(needle))
                .map(str::to_owned);
            found.is_some()
        });
        found.unwrap()
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
            if std::thread::panicking() {
                let lines = std::env::var("WEIR_TEST_LOG_TAIL")
                    .ok()
                    .and_then(|n| n.parse().ok())
                    .unwrap_or(60);
                eprintln!("---- log of {} ----\n{}", self.name, tail(&self.log, lines));
            }
        }
    }
}

fn tail(path: &Path, lines: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// Waits until something accepts connections on `port`.
pub fn wait_for_port(port: u16, what: &str) {
    wait_until(Duration::from_secs(30), what, || {
        std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
    });
}

/// etcd from Debian's `etcd-server`.
pub struct Etcd {
    pub endpoint: String,
    process: Process,
    dir: TempDir,
    client: u16,
    peer: u16,
}

impl Etcd {
    pub fn start() -> Etcd {
        // A port chosen free can be taken (by any client's outgoing
        // connection) before etcd binds it: etcd then exits, and we choose again.
        for _ in 0..5 {
            let dir = tempfile::tempdir().unwrap();
            let client = free_port();
            let peer = free_port();
            if let Some(process) = Etcd::try_spawn(dir.path(), client, peer) {
                return Etcd {
                    endpoint: format!("http://127.0.0.1:{client}"),
                    process,
                    dir,
                    client,
                    peer,
                };
            }
        }
        panic!("etcd did not start on 5 pairs of free ports");
    }

    /// etcd listening, or `None` if it exited first (its ports were taken).
    fn try_spawn(dir: &Path, client: u16, peer: u16) -> Option<Process> {
        let mut process = Etcd::launch(dir, client, peer);
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        loop {
            if std::net::TcpStream::connect(("127.0.0.1", client)).is_ok() {
                return Some(process);
            }
            if !process.is_running() {
                return None;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "timed out after 30s waiting for etcd:\n{}",
                process.log_text()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn spawn(dir: &Path, client: u16, peer: u16) -> Process {
        let process = Etcd::launch(dir, client, peer);
        wait_for_port(client, "etcd");
        process
    }

    fn launch(dir: &Path, client: u16, peer: u16) -> Process {
        Process::spawn(
            "etcd",
            Command::new(std::env::var("WEIR_ETCD_BIN").unwrap_or_else(|_| "etcd".into()))
                .arg("--data-dir")
                .arg(dir.join("data"))
                .arg("--listen-client-urls")
                .arg(format!("http://127.0.0.1:{client}"))
                .arg("--advertise-client-urls")
                .arg(format!("http://127.0.0.1:{client}"))
                .arg("--listen-peer-urls")
                .arg(format!("http://127.0.0.1:{peer}"))
                .arg("--initial-advertise-peer-urls")
                .arg(format!("http://127.0.0.1:{peer}"))
                .arg("--initial-cluster")
                .arg(format!("default=http://127.0.0.1:{peer}")),
            dir.join("etcd.log"),
        )
    }

    /// Stops etcd (SIGKILL: an outage, not a clean stop).
    pub fn stop(&mut self) {
        self.process.kill_hard();
    }

    /// Starts it again on the same ports and data.
    pub fn restart(&mut self) {
        self.process = Etcd::spawn(self.dir.path(), self.client, self.peer);
    }
}

/// Which Kafka-protocol broker a test runs against.
pub enum Broker {
    /// `weir dev-kafka`: librdkafka's mock cluster; read back with kcat.
    Dev {
        bootstrap: String,
        _process: Process,
        _dir: TempDir,
    },
    /// tansu 0.6.0 on SQLite; read back with `tansu cat`.
    Tansu {
        bootstrap: String,
        _process: Process,
        dir: TempDir,
    },
}

impl Broker {
    pub fn dev() -> Broker {
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let mut process = Process::spawn(
            "dev-kafka",
            Command::new(binary("weir")).args(["dev-kafka", "--port", &port.to_string()]),
            dir.path().join("dev-kafka.log"),
        );
        process.wait_for_log("bootstrap.servers=", Duration::from_secs(30));
        Broker::Dev {
            bootstrap: format!("127.0.0.1:{port}"),
            _process: process,
            _dir: dir,
        }
    }

    pub fn tansu() -> Broker {
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let url = format!("tcp://127.0.0.1:{port}");
        let process = Process::spawn(
            "tansu",
            Command::new(std::env::var("WEIR_TANSU_BIN").unwrap_or_else(|_| "tansu".into()))
                .current_dir(dir.path())
                .args([
                    "broker",
                    "--listener-url",
                    &url,
                    "--advertised-listener-url",
                    &url,
                ])
                .args(["--storage-engine", "sqlite://tansu.db"]),
            dir.path().join("tansu.log"),
        );
        wait_for_port(port, "tansu");
        Broker::Tansu {
            bootstrap: format!("127.0.0.1:{port}"),
            _process: process,
            dir,
        }
    }

    pub fn bootstrap(&self) -> &str {
        match self {
            Broker::Dev { bootstrap, .. } | Broker::Tansu { bootstrap, .. } => bootstrap,
        }
    }

    /// Creates a one-partition topic. tansu does not auto-create topics; the
    /// dev broker creates them on first use.
    pub fn create_topic(&self, topic: &str) {
        self.create_topic_with(topic, 1);
    }

    /// Creates a topic with `partitions` partitions on tansu (the dev broker
    /// cannot create topics: it makes one partition on first use).
    pub fn create_topic_with(&self, topic: &str, partitions: u32) {
        if let Broker::Tansu { bootstrap, .. } = self {
            let status =
                Command::new(std::env::var("WEIR_TANSU_BIN").unwrap_or_else(|_| "tansu".into()))
                    .args([
                        "topic",
                        "create",
                        "--broker",
                        &format!("tcp://{bootstrap}"),
                        "--partitions",
                        &partitions.to_string(),
                        topic,
                    ])
                    .status()
                    .unwrap();
            assert!(status.success(), "creating topic {topic}");
        }
    }

    /// Record values of partition 0 of `topic`, read by a client independent of Weir.
    /// With kcat the bytes are exact; `tansu cat` re-encodes JSON values.
    pub fn read_values(&self, topic: &str) -> Vec<String> {
        match self {
            Broker::Dev { bootstrap, .. } => kcat(bootstrap, topic)
                .into_iter()
                .map(|r| r.value)
                .collect(),
            Broker::Tansu { bootstrap, dir, .. } => {
                let output = Command::new(
                    std::env::var("WEIR_TANSU_BIN").unwrap_or_else(|_| "tansu".into()),
                )
                .current_dir(dir.path())
                .args([
                    "cat",
                    "consume",
                    "--broker",
                    &format!("tcp://{bootstrap}"),
                    topic,
                ])
                .args(["--max-wait-time-ms", "500"])
                .output()
                .unwrap();
                let text = String::from_utf8_lossy(&output.stdout);
                let records: Value =
                    serde_json::from_str(text.trim()).unwrap_or(Value::Array(Vec::new()));
                records
                    .as_array()
                    .map(|records| records.iter().map(|r| r["value"].to_string()).collect())
                    .unwrap_or_default()
            }
        }
    }
}

/// One record as kcat printed it.
#[derive(Debug, Clone, PartialEq)]
pub struct KcatRecord {
    pub value: String,
    /// `key=value` pairs joined by `,`, as kcat's `%h` prints them.
    pub headers: String,
    /// The record's timestamp (ms).
    pub timestamp: i64,
}

/// Every record of a topic as kcat's JSON output prints it (`-J`), so values
/// and headers may hold any character.
fn kcat_json(bootstrap: &str, topic: &str) -> Vec<Value> {
    let output = Command::new("kcat")
        .args(["-b", bootstrap, "-C", "-t", topic, "-e", "-q", "-u", "-J"])
        .output()
        .expect("kcat (Debian package kcat) is required");
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter_map(|line| serde_json::from_str(line).ok())
        .collect()
}

/// Reads a whole topic with Debian's kcat.
pub fn kcat(bootstrap: &str, topic: &str) -> Vec<KcatRecord> {
    kcat_json(bootstrap, topic)
        .into_iter()
        .map(|record| {
            let headers: Vec<String> = record["headers"]
                .as_array()
                .map(|flat| {
                    flat.chunks(2)
                        .map(|pair| {
                            let text = |v: &Value| v.as_str().unwrap_or_default().to_owned();
                            format!(
                                "{}={}",
                                text(&pair[0]),
                                pair.get(1).map(text).unwrap_or_default()
                            )
                        })
                        .collect()
                })
                .unwrap_or_default();
            KcatRecord {
                value: record["payload"].as_str().unwrap_or_default().to_owned(),
                headers: headers.join(","),
                timestamp: record["ts"].as_i64().unwrap_or_default(),
            }
        })
        .collect()
}

/// Reads a whole topic with kcat as (key, value) text pairs, in order.
pub fn kcat_keyed(bootstrap: &str, topic: &str) -> Vec<(String, String)> {
    kcat_json(bootstrap, topic)
        .into_iter()
        .filter_map(|record| {
            Some((
                record["key"].as_str()?.to_owned(),
                record["payload"].as_str()?.to_owned(),
            ))
        })
        .collect()
}

/// A minimal HTTP client for the REST API; every answer is (status, body).
#[derive(Clone)]
pub struct Rest {
    pub base: String,
}

impl Rest {
    pub fn new(base: String) -> Rest {
        Rest { base }
    }

    fn send(&self, method: &str, path: &str, body: Option<&str>) -> (u16, Value) {
        let request = ureq::request(method, &format!("{}{path}", self.base))
            .set("Content-Type", "application/json")
            .timeout(Duration::from_secs(30));
        let result = match body {
            Some(body) => request.send_string(body),
            None => request.call(),
        };
        let response = match result {
            Ok(response) => response,
            Err(ureq::Error::Status(_, response)) => response,
            Err(error) => panic!("{method} {path}: {error}"),
        };
        let status = response.status();
        let text = response.into_string().unwrap();
        let json = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or(Value::String(text))
        };
        (status, json)
    }

    pub fn get(&self, path: &str) -> (u16, Value) {
        self.send("GET", path, None)
    }

    pub fn post(&self, path: &str, body: &str) -> (u16, Value) {
        self.send("POST", path, Some(body))
    }

    pub fn put(&self, path: &str, body: &str) -> (u16, Value) {
        self.send("PUT", path, Some(body))
    }

    pub fn patch(&self, path: &str, body: &str) -> (u16, Value) {
        self.send("PATCH", path, Some(body))
    }

    pub fn put_empty(&self, path: &str) -> (u16, Value) {
        self.send("PUT", path, None)
    }

    pub fn delete(&self, path: &str) -> (u16, Value) {
        self.send("DELETE", path, None)
    }

    /// Whether the connector and all its tasks report `state`.
    pub fn all_in_state(&self, connector: &str, state: &str) -> bool {
        let (status, body) = self.get(&format!("/connectors/{connector}/status"));
        status == 200
            && body["connector"]["state"] == state
            && body["tasks"]
                .as_array()
                .is_some_and(|t| !t.is_empty() && t.iter().all(|t| t["state"] == state))
    }

    /// (state, worker_id) of each task of `connector`, in task order.
    pub fn task_states(&self, connector: &str) -> Vec<(String, String)> {
        let (_, status) = self.get(&format!("/connectors/{connector}/status"));
        status["tasks"]
            .as_array()
            .map(|tasks| {
                tasks
                    .iter()
                    .map(|t| {
                        (
                            t["state"].as_str().unwrap_or_default().to_owned(),
                            t["worker_id"].as_str().unwrap_or_default().to_owned(),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default()
    }

    pub fn wait_running(&self, connector: &str) {
        wait_until(
            Duration::from_secs(60),
            &format!("{connector} RUNNING"),
            || self.all_in_state(connector, "RUNNING"),
        );
    }
}

/// A `weir-coordinator` process on etcd.
pub struct CoordinatorProcess {
    pub rest: Rest,
    pub grpc: String,
    pub process: Process,
    /// The command line and log, to start it again on the same ports.
    args: Vec<String>,
    log: PathBuf,
    id: String,
    rest_port: u16,
}

impl CoordinatorProcess {
    pub fn start(etcd: &Etcd, prefix: &str, dir: &Path, id: &str) -> CoordinatorProcess {
        CoordinatorProcess::start_with(etcd, prefix, dir, id, &[])
    }

    /// Starts one with extra command-line flags.
    pub fn start_with(
        etcd: &Etcd,
        prefix: &str,
        dir: &Path,
        id: &str,
        extra: &[&str],
    ) -> CoordinatorProcess {
        let rest_port = free_port();
        let grpc_port = free_port();
        let mut args: Vec<String> = vec![
            "--etcd-endpoints".into(),
            etcd.endpoint.clone(),
            "--etcd-prefix".into(),
            prefix.into(),
            "--listeners".into(),
            format!("http://127.0.0.1:{rest_port}"),
            "--grpc-listen".into(),
            format!("127.0.0.1:{grpc_port}"),
            "--id".into(),
            id.into(),
        ];
        args.extend(extra.iter().map(|a| (*a).to_owned()));
        let log = dir.join(format!("{id}.log"));
        let process = CoordinatorProcess::spawn(id, &args, &log, rest_port);
        CoordinatorProcess {
            rest: Rest::new(format!("http://127.0.0.1:{rest_port}")),
            grpc: format!("http://127.0.0.1:{grpc_port}"),
            process,
            args,
            log,
            id: id.to_owned(),
            rest_port,
        }
    }

    fn spawn(id: &str, args: &[String], log: &Path, rest_port: u16) -> Process {
        let process = Process::spawn(
            id,
            Command::new(binary("weir-coordinator")).args(args),
            log.to_owned(),
        );
        wait_for_port(rest_port, "coordinator REST");
        process
    }

    /// Starts it again, same id and ports (after it was stopped or killed).
    pub fn restart(&mut self) {
        // Each run appends to its own log file.
        let mut run = 2;
        while self.log.with_extension(format!("{run}.log")).exists() {
            run += 1;
        }
        let log = self.log.with_extension(format!("{run}.log"));
        self.process = CoordinatorProcess::spawn(&self.id, &self.args, &log, self.rest_port);
    }
}

/// Starts a `weir-runner` with the given worker properties.
pub fn start_runner(
    coordinator: &str,
    id: &str,
    bootstrap: &str,
    dir: &Path,
    extra: &str,
) -> Process {
    let properties = dir.join(format!("{id}.properties"));
    std::fs::write(
        &properties,
        format!("bootstrap.servers={bootstrap}\noffset.flush.interval.ms=500\noffset.storage.replication.factor=1\noffset.storage.partitions=1\n{extra}"),
    )
    .unwrap();
    Process::spawn(
        id,
        Command::new(binary("weir-runner"))
            .arg("--config")
            .arg(&properties)
            .args(["--coordinator", coordinator, "--runner-id", id]),
        dir.join(format!("{id}.log")),
    )
}

/// Reads a file, or "" if it does not exist yet.
pub fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

/// Worker properties for plain-text records: StringConverter keys and values.
pub const STRING_CONVERTERS: &str = "key.converter=org.apache.kafka.connect.storage.StringConverter\nvalue.converter=org.apache.kafka.connect.storage.StringConverter\n";

/// A `weir standalone` process against a broker of the test's choosing.
pub struct Standalone {
    pub rest: Rest,
    pub process: Process,
}

impl Standalone {
    /// Writes `<dir>/<name>.properties` from `properties` (which must set
    /// `bootstrap.servers`), plus file offsets and REST on a free port, and
    /// starts `weir standalone` with it.
    pub fn start(dir: &Path, name: &str, properties: &str) -> Standalone {
        let worker = dir.join(format!("{name}.properties"));
        // Port 0: the REST listener takes a port the kernel picks, so no
        // other process can take it between choosing and binding.
        std::fs::write(
            &worker,
            format!(
                "offset.storage.file.filename={}\nlisteners=http://127.0.0.1:0\n{properties}",
                dir.join(format!("{name}.offsets")).display()
            ),
        )
        .unwrap();
        let mut process = Process::spawn(
            "weir standalone",
            Command::new(binary("weir")).arg("standalone").arg(&worker),
            dir.join(format!("{name}.log")),
        );
        let rest = rest_address(&process.wait_for_log("REST API on", Duration::from_secs(30)));
        Standalone {
            rest: Rest::new(rest),
            process,
        }
    }
}

/// The `http://host:port` in standalone's "REST API on …" line.
pub fn rest_address(line: &str) -> String {
    line.split_whitespace()
        .find(|word| word.starts_with("http://"))
        .unwrap_or_else(|| panic!("no address in {line:?}"))
        .to_owned()
}

/// Appends `text` to the file at `path`, creating it if needed.
pub fn append(path: &Path, text: &str) {
    use std::io::Write;
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .unwrap();
    file.write_all(text.as_bytes()).unwrap();
}

/// Produces one record per line to `topic` with Debian's kcat.
pub fn kcat_produce(bootstrap: &str, topic: &str, lines: &[&str]) {
    kcat_produce_compressed(bootstrap, topic, "none", lines);
}

/// Produces one record per line to `topic` with Debian's kcat, its batches
/// compressed with `codec` (none, gzip, snappy, lz4 or zstd).
pub fn kcat_produce_compressed(bootstrap: &str, topic: &str, codec: &str, lines: &[&str]) {
    use std::io::Write;
    let mut child = Command::new("kcat")
        .args(["-b", bootstrap, "-P", "-t", topic, "-z", codec])
        .stdin(Stdio::piped())
        .spawn()
        .expect("kcat (Debian package kcat) is required");
    let mut stdin = child.stdin.take().unwrap();
    for line in lines {
        writeln!(stdin, "{line}").unwrap();
    }
    drop(stdin);
    assert!(
        child.wait().unwrap().success(),
        "kcat could not produce to {topic}"
    );
}

/// Starts `sidecar` on the Unix socket `socket` and runs the conformance kit
/// (`weir-conformance`) against it with a file source (ten lines to give)
/// and a file sink under `dir`, plus `extra` arguments. Fails unless every
/// check passed; returns the kit's report.
pub fn conformance(
    sidecar: &mut Command,
    socket: &Path,
    source: &str,
    sink: &str,
    dir: &Path,
    extra: &[&str],
) -> String {
    let input = dir.join(format!("{source}-in.txt"));
    let text: String = (0..10).map(|i| format!("conformance line {i}\n")).collect();
    std::fs::write(&input, text).unwrap();
    let mut process = Process::spawn(
        "sidecar",
        sidecar.env("WEIR_SIDECAR_SOCKET", socket),
        dir.join(format!("{source}.log")),
    );
    wait_until(Duration::from_secs(30), "the sidecar's socket", || {
        std::os::unix::net::UnixStream::connect(socket).is_ok()
    });
    let output = Command::new(binary("weir-conformance"))
        .arg(format!("--address=unix:{}", socket.display()))
        .args(["--source", source, "--sink", sink])
        .arg(format!("--source-config=file={}", input.display()))
        .arg("--source-config=topic=conformance")
        .arg(format!(
            "--sink-config=file={}",
            dir.join(format!("{sink}-out.txt")).display()
        ))
        .args(extra)
        .output()
        .unwrap();
    let report = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "{source}:\n{report}{}",
        process.log_text()
    );
    process.terminate();
    report
}
