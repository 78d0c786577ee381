//! Secured clusters end to end: `weir standalone` runs the seed pipeline over
//! TLS (PEM and PKCS12 truststores) and over SASL_SSL with SCRAM-SHA-512
//! against tansu, and bad client settings fail with errors that name the
//! property and never show a secret.
//!
//! TLS is real OpenSSL on both ends. tansu 0.6.0 cannot serve TLS itself:
//! clap puts `--cert` and `--key` in one exclusive group ("the argument
//! '--cert <CERT>' cannot be used with '--key <KEY>'"), and its accept loop
//! never uses the acceptor it builds. So `socat` terminates TLS in front of
//! tansu, and tansu advertises the TLS port.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is the failure report

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use serde_json::json;
use tempfile::TempDir;
use weir_tests::{Process, Rest, Standalone, binary, free_port, read, wait_for_port, wait_until};

fn tansu_bin() -> String {
    std::env::var("WEIR_TANSU_BIN").unwrap_or_else(|_| "tansu".into())
}

fn run(command: &mut Command) {
    let output = command.output().unwrap();
    assert!(
        output.status.success(),
        "{command:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// A self-signed certificate for 127.0.0.1, as PEM and as a PKCS12 truststore.
struct Certificates {
    cert: PathBuf,
    key: PathBuf,
    truststore_p12: PathBuf,
}

const TRUSTSTORE_PASSWORD: &str = "changeit";

fn make_certificates(dir: &Path) -> Certificates {
    let cert = dir.join("cert.pem");
    let key = dir.join("key.pem");
    run(Command::new("openssl").args([
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-days",
        "2",
        "-subj",
        "/CN=localhost",
        "-addext",
        "subjectAltName=DNS:localhost,IP:127.0.0.1",
        "-keyout",
        key.to_str().unwrap(),
        "-out",
        cert.to_str().unwrap(),
    ]));
    let truststore_p12 = dir.join("truststore.p12");
    run(Command::new("openssl").args([
        "pkcs12",
        "-export",
        "-nokeys",
        "-in",
        cert.to_str().unwrap(),
        "-out",
        truststore_p12.to_str().unwrap(),
        "-passout",
        &format!("pass:{TRUSTSTORE_PASSWORD}"),
    ]));
    Certificates {
        cert,
        key,
        truststore_p12,
    }
}

/// tansu behind a TLS listener; optionally with SASL authentication.
struct SecureTansu {
    dir: TempDir,
    certificates: Certificates,
    /// Where clients connect: the TLS port.
    bootstrap: String,
    _tansu: Process,
    _tls: Process,
}

const TOPIC: &str = "secure-topic";
const USER: &str = "alice";
const PASSWORD: &str = "alice-secret";

impl SecureTansu {
    fn start(authentication: bool) -> SecureTansu {
        let dir = tempfile::tempdir().unwrap();
        let certificates = make_certificates(dir.path());
        let tansu_port = free_port();
        let tls_port = free_port();
        let listener = format!("tcp://127.0.0.1:{tansu_port}");
        let advertised = format!("tcp://127.0.0.1:{tls_port}");

        // Topics and users are made over plaintext first: tansu's own CLI
        // speaks neither TLS nor SASL. SQLite keeps them across the restart.
        let broker = |extra: &[&str], log: &str| {
            let mut command = Command::new(tansu_bin());
            command
                .current_dir(dir.path())
                .args(["broker", "--listener-url", &listener])
                .args(["--advertised-listener-url", &advertised])
                .args(["--storage-engine", "sqlite://tansu.db"])
                .args(extra);
            Process::spawn("tansu", &mut command, dir.path().join(log))
        };
        let setup = broker(&[], "tansu-setup.log");
        wait_for_port(tansu_port, "tansu");
        run(Command::new(tansu_bin()).args([
            "topic",
            "create",
            "--broker",
            &listener,
            "--partitions",
            "1",
            TOPIC,
        ]));
        if authentication {
            run(Command::new(tansu_bin()).args([
                "user",
                "create",
                "--broker",
                &listener,
                "--mechanism",
                "scram512",
                USER,
                PASSWORD,
            ]));
        }
        drop(setup);
        wait_until(Duration::from_secs(10), "tansu to stop", || {
            std::net::TcpStream::connect(("127.0.0.1", tansu_port)).is_err()
        });

        let cert = certificates.cert.to_str().unwrap();
        let key = certificates.key.to_str().unwrap();
        let extra: &[&str] = if authentication {
            &["--authentication"]
        } else {
            &[]
        };
        let tansu = broker(extra, "tansu.log");
        wait_for_port(tansu_port, "tansu");
        let tls = Process::spawn(
            "socat",
            Command::new("socat").args([
                &format!("OPENSSL-LISTEN:{tls_port},bind=127.0.0.1,reuseaddr,fork,cert={cert},key={key},verify=0"),
                &format!("TCP:127.0.0.1:{tansu_port}"),
            ]),
            dir.path().join("socat.log"),
        );
        wait_for_port(tls_port, "the TLS listener");
        SecureTansu {
            bootstrap: format!("127.0.0.1:{tls_port}"),
            dir,
            certificates,
            _tansu: tansu,
            _tls: tls,
        }
    }
}

/// `weir standalone` on `bootstrap` with String converters and the given
/// client properties; `name` tells its files apart.
fn standalone(dir: &Path, name: &str, client_properties: &str, bootstrap: &str) -> Standalone {
    Standalone::start(dir, name, &worker_properties(client_properties, bootstrap))
}

fn worker_properties(client_properties: &str, bootstrap: &str) -> String {
    format!(
        "bootstrap.servers={bootstrap}\n\
         key.converter=org.apache.kafka.connect.storage.StringConverter\n\
         value.converter=org.apache.kafka.connect.storage.StringConverter\n\
         offset.flush.interval.ms=500\n{client_properties}"
    )
}

/// Runs FileStreamSource → the topic → FileStreamSink and checks the copy.
fn seed_pipeline(dir: &Path, rest: &Rest) {
    let input = dir.join("input.txt");
    let output = dir.join("output.txt");
    let text: String = (0..300).map(|i| format!("secure line {i}\n")).collect();
    std::fs::write(&input, &text).unwrap();
    let source = json!({"name": "secure-source", "config": {
        "connector.class": "FileStreamSource", "file": input.to_str().unwrap(), "topic": TOPIC}});
    let sink = json!({"name": "secure-sink", "config": {
        "connector.class": "FileStreamSink", "topics": TOPIC, "file": output.to_str().unwrap()}});
    for connector in [source, sink] {
        let (status, body) = rest.post("/connectors", &connector.to_string());
        assert_eq!(status, 201, "{body}");
    }
    wait_until(
        Duration::from_secs(60),
        "the copy over the secured broker",
        || read(&output) == text,
    );
    rest.wait_running("secure-source");
    rest.wait_running("secure-sink");
}

fn failed_trace(rest: &Rest, connector: &str) -> String {
    let path = format!("/connectors/{connector}/tasks/0/status");
    wait_until(
        Duration::from_secs(60),
        &format!("{connector} FAILED"),
        || rest.get(&path).1["state"] == "FAILED",
    );
    rest.get(&path).1["trace"].as_str().unwrap().to_owned()
}

#[test]
fn seed_pipeline_runs_over_tls_and_bad_tls_settings_name_the_key() {
    let broker = SecureTansu::start(false);
    let certs = &broker.certificates;
    let pem = certs.cert.to_str().unwrap();
    let p12 = certs.truststore_p12.to_str().unwrap();
    // The worker's own clients and the consumers trust the PEM file, the
    // producers the PKCS12 store: both truststore types are exercised.
    let clients = format!(
        "security.protocol=SSL\nssl.truststore.type=PEM\nssl.truststore.location={pem}\n\
         consumer.security.protocol=SSL\nconsumer.ssl.truststore.type=PEM\nconsumer.ssl.truststore.location={pem}\n\
         admin.security.protocol=SSL\nadmin.ssl.truststore.location={pem}\n\
         producer.security.protocol=SSL\nproducer.ssl.truststore.type=PKCS12\n\
         producer.ssl.truststore.location={p12}\nproducer.ssl.truststore.password={TRUSTSTORE_PASSWORD}\n"
    );
    let dir = broker.dir.path();
    let weir = standalone(dir, "tls", &clients, &broker.bootstrap);
    seed_pipeline(dir, &weir.rest);

    // A bad security.protocol override fails the task, naming the key.
    let bad_protocol = json!({"name": "bad-protocol", "config": {
        "connector.class": "FileStreamSource", "file": dir.join("input.txt").to_str().unwrap(),
        "topic": TOPIC, "producer.override.security.protocol": "TLS"}});
    assert_eq!(
        weir.rest.post("/connectors", &bad_protocol.to_string()).0,
        201
    );
    let trace = failed_trace(&weir.rest, "bad-protocol");
    assert!(
        trace.contains("producer.override.security.protocol"),
        "{trace}"
    );

    // A missing truststore fails the task, naming the key.
    let missing = json!({"name": "missing-truststore", "config": {
        "connector.class": "FileStreamSink", "topics": TOPIC,
        "file": dir.join("never.txt").to_str().unwrap(),
        "consumer.override.ssl.truststore.location": dir.join("nope.pem").to_str().unwrap()}});
    assert_eq!(weir.rest.post("/connectors", &missing.to_string()).0, 201);
    let trace = failed_trace(&weir.rest, "missing-truststore");
    assert!(
        trace.contains("consumer.override.ssl.truststore.location"),
        "{trace}"
    );

    // A wrong PKCS12 password fails the task, naming the password key.
    let wrong = json!({"name": "wrong-store-password", "config": {
        "connector.class": "FileStreamSource", "file": dir.join("input.txt").to_str().unwrap(),
        "topic": TOPIC, "producer.override.ssl.truststore.password": "not-the-password"}});
    assert_eq!(weir.rest.post("/connectors", &wrong.to_string()).0, 201);
    let trace = failed_trace(&weir.rest, "wrong-store-password");
    assert!(
        trace.contains("producer.override.ssl.truststore.password"),
        "{trace}"
    );
    assert!(!trace.contains("not-the-password"), "{trace}");
    let (_, config) = weir.rest.get("/connectors/wrong-store-password/config");
    assert_eq!(
        config["producer.override.ssl.truststore.password"],
        "[hidden]"
    );

    // A truststore with another CA does not trust the broker's certificate:
    // the task fails with the TLS failure instead of retrying forever.
    let other = dir.join("other");
    std::fs::create_dir_all(&other).unwrap();
    let other_ca = make_certificates(&other).cert;
    let untrusted = json!({"name": "untrusted", "config": {
        "connector.class": "FileStreamSink", "topics": TOPIC,
        "file": dir.join("untrusted.txt").to_str().unwrap(),
        "consumer.override.ssl.truststore.location": other_ca.to_str().unwrap()}});
    assert_eq!(weir.rest.post("/connectors", &untrusted.to_string()).0, 201);
    let trace = failed_trace(&weir.rest, "untrusted");
    assert!(trace.contains("TLS handshake failed"), "{trace}");
    assert!(
        trace.contains("consumer.override.ssl.truststore.location"),
        "{trace}"
    );
    drop(weir);

    // A bad worker-level client property stops start-up, naming the key.
    let bad_worker = dir.join("bad-worker.properties");
    let properties = worker_properties("producer.security.protocol=BOGUS\n", &broker.bootstrap);
    std::fs::write(
        &bad_worker,
        format!(
            "offset.storage.file.filename={}\n{properties}",
            dir.join("bad.offsets").display()
        ),
    )
    .unwrap();
    let output = Command::new(binary("weir"))
        .arg("standalone")
        .arg(&bad_worker)
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("producer.security.protocol"), "{stderr}");
}

#[test]
fn seed_pipeline_runs_over_sasl_ssl_with_scram_and_a_wrong_password_fails() {
    let broker = SecureTansu::start(true);
    let pem = broker.certificates.cert.to_str().unwrap();
    let jaas = |password: &str| {
        format!(
            "org.apache.kafka.common.security.scram.ScramLoginModule required username=\"{USER}\" password=\"{password}\";"
        )
    };
    let mut clients = String::new();
    for prefix in ["", "producer.", "consumer.", "admin."] {
        clients.push_str(&format!(
            "{prefix}security.protocol=SASL_SSL\n{prefix}sasl.mechanism=SCRAM-SHA-512\n\
             {prefix}sasl.jaas.config={}\n{prefix}ssl.truststore.location={pem}\n",
            jaas(PASSWORD)
        ));
    }
    let dir = broker.dir.path();
    let weir = standalone(dir, "sasl", &clients, &broker.bootstrap);
    seed_pipeline(dir, &weir.rest);

    let wrong = json!({"name": "wrong-password", "config": {
        "connector.class": "FileStreamSource", "file": dir.join("input.txt").to_str().unwrap(),
        "topic": TOPIC, "producer.override.sasl.jaas.config": jaas("wrong-secret")}});
    assert_eq!(weir.rest.post("/connectors", &wrong.to_string()).0, 201);
    let trace = failed_trace(&weir.rest, "wrong-password");
    assert!(
        trace.contains("producer.override.sasl.jaas.config"),
        "{trace}"
    );
    assert!(trace.contains("authentication"), "{trace}");
    assert!(!trace.contains("wrong-secret"), "{trace}");

    let (_, config) = weir.rest.get("/connectors/wrong-password/config");
    assert_eq!(config["producer.override.sasl.jaas.config"], "[hidden]");
    let (_, tasks) = weir.rest.get("/connectors/wrong-password/tasks");
    assert!(!tasks.to_string().contains("wrong-secret"), "{tasks}");
    assert!(
        !weir.process.log_text().contains(PASSWORD),
        "a password reached the log"
    );
}
