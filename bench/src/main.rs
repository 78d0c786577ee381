//! `weir-bench`: Weir's record paths beside the fastest raw rdkafka client
//! for the same work, in the same run against the same broker.
//!
//! - Source: lines of a file → Kafka. Raw: a `BaseProducer` reading the file.
//!   Weir: FileStreamSource through the runner's real source task loop, with
//!   String, Json (schemas on) and Json + 5 SMTs, in-process and as a sidecar.
//! - Sink: Kafka → lines of a file. Raw: a `BaseConsumer` writing values to a
//!   buffered file. Weir: FileStreamSink through the real sink task loop,
//!   same converters, in-process and as a sidecar. Sink topics are filled
//!   beforehand over 32 partitions, and the sink is timed from its first
//!   commit, so it measures steady state.
//!
//! Every measurement runs in a child process of its own (`measure`), so its
//! CPU (all threads, plus the sidecar's on sidecar paths) and peak RSS are
//! its own. Rounds are interleaved; a Weir row is the median of its rounds,
//! a raw row its fastest round.
//!
//! Usage: `cargo run --release -p weir-bench [-- --records N --rounds R
//! --bootstrap HOST:PORT]`. Without `--bootstrap` it starts the embedded
//! broker (librdkafka's mock cluster) in a child process.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout)]

mod measure;
mod raw_reports;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use measure::{Job, Measurement, SINK_PARTITIONS};
use rdkafka::ClientConfig;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer};

const SIZES: [usize; 2] = [100, 1024];

const USAGE: &str = "weir-bench: Weir's record paths beside a raw rdkafka client, in one run

Usage: weir-bench [--records N] [--rounds R] [--bootstrap HOST:PORT]

  --records N            records per measurement (default 400000)
  --rounds R             interleaved rounds; Weir rows are medians (default 3)
  --bootstrap HOST:PORT  a broker to use instead of the embedded one
  -h, --help             print this help

Build with `cargo build --release --bins` first so the sidecar rows appear.";

/// The record of line `i` for `size`: the line number, zero-padded.
fn line(i: usize, size: usize) -> String {
    format!("{i:0>size$}")
}

/// The same line as a JsonConverter envelope with its schema.
fn json_line(i: usize, size: usize) -> String {
    format!(
        r#"{{"schema":{{"type":"string","optional":false}},"payload":"{}"}}"#,
        line(i, size)
    )
}

fn sink_topic(converter: &str, size: usize) -> String {
    format!("bench-sink-{converter}-{size}")
}

/// Creates a topic on an external broker (the embedded one creates them at start).
async fn create_topic(bootstrap: &str, topic: &str, partitions: i32) {
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .create()
        .unwrap();
    let created = admin
        .create_topics(
            &[NewTopic::new(topic, partitions, TopicReplication::Fixed(1))],
            &AdminOptions::new(),
        )
        .await
        .unwrap();
    for outcome in created {
        outcome.unwrap();
    }
}

/// Fills a sink topic with `count` records, spread evenly over its
/// partitions (untimed).
fn fill(bootstrap: &str, topic: &str, count: usize, record: impl Fn(usize) -> String) {
    let producer: ThreadedProducer<DefaultProducerContext> =
        measure::producer_settings(bootstrap).create().unwrap();
    for i in 0..count {
        let value = record(i);
        let partition = i32::try_from(i).unwrap() % SINK_PARTITIONS;
        let mut message = BaseRecord::<(), str>::to(topic)
            .payload(value.as_str())
            .partition(partition);
        while let Err((_, returned)) = producer.send(message) {
            message = returned;
            std::thread::sleep(Duration::from_millis(1));
        }
    }
    producer.flush(Duration::from_secs(300)).unwrap();
}

fn write_input(path: &Path, count: usize, size: usize) {
    let mut out = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
    for i in 0..count {
        out.write_all(line(i, size).as_bytes()).unwrap();
        out.write_all(b"\n").unwrap();
    }
    out.flush().unwrap();
}

fn start_broker(topics: &[String]) -> (Child, String) {
    let port = free_port();
    let child = Command::new(std::env::current_exe().unwrap())
        .args(["serve-broker", &port.to_string()])
        .args(topics)
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    wait_for(|| std::net::TcpStream::connect(("127.0.0.1", port)).is_ok());
    (child, format!("127.0.0.1:{port}"))
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn wait_for(ready: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !ready() {
        assert!(Instant::now() < deadline, "a child process did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// `weir-file-connectors` (built beside this binary) serving on a Unix
/// socket; `None` when it was not built.
fn start_sidecar(dir: &Path) -> Option<(Child, PathBuf)> {
    let binary = std::env::current_exe()
        .ok()?
        .parent()?
        .join("weir-file-connectors");
    if !binary.exists() {
        return None;
    }
    let socket = dir.join("bench-sidecar.sock");
    let child = Command::new(binary)
        .env("WEIR_SIDECAR_SOCKET", &socket)
        .stdout(Stdio::null())
        .spawn()
        .ok()?;
    wait_for(|| std::os::unix::net::UnixStream::connect(&socket).is_ok());
    Some((child, socket))
}

/// Runs `job` in a child process and reads back what it measured.
fn run(job: &Job) -> Measurement {
    let output = Command::new(std::env::current_exe().unwrap())
        .args(job.to_args())
        .stderr(Stdio::inherit())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{job:?} failed: {stdout}");
    stdout
        .lines()
        .find_map(Measurement::from_line)
        .unwrap_or_else(|| panic!("{job:?} printed no measurement: {stdout}"))
}

/// The median of each statistic over the rounds.
fn median(runs: &[Measurement]) -> Measurement {
    let pick = |mut values: Vec<f64>| {
        values.sort_by(f64::total_cmp);
        values[values.len() / 2]
    };
    let records = runs[0].records;
    let rate = pick(runs.iter().map(Measurement::rate).collect());
    let cpu_per_record = pick(
        runs.iter()
            .map(|m| m.cpu.as_secs_f64() / m.records as f64)
            .collect(),
    );
    Measurement {
        records,
        wall: Duration::from_secs_f64(records as f64 / rate),
        cpu: Duration::from_secs_f64(cpu_per_record * records as f64),
        rss_kib: runs.iter().map(|m| m.rss_kib).max().unwrap_or(0),
    }
}

/// The round with the highest throughput.
fn fastest(runs: &[Measurement]) -> Measurement {
    runs.iter()
        .copied()
        .max_by(|a, b| a.rate().total_cmp(&b.rate()))
        .expect("at least one round")
}

/// One benchmarked path: its table label, the job, and which row it is
/// compared with.
struct Row {
    size: usize,
    label: &'static str,
    job: Job,
    baseline: Option<usize>,
    weir: bool,
    runs: Vec<Measurement>,
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    match args.get(1).map(String::as_str) {
        Some("serve-broker") => return serve_broker(&args[2..]),
        Some("measure") => return measure::main(&args[2..]),
        // For profiling one path by hand: fill BOOTSTRAP TOPIC SIZE COUNT string|json.
        Some("fill") => {
            let (size, count): (usize, usize) =
                (args[4].parse().unwrap(), args[5].parse().unwrap());
            if args[6] == "json" {
                fill(&args[2], &args[3], count, |i| json_line(i, size));
            } else {
                fill(&args[2], &args[3], count, |i| line(i, size));
            }
            return;
        }
        Some("-h" | "--help") => {
            println!("{USAGE}");
            return;
        }
        _ => {}
    }
    let known = ["--records", "--rounds", "--bootstrap"];
    let mut rest = args.iter().skip(1);
    while let Some(arg) = rest.next() {
        if !known.contains(&arg.as_str()) || rest.next().is_none() {
            eprintln!("weir-bench: unexpected argument {arg}\n\n{USAGE}");
            std::process::exit(2);
        }
    }
    let flag = |name: &str| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1))
            .cloned()
    };
    let records: usize = flag("--records").map_or(400_000, |r| r.parse().unwrap());
    let rounds: usize = flag("--rounds").map_or(3, |r| r.parse().unwrap());
    let sink_topics: Vec<String> = SIZES
        .iter()
        .flat_map(|&size| ["string", "json"].map(|c| sink_topic(c, size)))
        .collect();
    let (mut broker, bootstrap) = match flag("--bootstrap") {
        Some(bootstrap) => {
            let runtime = tokio::runtime::Runtime::new().unwrap();
            for topic in &sink_topics {
                runtime.block_on(create_topic(&bootstrap, topic, SINK_PARTITIONS));
            }
            (None, bootstrap)
        }
        None => {
            let (child, bootstrap) = start_broker(&sink_topics);
            (Some(child), bootstrap)
        }
    };
    let dir = tempfile::tempdir().unwrap();
    let mut sidecar = start_sidecar(dir.path());
    let sidecar_of = |child: &Child, socket: &Path| (socket.display().to_string(), child.id());
    let sidecar_job = sidecar
        .as_ref()
        .map(|(child, socket)| sidecar_of(child, socket));
    println!(
        "weir-bench: {records} records of 100 B and {} of 1 KiB per run, {rounds} rounds, broker {bootstrap}{}",
        records / 4,
        if broker.is_some() {
            " (embedded mock cluster, child process)"
        } else {
            ""
        }
    );
    if sidecar.is_none() {
        println!(
            "(weir-file-connectors is not built beside weir-bench: no sidecar rows; run `cargo build --release --bins` first)"
        );
    }

    let kcat = measure::kcat_installed();
    let mut rows: Vec<Row> = Vec::new();
    for size in SIZES {
        let count = if size < 1024 {
            records
        } else {
            (records / 4).max(1)
        };
        let input = dir.path().join(format!("input-{size}.txt"));
        write_input(&input, count, size);
        for converter in ["string", "json"] {
            let topic = sink_topic(converter, size);
            if converter == "json" {
                fill(&bootstrap, &topic, count, |i| json_line(i, size));
            } else {
                fill(&bootstrap, &topic, count, |i| line(i, size));
            }
        }
        let job = |kind: &str, topic: String, converter: &str, smts: bool, sidecar: bool| Job {
            kind: kind.into(),
            bootstrap: bootstrap.clone(),
            topic,
            records: count,
            input: kind
                .ends_with("source")
                .then(|| input.display().to_string()),
            converter: converter.into(),
            smts,
            sidecar: if sidecar { sidecar_job.clone() } else { None },
        };
        let mut add = |label, job, baseline: Option<usize>, weir| {
            rows.push(Row {
                size,
                label,
                job,
                baseline,
                weir,
                runs: Vec::new(),
            });
            rows.len() - 1
        };
        let raw = add(
            "raw BaseProducer (file lines)",
            job(
                "raw-source",
                format!("bench-raw-{size}"),
                "string",
                false,
                false,
            ),
            None,
            false,
        );
        if kcat {
            add(
                "kcat -P (file lines, whole run)",
                job(
                    "kcat-source",
                    format!("bench-kcat-{size}"),
                    "string",
                    false,
                    false,
                ),
                Some(raw),
                false,
            );
        }
        let topic = |name: &str| format!("bench-{name}-{size}");
        add(
            "weir FileStreamSource (String)",
            job("source", topic("string"), "string", false, false),
            Some(raw),
            true,
        );
        add(
            "weir FileStreamSource (Json)",
            job("source", topic("json"), "json", false, false),
            Some(raw),
            true,
        );
        add(
            "weir FileStreamSource (Json, 5 SMTs)",
            job("source", topic("smt"), "json", true, false),
            Some(raw),
            true,
        );
        if sidecar_job.is_some() {
            add(
                "weir sidecar FileStreamSource (String)",
                job("source", topic("sidecar"), "string", false, true),
                Some(raw),
                true,
            );
        }
        let string_topic = sink_topic("string", size);
        let json_topic = sink_topic("json", size);
        let raw_string = add(
            "raw BaseConsumer → file (String topic)",
            job("raw-sink", string_topic.clone(), "string", false, false),
            None,
            false,
        );
        add(
            "weir FileStreamSink (String)",
            job("sink", string_topic.clone(), "string", false, false),
            Some(raw_string),
            true,
        );
        if sidecar_job.is_some() {
            add(
                "weir sidecar FileStreamSink (String)",
                job("sink", string_topic, "string", false, true),
                Some(raw_string),
                true,
            );
        }
        let raw_json = add(
            "raw BaseConsumer → file (Json topic)",
            job("raw-sink", json_topic.clone(), "json", false, false),
            None,
            false,
        );
        add(
            "weir FileStreamSink (Json)",
            job("sink", json_topic.clone(), "json", false, false),
            Some(raw_json),
            true,
        );
        add(
            "weir FileStreamSink (Json, 5 SMTs)",
            job("sink", json_topic, "json", true, false),
            Some(raw_json),
            true,
        );
    }
    for round in 0..rounds {
        eprintln!("round {} of {rounds}", round + 1);
        for row in &mut rows {
            let measured = run(&row.job);
            row.runs.push(measured);
        }
    }

    println!(
        "{:<8} {:<40} {:>11} {:>9} {:>9} {:>9} {:>8}",
        "size", "path", "records/s", "CPU-s/M", "rate÷raw", "CPU×raw", "peak MB"
    );
    // Weir rows: the median round. Raw rows: the fastest round, the limit
    // to approach (a slow round would flatter Weir).
    let medians: Vec<Measurement> = rows
        .iter()
        .map(|row| {
            if row.weir {
                median(&row.runs)
            } else {
                fastest(&row.runs)
            }
        })
        .collect();
    let ratio = |i: usize| {
        let baseline = &medians[rows[i].baseline.unwrap_or(i)];
        (
            medians[i].rate() / baseline.rate(),
            medians[i].cpu_per_million() / baseline.cpu_per_million(),
        )
    };
    for (i, row) in rows.iter().enumerate() {
        let m = &medians[i];
        let (rate, cpu) = ratio(i);
        println!(
            "{:<8} {:<40} {:>11.0} {:>9.3} {:>9.2} {:>9.2} {:>8.1}",
            format!("{} B", row.size),
            row.label,
            m.rate(),
            m.cpu_per_million(),
            rate,
            cpu,
            m.rss_kib as f64 / 1024.0
        );
    }
    let find = |size: usize, label: &str| {
        rows.iter()
            .position(|row| row.size == size && row.label == label)
    };
    let figure = |size, label, cpu: bool| {
        find(size, label).map_or("n/a".to_owned(), |i| {
            let (rate, cpu_ratio) = ratio(i);
            format!("{:.2}", if cpu { cpu_ratio } else { rate })
        })
    };
    let rss_mb = rows
        .iter()
        .zip(&medians)
        .filter(|(row, _)| row.weir)
        .map(|(_, m)| m.rss_kib)
        .max()
        .unwrap_or(0) as f64
        / 1024.0;
    println!(
        "ratios: source_100B={} source_1KiB={} sink_100B={} sink_1KiB={} sidecar_source={} sidecar_sink={} cpu_source_100B={} cpu_sink_100B={} rss_mb={:.1}",
        figure(100, "weir FileStreamSource (String)", false),
        figure(1024, "weir FileStreamSource (String)", false),
        figure(100, "weir FileStreamSink (String)", false),
        figure(1024, "weir FileStreamSink (String)", false),
        figure(100, "weir sidecar FileStreamSource (String)", false),
        figure(100, "weir sidecar FileStreamSink (String)", false),
        figure(100, "weir FileStreamSource (String)", true),
        figure(100, "weir FileStreamSink (String)", true),
        rss_mb,
    );
    // The raw producer beside kcat, and the 5-SMT chain beside the same
    // path without it.
    let versus = |size, row: &str, other: &str| match (find(size, row), find(size, other)) {
        (Some(s), Some(i)) => format!("{:.2}", medians[s].rate() / medians[i].rate()),
        _ => "n/a".to_owned(),
    };
    println!(
        "baselines: raw÷kcat_100B={} raw÷kcat_1KiB={} smt_chain_source_100B={} smt_chain_sink_100B={}",
        versus(
            100,
            "raw BaseProducer (file lines)",
            "kcat -P (file lines, whole run)"
        ),
        versus(
            1024,
            "raw BaseProducer (file lines)",
            "kcat -P (file lines, whole run)"
        ),
        versus(
            100,
            "weir FileStreamSource (Json, 5 SMTs)",
            "weir FileStreamSource (Json)"
        ),
        versus(
            100,
            "weir FileStreamSink (Json, 5 SMTs)",
            "weir FileStreamSink (Json)"
        ),
    );
    // The sidecar paths beside the same connector in-process (issue goal: 0.8).
    println!(
        "sidecar÷in-process: source_100B={} source_1KiB={} sink_100B={} sink_1KiB={}",
        versus(
            100,
            "weir sidecar FileStreamSource (String)",
            "weir FileStreamSource (String)"
        ),
        versus(
            1024,
            "weir sidecar FileStreamSource (String)",
            "weir FileStreamSource (String)"
        ),
        versus(
            100,
            "weir sidecar FileStreamSink (String)",
            "weir FileStreamSink (String)"
        ),
        versus(
            1024,
            "weir sidecar FileStreamSink (String)",
            "weir FileStreamSink (String)"
        ),
    );
    if let Some(child) = broker.as_mut() {
        let _ = child.kill();
        let _ = child.wait();
    }
    if let Some((child, _)) = sidecar.as_mut() {
        let _ = child.kill();
        let _ = child.wait();
    }
}

fn serve_broker(args: &[String]) {
    let port: u16 = args[0].parse().unwrap();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let broker = weir_runner::devkafka::DevKafka::start(port).await.unwrap();
        for topic in &args[1..] {
            broker.create_topic(topic, SINK_PARTITIONS).unwrap();
        }
        std::future::pending::<()>().await;
    });
}
