//! `weir-bench`: FileStreamSource → Kafka through Weir's real source task
//! loop, against a raw rdkafka producer sending the same records to the same
//! broker in the same run; and Kafka → FileStreamSink through the real sink
//! task loop, against a raw rdkafka consumer writing the same values to a
//! file. Each connector runs in-process and as a sidecar over a Unix socket.
//! Prints records/s of each, their ratio, and CPU seconds per million
//! records of this process (the broker and the sidecar are separate child
//! processes, so their CPU is not counted).
//!
//! The sink reads topics of [`SINK_PARTITIONS`] partitions, so that the
//! embedded broker (which keeps a few MiB a partition) still holds every
//! record when the sink starts.
//!
//! Usage: `cargo run --release -p weir-bench [-- --records N --bootstrap HOST:PORT]`.
//! Without `--bootstrap` it starts the embedded broker (librdkafka's mock
//! cluster) in a child process: fine for ratios, not an absolute throughput
//! reference.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout)]

use std::io::Write;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer};
use rdkafka::{ClientConfig, Message, Offset, TopicPartitionList};
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;
use weir_connect::api::{ConnectorPlugin, TaskIdentity};
use weir_connect::config::ConfigMap;
use weir_connect::registry::Registry;
use weir_runner::WorkerConfig;
use weir_runner::host::remote;
use weir_runner::offsets::FileOffsetStore;
use weir_runner::task::{self, TargetState, TaskContext, TaskEvent, TaskKey};

/// A chain of five SMTs over each line: wrap it in a struct, rename the
/// field, add the topic as a field, name the schema, add a header.
const FIVE_SMTS: &[(&str, &str)] = &[
    ("transforms", "hoist,rename,topic,name,header"),
    (
        "transforms.hoist.type",
        "org.apache.kafka.connect.transforms.HoistField$Value",
    ),
    ("transforms.hoist.field", "line"),
    (
        "transforms.rename.type",
        "org.apache.kafka.connect.transforms.ReplaceField$Value",
    ),
    ("transforms.rename.renames", "line:text"),
    (
        "transforms.topic.type",
        "org.apache.kafka.connect.transforms.InsertField$Value",
    ),
    ("transforms.topic.topic.field", "source_topic"),
    (
        "transforms.name.type",
        "org.apache.kafka.connect.transforms.SetSchemaMetadata$Value",
    ),
    ("transforms.name.schema.name", "com.example.Line"),
    (
        "transforms.header.type",
        "org.apache.kafka.connect.transforms.InsertHeader",
    ),
    ("transforms.header.header", "origin"),
    ("transforms.header.value.literal", "bench"),
];

/// Process CPU time (user + system) so far.
fn cpu_time() -> Duration {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the command name (which may contain spaces) start at index 2.
    let after = stat.rsplit_once(')').map(|(_, rest)| rest).unwrap_or("");
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<u64>().ok())
            .unwrap_or(0)
    };
    // utime and stime are fields 14 and 15 of /proc/self/stat: 11 and 12 here.
    Duration::from_millis((ticks(11) + ticks(12)) * 1000 / clock_ticks())
}

fn clock_ticks() -> u64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(100)
}

struct Measurement {
    records: usize,
    wall: Duration,
    cpu: Duration,
}

impl Measurement {
    fn rate(&self) -> f64 {
        self.records as f64 / self.wall.as_secs_f64()
    }

    fn cpu_per_million(&self) -> f64 {
        self.cpu.as_secs_f64() * 1_000_000.0 / self.records as f64
    }
}

fn producer_settings(bootstrap: &str) -> ClientConfig {
    let mut config = ClientConfig::new();
    config
        .set("bootstrap.servers", bootstrap)
        .set("acks", "all")
        .set("linger.ms", "5")
        .set("queue.buffering.max.messages", "1000000");
    config
}

/// Partitions of each sink benchmark topic.
const SINK_PARTITIONS: i32 = 32;

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

/// The end offset of each partition of `topic`, and checks that the broker
/// still holds every record from offset 0.
fn end_offsets(bootstrap: &str, topic: &str) -> Vec<(i32, i64)> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .create()
        .unwrap();
    (0..SINK_PARTITIONS)
        .map(|partition| {
            let (low, high) = consumer
                .fetch_watermarks(topic, partition, Duration::from_secs(10))
                .unwrap();
            assert_eq!(low, 0, "the broker dropped records of {topic}/{partition}");
            (partition, high)
        })
        .collect()
}

/// The baseline: a raw rdkafka consumer writing every value of `topic` as
/// a line to a file, as FileStreamSink does, and syncing it at the end.
fn raw_consumer(bootstrap: &str, topic: &str, records: usize) -> Measurement {
    let stored: i64 = end_offsets(bootstrap, topic)
        .iter()
        .map(|(_, end)| end)
        .sum();
    assert_eq!(
        stored,
        i64::try_from(records).unwrap(),
        "records in {topic}"
    );
    let dir = tempfile::tempdir().unwrap();
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", "bench-raw")
        .set("enable.auto.commit", "false")
        .create()
        .unwrap();
    let cpu = cpu_time();
    let start = Instant::now();
    let mut assignment = TopicPartitionList::new();
    for partition in 0..SINK_PARTITIONS {
        assignment
            .add_partition_offset(topic, partition, Offset::Beginning)
            .unwrap();
    }
    consumer.assign(&assignment).unwrap();
    let mut out =
        std::io::BufWriter::new(std::fs::File::create(dir.path().join("out.txt")).unwrap());
    let mut read = 0;
    while read < records {
        if let Some(message) = consumer.poll(Duration::from_millis(100)) {
            let message = message.unwrap();
            out.write_all(message.payload().unwrap_or_default())
                .unwrap();
            out.write_all(b"\n").unwrap();
            read += 1;
        }
    }
    out.into_inner().unwrap().sync_all().unwrap();
    Measurement {
        records,
        wall: start.elapsed(),
        cpu: cpu_time() - cpu,
    }
}

/// The baseline: a raw rdkafka producer sending `lines` as values.
fn raw_producer(bootstrap: &str, topic: &str, lines: &[String]) -> Measurement {
    let producer: ThreadedProducer<DefaultProducerContext> =
        producer_settings(bootstrap).create().unwrap();
    let cpu = cpu_time();
    let start = Instant::now();
    for line in lines {
        let mut record = BaseRecord::<(), str>::to(topic).payload(line.as_str());
        loop {
            match producer.send(record) {
                Ok(()) => break,
                Err((_, returned)) => {
                    record = returned;
                    std::thread::sleep(Duration::from_millis(1));
                }
            }
        }
    }
    producer.flush(Duration::from_secs(120)).unwrap();
    Measurement {
        records: lines.len(),
        wall: start.elapsed(),
        cpu: cpu_time() - cpu,
    }
}

/// Runs one task of `plugin` with `config` through the runner's real task
/// loop until `done` says the committed positions cover everything.
async fn run_task(
    bootstrap: &str,
    name: &str,
    config: ConfigMap,
    converter: &str,
    plugin: Arc<dyn ConnectorPlugin>,
    records: usize,
    mut done: impl FnMut(&[weir_connect::api::SourcePosition]) -> bool,
) -> Measurement {
    let dir = tempfile::tempdir().unwrap();
    let worker: ConfigMap = [
        ("bootstrap.servers", bootstrap),
        (
            "offset.storage.file.filename",
            dir.path().join("offsets").to_str().unwrap(),
        ),
        ("offset.flush.interval.ms", "50"),
        ("value.converter", converter),
        ("value.converter.schemas.enable", "true"),
        (
            "key.converter",
            "org.apache.kafka.connect.storage.StringConverter",
        ),
        ("producer.queue.buffering.max.messages", "1000000"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect();
    let worker = Arc::new(WorkerConfig::from_properties(worker, true).unwrap());
    let mut config = config;
    config.insert("connector.class".into(), plugin.class().to_owned());
    config.insert("name".into(), name.to_owned());
    let (events, mut received) = mpsc::unbounded_channel();
    let (_target, target_rx) = watch::channel(TargetState::Running);
    let cancel = CancellationToken::new();
    let context = TaskContext {
        key: TaskKey {
            connector: name.into(),
            task: 0,
        },
        task_count: 1,
        config,
        epoch: 0,
        worker: worker.clone(),
        offsets: Arc::new(FileOffsetStore::new(dir.path().join("offsets"))),
        target: target_rx,
        cancel: cancel.clone(),
        events,
        lease: weir_runner::lease::Lease::unbounded(),
    };
    let cpu = cpu_time();
    let start = Instant::now();
    let identity = TaskIdentity {
        connector: name.into(),
        task: 0,
        epoch: 0,
    };
    let handle = task::spawn(context, plugin.create_task_for(&identity));
    let mut wall = None;
    while let Some(event) = received.recv().await {
        match event {
            TaskEvent::OffsetsCommitted { positions, .. } if done(&positions) => {
                wall = Some(start.elapsed());
                break;
            }
            TaskEvent::Status {
                state: task::TaskState::Failed,
                trace,
                ..
            } => panic!("{name} failed: {trace}"),
            _ => {}
        }
    }
    let cpu = cpu_time() - cpu;
    cancel.cancel();
    handle.await.unwrap();
    Measurement {
        records,
        wall: wall.expect("task finished"),
        cpu,
    }
}

/// Weir: FileStreamSource → converter → producer, with offsets committed
/// after acks; done when the offset of the last line is committed.
async fn weir_source(
    bootstrap: &str,
    topic: &str,
    lines: &[String],
    converter: &str,
    transforms: &[(&str, &str)],
    plugin: Arc<dyn ConnectorPlugin>,
) -> Measurement {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("input.txt");
    let mut out = std::io::BufWriter::new(std::fs::File::create(&file).unwrap());
    for line in lines {
        out.write_all(line.as_bytes()).unwrap();
        out.write_all(b"\n").unwrap();
    }
    out.flush().unwrap();
    drop(out);
    let size = std::fs::metadata(&file).unwrap().len();
    let config: ConfigMap = [("file", file.to_str().unwrap()), ("topic", topic)]
        .into_iter()
        .chain(transforms.iter().copied())
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
    run_task(
        bootstrap,
        topic,
        config,
        converter,
        plugin,
        lines.len(),
        |positions| {
            positions
                .iter()
                .any(|p| p.offset["position"].as_u64() == Some(size))
        },
    )
    .await
}

/// Weir: consumer → converter → FileStreamSink, with offsets committed
/// after `flush`; done when the committed offsets reach the topic's end.
async fn weir_sink(
    bootstrap: &str,
    topic: &str,
    name: &str,
    records: usize,
    plugin: Arc<dyn ConnectorPlugin>,
) -> Measurement {
    let dir = tempfile::tempdir().unwrap();
    let ends = end_offsets(bootstrap, topic);
    let config: ConfigMap = [
        ("file", dir.path().join("out.txt").to_str().unwrap()),
        ("topics", topic),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect();
    let mut committed = std::collections::BTreeMap::new();
    run_task(
        bootstrap,
        name,
        config,
        "org.apache.kafka.connect.storage.StringConverter",
        plugin,
        records,
        |positions| {
            for position in positions {
                if let (Some(partition), Some(offset)) = (
                    position.partition["kafka_partition"].as_i64(),
                    position.offset["kafka_offset"].as_i64(),
                ) {
                    committed.insert(partition as i32, offset);
                }
            }
            ends.iter()
                .all(|(partition, end)| committed.get(partition).copied().unwrap_or(0) >= *end)
        },
    )
    .await
}

/// `weir-file-connectors` (built beside this binary) as a sidecar on a Unix
/// socket, and its FileStreamSource and FileStreamSink as the runner sees
/// them; `None` when the sidecar binary was not built.
async fn sidecar_plugins(
    dir: &std::path::Path,
) -> Option<(Child, Arc<dyn ConnectorPlugin>, Arc<dyn ConnectorPlugin>)> {
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
    let channel = remote::channel(&remote::ChannelTarget::Unix(socket)).ok()?;
    let deadline = Instant::now() + Duration::from_secs(30);
    let handshake = loop {
        match remote::handshake(&channel, "bench").await {
            Ok(handshake) => break handshake,
            Err(_) if Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(status) => panic!("the sidecar did not answer: {status}"),
        }
    };
    let mut source = None;
    let mut sink = None;
    for plugin in remote::SidecarPlugin::from_handshake("bench", &channel, &handshake) {
        let plugin: Arc<dyn ConnectorPlugin> = Arc::new(plugin);
        if plugin.class().ends_with("SidecarFileStreamSourceConnector") {
            source = Some(plugin);
        } else if plugin.class().ends_with("SidecarFileStreamSinkConnector") {
            sink = Some(plugin);
        }
    }
    Some((child, source?, sink?))
}

/// The sink benchmark's topics, one per record size.
fn sink_topic(size: usize) -> String {
    format!("bench-sink-{size}")
}

/// Fills a sink benchmark topic with `lines`, spread evenly over its
/// partitions (untimed).
fn fill(bootstrap: &str, topic: &str, lines: &[String]) {
    let producer: ThreadedProducer<DefaultProducerContext> =
        producer_settings(bootstrap).create().unwrap();
    for (i, line) in lines.iter().enumerate() {
        let partition = i32::try_from(i).unwrap() % SINK_PARTITIONS;
        let mut record = BaseRecord::<(), str>::to(topic)
            .payload(line.as_str())
            .partition(partition);
        while let Err((_, returned)) = producer.send(record) {
            record = returned;
            std::thread::sleep(Duration::from_millis(1));
        }
    }
    producer.flush(Duration::from_secs(120)).unwrap();
}

const SIZES: [usize; 2] = [100, 1024];

/// One table row: throughput and CPU of `m`, and their ratios to `baseline`.
fn print_row(size: usize, name: &str, m: &Measurement, baseline: &Measurement) {
    println!(
        "{:<8} {:<34} {:>12.0} {:>12.3} {:>10.2} {:>10.2}",
        format!("{size} B"),
        name,
        m.rate(),
        m.cpu_per_million(),
        m.rate() / baseline.rate(),
        m.cpu_per_million() / baseline.cpu_per_million()
    );
}

fn start_broker() -> (Child, String) {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let child = Command::new(std::env::current_exe().unwrap())
        .args(["serve-broker", &port.to_string()])
        .args(SIZES.map(sink_topic))
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "broker did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
    (child, format!("127.0.0.1:{port}"))
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    if args.get(1).map(String::as_str) == Some("serve-broker") {
        let port: u16 = args[2].parse().unwrap();
        runtime.block_on(async {
            let broker = weir_runner::devkafka::DevKafka::start(port).await.unwrap();
            for topic in &args[3..] {
                broker.create_topic(topic, SINK_PARTITIONS).unwrap();
            }
            std::future::pending::<()>().await;
        });
        return;
    }
    let flag = |name: &str| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1))
            .cloned()
    };
    let records: usize = flag("--records").map_or(300_000, |r| r.parse().unwrap());
    let (mut broker, bootstrap) = match flag("--bootstrap") {
        Some(bootstrap) => (None, bootstrap),
        None => {
            let (child, bootstrap) = start_broker();
            (Some(child), bootstrap)
        }
    };
    println!(
        "weir-bench: {records} records per run, broker {bootstrap}{}",
        if broker.is_some() {
            " (embedded mock cluster, child process)"
        } else {
            ""
        }
    );
    println!(
        "{:<8} {:<34} {:>12} {:>12} {:>10} {:>10}",
        "size", "path", "records/s", "CPU-s/M", "rate ÷raw", "CPU ×raw"
    );
    let in_process = Registry::builtin().connector("FileStreamSource").unwrap();
    let in_process_sink = Registry::builtin().connector("FileStreamSink").unwrap();
    let sidecar_dir = tempfile::tempdir().unwrap();
    let mut sidecar = runtime.block_on(sidecar_plugins(sidecar_dir.path()));
    if sidecar.is_none() {
        println!(
            "(weir-file-connectors is not built beside weir-bench: no sidecar rows; run `cargo build --release --bins` first)"
        );
    }
    for size in SIZES {
        let count = if size < 1024 {
            records
        } else {
            (records / 4).max(1)
        };
        let lines: Vec<String> = (0..count)
            .map(|i| format!("{i:0>width$}", width = size))
            .collect();
        let raw = raw_producer(&bootstrap, &format!("bench-raw-{size}"), &lines);
        let string = runtime.block_on(weir_source(
            &bootstrap,
            &format!("bench-weir-{size}"),
            &lines,
            "org.apache.kafka.connect.storage.StringConverter",
            &[],
            in_process.clone(),
        ));
        let json = runtime.block_on(weir_source(
            &bootstrap,
            &format!("bench-json-{size}"),
            &lines,
            "org.apache.kafka.connect.json.JsonConverter",
            &[],
            in_process.clone(),
        ));
        let chained = runtime.block_on(weir_source(
            &bootstrap,
            &format!("bench-smt-{size}"),
            &lines,
            "org.apache.kafka.connect.json.JsonConverter",
            FIVE_SMTS,
            in_process.clone(),
        ));
        let over_sidecar = sidecar.as_ref().map(|(_, plugin, _)| {
            runtime.block_on(weir_source(
                &bootstrap,
                &format!("bench-sidecar-{size}"),
                &lines,
                "org.apache.kafka.connect.storage.StringConverter",
                &[],
                plugin.clone(),
            ))
        });
        let row = |name: &str, m: &Measurement| print_row(size, name, m, &raw);
        row("raw rdkafka ThreadedProducer", &raw);
        row("weir FileStreamSource (String)", &string);
        row("weir FileStreamSource (Json)", &json);
        row("weir FileStreamSource (Json, 5 SMTs)", &chained);
        if let Some(over_sidecar) = &over_sidecar {
            row("weir sidecar FileStreamSource (String)", over_sidecar);
            println!(
                "{:<8} sidecar source ÷ in-process (String): {:.2} records/s (CPU column: this process only, not the sidecar)",
                format!("{size} B"),
                over_sidecar.rate() / string.rate()
            );
        }
        let sink_input = sink_topic(size);
        if broker.is_none() {
            runtime.block_on(create_topic(&bootstrap, &sink_input, SINK_PARTITIONS));
        }
        fill(&bootstrap, &sink_input, &lines);
        let raw_sink = raw_consumer(&bootstrap, &sink_input, count);
        let sink = runtime.block_on(weir_sink(
            &bootstrap,
            &sink_input,
            &format!("bench-sink-{size}"),
            count,
            in_process_sink.clone(),
        ));
        let sink_row = |name: &str, m: &Measurement| print_row(size, name, m, &raw_sink);
        sink_row("raw rdkafka BaseConsumer → file", &raw_sink);
        sink_row("weir FileStreamSink (String)", &sink);
        if let Some((_, _, sidecar_sink)) = &sidecar {
            let over_sidecar = runtime.block_on(weir_sink(
                &bootstrap,
                &sink_input,
                &format!("bench-sidecar-sink-{size}"),
                count,
                sidecar_sink.clone(),
            ));
            sink_row("weir sidecar FileStreamSink (String)", &over_sidecar);
            println!(
                "{:<8} sidecar sink ÷ in-process (String): {:.2} records/s (CPU column: this process only, not the sidecar)",
                format!("{size} B"),
                over_sidecar.rate() / sink.rate()
            );
        }
        println!(
            "{:<8} 5-SMT chain ÷ no SMTs: {:.2} records/s, {:.2} CPU per record",
            format!("{size} B"),
            chained.rate() / json.rate(),
            chained.cpu_per_million() / json.cpu_per_million()
        );
    }
    if let Some(child) = broker.as_mut() {
        let _ = child.kill();
        let _ = child.wait();
    }
    if let Some((child, _, _)) = sidecar.as_mut() {
        let _ = child.kill();
        let _ = child.wait();
    }
}
