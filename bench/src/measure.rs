//! One measurement, run in a child process of its own so that its CPU time
//! (every thread: librdkafka's included) and its peak RSS belong to the path
//! measured and nothing else. The parent passes the job as flags and reads
//! back one `measured …` line.

use std::io::{BufRead, Write};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::{ClientConfig, Message, Offset, TopicPartitionList};
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;
use weir_connect::api::{ConnectorPlugin, SourcePosition, TaskIdentity};
use weir_connect::config::ConfigMap;
use weir_connect::registry::Registry;
use weir_runner::WorkerConfig;

use crate::raw_reports::RawReports;
use weir_runner::host::remote;
use weir_runner::offsets::FileOffsetStore;
use weir_runner::task::{self, TargetState, TaskContext, TaskEvent, TaskId};

/// Partitions of each sink benchmark topic: enough that the embedded broker,
/// which keeps a few MiB a partition, still holds every record.
pub const SINK_PARTITIONS: i32 = 32;

/// A chain of five SMTs over each record: wrap it in a struct, rename the
/// field, add the topic as a field, name the schema, add a header.
pub const FIVE_SMTS: &[(&str, &str)] = &[
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

/// What a child process measures.
#[derive(Debug, Clone)]
pub struct Job {
    /// `raw-source`, `raw-sink`, `source` or `sink`.
    pub kind: String,
    pub bootstrap: String,
    pub topic: String,
    pub records: usize,
    /// The source's input file (one record per line).
    pub input: Option<String>,
    /// `string` or `json` (schemas on).
    pub converter: String,
    pub smts: bool,
    /// The sidecar's socket and pid, for the sidecar paths.
    pub sidecar: Option<(String, u32)>,
}

impl Job {
    pub fn to_args(&self) -> Vec<String> {
        let mut args = vec![
            "measure".to_owned(),
            self.kind.clone(),
            self.bootstrap.clone(),
            self.topic.clone(),
            self.records.to_string(),
            self.input.clone().unwrap_or_else(|| "-".into()),
            self.converter.clone(),
            self.smts.to_string(),
        ];
        if let Some((socket, pid)) = &self.sidecar {
            args.push(socket.clone());
            args.push(pid.to_string());
        }
        args
    }

    fn from_args(args: &[String]) -> Job {
        Job {
            kind: args[0].clone(),
            bootstrap: args[1].clone(),
            topic: args[2].clone(),
            records: args[3].parse().expect("records"),
            input: (args[4] != "-").then(|| args[4].clone()),
            converter: args[5].clone(),
            smts: args[6] == "true",
            sidecar: args
                .get(7)
                .map(|socket| (socket.clone(), args[8].parse().expect("sidecar pid"))),
        }
    }
}

/// What one child measured.
#[derive(Debug, Clone, Copy)]
pub struct Measurement {
    pub records: usize,
    pub wall: Duration,
    /// CPU of the measuring process, plus the sidecar's on sidecar paths.
    pub cpu: Duration,
    /// Peak resident set of the measuring process.
    pub rss_kib: u64,
}

impl Measurement {
    pub fn rate(&self) -> f64 {
        self.records as f64 / self.wall.as_secs_f64()
    }

    pub fn cpu_per_million(&self) -> f64 {
        self.cpu.as_secs_f64() * 1_000_000.0 / self.records as f64
    }

    pub fn to_line(self) -> String {
        format!(
            "measured {} {} {} {}",
            self.records,
            self.wall.as_secs_f64(),
            self.cpu.as_secs_f64(),
            self.rss_kib
        )
    }

    pub fn from_line(line: &str) -> Option<Measurement> {
        let mut fields = line.strip_prefix("measured ")?.split_whitespace();
        Some(Measurement {
            records: fields.next()?.parse().ok()?,
            wall: Duration::from_secs_f64(fields.next()?.parse().ok()?),
            cpu: Duration::from_secs_f64(fields.next()?.parse().ok()?),
            rss_kib: fields.next()?.parse().ok()?,
        })
    }
}

/// User + system CPU time of process `pid` (`self` for this one) so far.
pub fn cpu_time(pid: &str) -> Duration {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name (which may contain spaces) start at index 2.
    let after = stat.rsplit_once(')').map(|(_, rest)| rest).unwrap_or("");
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<u64>().ok())
            .unwrap_or(0)
    };
    // utime and stime are fields 14 and 15 of /proc/PID/stat: 11 and 12 here.
    Duration::from_millis((ticks(11) + ticks(12)) * 1000 / clock_ticks())
}

/// The CPU time of this process's waited-for children.
fn children_cpu_time() -> Duration {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let after = stat.rsplit_once(')').map(|(_, rest)| rest).unwrap_or("");
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<u64>().ok())
            .unwrap_or(0)
    };
    // cutime and cstime are fields 16 and 17 of /proc/PID/stat: 13 and 14 here.
    Duration::from_millis((ticks(13) + ticks(14)) * 1000 / clock_ticks())
}

fn clock_ticks() -> u64 {
    std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(100)
}

/// Peak resident set of this process, in KiB.
fn peak_rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find_map(|line| line.strip_prefix("VmHWM:"))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// CPU of this process and of the sidecar, if any.
struct CpuClock {
    sidecar: Option<String>,
}

impl CpuClock {
    fn now(&self) -> Duration {
        cpu_time("self") + self.sidecar.as_deref().map(cpu_time).unwrap_or_default()
    }
}

/// The producer settings Weir's source path uses by default (idempotent,
/// `acks=all`, `linger.ms=5`), so that the raw client does the same work.
pub fn producer_settings(bootstrap: &str) -> ClientConfig {
    let mut config = ClientConfig::new();
    config
        .set("bootstrap.servers", bootstrap)
        .set("acks", "all")
        .set("enable.idempotence", "true")
        .set("linger.ms", "5");
    for (key, value) in std::env::var("WEIR_BENCH_PRODUCER")
        .unwrap_or_default()
        .split(',')
        .filter_map(|pair| pair.split_once('='))
    {
        config.set(key, value);
    }
    config
}

/// Runs the job named by `args` (after `measure`) and prints its result.
pub fn main(args: &[String]) {
    let job = Job::from_args(args);
    let clock = CpuClock {
        sidecar: job.sidecar.as_ref().map(|(_, pid)| pid.to_string()),
    };
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let measured = match job.kind.as_str() {
        "raw-source" => raw_source(&job, &clock),
        "kcat-source" => kcat_source(&job),
        "raw-sink" => raw_sink(&job, &clock),
        "source" | "sink" => runtime.block_on(weir_task(&job, &clock)),
        other => panic!("unknown measurement {other}"),
    };
    println!("{}", measured.to_line());
}

/// The fastest raw producer for the source's work, written as kcat's
/// producer loop is: read the file a line at a time into one reused buffer,
/// produce each line, and serve delivery reports on this thread, waiting in
/// librdkafka when its queue is full. Timed from the first acknowledged
/// record (steady state, as the Weir rows): librdkafka 2.12's idempotent
/// producer sometimes waits ~0.45 s for its producer id at start.
fn raw_source(job: &Job, clock: &CpuClock) -> Measurement {
    let producer: BaseProducer = producer_settings(&job.bootstrap)
        .create()
        .expect("producer");
    let mut reports = RawReports::new(&producer);
    let input = std::fs::File::open(job.input.as_deref().expect("input")).expect("input");
    let mut input = std::io::BufReader::with_capacity(1 << 20, input);
    let mut line = Vec::with_capacity(2048);
    let mut sent = 0;
    let mut window = None;
    let mut serve = |reports: &mut RawReports, wait_ms| {
        reports.serve(wait_ms);
        if window.is_none() && reports.delivered > 0 {
            window = Some((Instant::now(), clock.now(), reports.delivered));
        }
    };
    loop {
        line.clear();
        if input.read_until(b'\n', &mut line).expect("read") == 0 {
            break;
        }
        let value = line.strip_suffix(b"\n").unwrap_or(&line);
        let mut record = BaseRecord::<(), [u8]>::to(&job.topic).payload(value);
        loop {
            match producer.send(record) {
                Ok(()) => break,
                Err((_, returned)) => {
                    record = returned;
                    serve(&mut reports, 10);
                }
            }
        }
        sent += 1;
        if sent % 1024 == 0 {
            serve(&mut reports, 0);
        }
    }
    while producer.in_flight_count() > 0 {
        serve(&mut reports, 10);
    }
    assert_eq!(reports.failed, 0, "failed deliveries");
    assert_eq!(sent, job.records, "lines in the input");
    let (start, cpu, before) = window.expect("a record was acknowledged");
    Measurement {
        records: sent - before,
        wall: start.elapsed(),
        cpu: clock.now() - cpu,
        rss_kib: peak_rss_kib(),
    }
}

/// Whether `kcat` is installed (the bench prints its row only then).
pub fn kcat_installed() -> bool {
    std::process::Command::new("kcat")
        .arg("-V")
        .stdout(std::process::Stdio::null())
        .status()
        .is_ok_and(|status| status.success())
}

/// `kcat -P` producing the same file with the same producer settings as
/// the raw producer, timed over its whole run (it has no startup wait to
/// leave out); its CPU is the child's.
fn kcat_source(job: &Job) -> Measurement {
    let mut command = std::process::Command::new("kcat");
    command.args(["-P", "-b", &job.bootstrap, "-t", &job.topic]);
    for (key, value) in producer_settings(&job.bootstrap).config_map().iter() {
        if *key != "bootstrap.servers" {
            command.arg("-X").arg(format!("{key}={value}"));
        }
    }
    command.args(["-l", job.input.as_deref().expect("input")]);
    let cpu = children_cpu_time();
    let start = Instant::now();
    let status = command.status().expect("kcat");
    let wall = start.elapsed();
    assert!(status.success(), "kcat failed: {status}");
    Measurement {
        records: job.records,
        wall,
        cpu: children_cpu_time() - cpu,
        rss_kib: 0,
    }
}

/// The end offset of each partition of `topic`, checking that the broker
/// still holds every record from offset 0.
pub fn end_offsets(bootstrap: &str, topic: &str) -> Vec<(i32, i64)> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .create()
        .expect("consumer");
    (0..SINK_PARTITIONS)
        .map(|partition| {
            let (low, high) = consumer
                .fetch_watermarks(topic, partition, Duration::from_secs(10))
                .expect("watermarks");
            assert_eq!(low, 0, "the broker dropped records of {topic}/{partition}");
            (partition, high)
        })
        .collect()
}

/// The fastest raw consumer for the sink's work: every partition assigned
/// from the beginning, each value written as a line to a buffered file,
/// fsynced at the end. Timed from the first record (steady state).
fn raw_sink(job: &Job, clock: &CpuClock) -> Measurement {
    let dir = tempfile::tempdir().expect("tempdir");
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", &job.bootstrap)
        .set("group.id", format!("bench-raw-{}", job.topic))
        .set("enable.auto.commit", "false")
        // As Weir's sink consumer: librdkafka's default pauses a partition
        // for 1 s whenever its prefetch queue is full.
        .set("fetch.queue.backoff.ms", "10")
        .set("queued.max.messages.kbytes", "4096")
        .create()
        .expect("consumer");
    let mut assignment = TopicPartitionList::new();
    for partition in 0..SINK_PARTITIONS {
        assignment
            .add_partition_offset(&job.topic, partition, Offset::Beginning)
            .expect("partition");
    }
    consumer.assign(&assignment).expect("assign");
    let mut out = std::io::BufWriter::with_capacity(
        1 << 20,
        std::fs::File::create(dir.path().join("out.txt")).expect("out"),
    );
    let mut read = 0;
    let mut window = None;
    while read < job.records {
        if let Some(message) = consumer.poll(Duration::from_millis(100)) {
            let message = message.expect("message");
            window.get_or_insert_with(|| (Instant::now(), clock.now(), read));
            out.write_all(message.payload().unwrap_or_default())
                .expect("write");
            out.write_all(b"\n").expect("write");
            read += 1;
        }
    }
    out.into_inner().expect("flush").sync_all().expect("fsync");
    let (start, cpu, before) = window.expect("records");
    Measurement {
        records: read - before,
        wall: start.elapsed(),
        cpu: clock.now() - cpu,
        rss_kib: peak_rss_kib(),
    }
}

/// The connector plugin the job runs: built in, or served by the sidecar.
async fn plugin(job: &Job) -> Arc<dyn ConnectorPlugin> {
    let source = job.kind == "source";
    let Some((socket, _)) = &job.sidecar else {
        let class = if source {
            "FileStreamSource"
        } else {
            "FileStreamSink"
        };
        return Registry::builtin().connector(class).expect("built-in");
    };
    let channel =
        remote::channel(&remote::ChannelTarget::Unix(socket.into())).expect("sidecar channel");
    let handshake = remote::handshake(&channel, "bench")
        .await
        .expect("the sidecar answers");
    let wanted = if source {
        "SidecarFileStreamSourceConnector"
    } else {
        "SidecarFileStreamSinkConnector"
    };
    // The probe runs as in a runner, for as long as the benchmark process.
    let liveness = weir_runner::host::liveness::Liveness::probe(
        "bench",
        channel.clone(),
        tokio_util::sync::CancellationToken::new(),
    );
    remote::SidecarPlugin::from_handshake("bench", &channel, &liveness, &handshake)
        .into_iter()
        .map(|plugin| Arc::new(plugin) as Arc<dyn ConnectorPlugin>)
        .find(|plugin| plugin.class().ends_with(wanted))
        .expect("the sidecar serves the file connectors")
}

/// Weir's real task loop, in-process or over the sidecar. A source is done
/// when the offset of the input's last line is committed, and is timed
/// from the task's start; a sink is done when the committed offsets reach
/// the end of every partition, and is timed from its first commit, so that
/// it measures steady state rather than joining the group.
async fn weir_task(job: &Job, clock: &CpuClock) -> Measurement {
    let dir = tempfile::tempdir().expect("tempdir");
    let converter = match job.converter.as_str() {
        "json" => "org.apache.kafka.connect.json.JsonConverter",
        _ => "org.apache.kafka.connect.storage.StringConverter",
    };
    let offsets_file = dir.path().join("offsets");
    let worker: ConfigMap = [
        ("bootstrap.servers", job.bootstrap.as_str()),
        (
            "offset.storage.file.filename",
            offsets_file.to_str().expect("path"),
        ),
        ("offset.flush.interval.ms", "50"),
        ("value.converter", converter),
        ("value.converter.schemas.enable", "true"),
        (
            "key.converter",
            "org.apache.kafka.connect.storage.StringConverter",
        ),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .chain(
        std::env::var("WEIR_BENCH_WORKER")
            .unwrap_or_default()
            .split(',')
            .filter_map(|pair| pair.split_once('='))
            .map(|(k, v)| (k.to_owned(), v.to_owned())),
    )
    .collect();
    let worker = Arc::new(WorkerConfig::from_properties(worker, true).expect("worker config"));
    let source = job.kind == "source";
    let plugin = plugin(job).await;
    let out = dir.path().join("out.txt");
    let mut config: ConfigMap = if source {
        [
            ("file", job.input.as_deref().expect("input")),
            ("topic", job.topic.as_str()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
    } else {
        [
            ("file", out.to_str().expect("path")),
            ("topics", job.topic.as_str()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
    };
    if job.smts {
        config.extend(
            FIVE_SMTS
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned())),
        );
    }
    // Unique per run: each run reads its topic from the start in a group of its own.
    let name = format!("bench-{}-{}-{}", job.kind, job.topic, std::process::id());
    config.insert("connector.class".into(), plugin.class().to_owned());
    config.insert("name".into(), name.clone());
    let (events, mut received) = mpsc::unbounded_channel();
    let (_target, target_rx) = watch::channel(TargetState::Running);
    let cancel = CancellationToken::new();
    let context = TaskContext {
        key: TaskId {
            connector: name.clone(),
            task: 0,
        },
        task_count: 1,
        config,
        epoch: 0,
        worker,
        offsets: Arc::new(FileOffsetStore::new(offsets_file)),
        target: target_rx,
        cancel: cancel.clone(),
        events,
        lease: weir_runner::lease::Lease::unbounded(),
        metrics: weir_runner::metrics::TaskMetrics::detached(),
        tap: weir_runner::tap::TaskTap::detached("c", 0),
        claims: weir_runner::claims::PartitionClaims::unclaimed(),
        producers: weir_runner::producers::ProducerPool::default(),
    };
    let input_size = job
        .input
        .as_ref()
        .and_then(|input| std::fs::metadata(input).ok())
        .map_or(0, |m| m.len());
    let ends = if source {
        Vec::new()
    } else {
        end_offsets(&job.bootstrap, &job.topic)
    };
    let total: i64 = ends.iter().map(|(_, end)| end).sum();
    let mut committed = std::collections::BTreeMap::new();
    let mut progress = |positions: &[SourcePosition]| -> i64 {
        if source {
            let position = positions
                .iter()
                .filter_map(|p| p.offset["position"].as_u64())
                .max()
                .unwrap_or(0);
            // Lines are all the same length: records = bytes ÷ line length.
            let line = input_size / job.records.max(1) as u64;
            i64::try_from(position / line.max(1)).unwrap_or(0)
        } else {
            for position in positions {
                if let (Some(partition), Some(offset)) = (
                    position.partition["kafka_partition"].as_i64(),
                    position.offset["kafka_offset"].as_i64(),
                ) {
                    committed.insert(partition, offset);
                }
            }
            committed.values().sum()
        }
    };
    let goal = if source {
        i64::try_from(job.records).unwrap_or(i64::MAX)
    } else {
        total
    };
    let identity = TaskIdentity {
        connector: name.clone(),
        task: 0,
        epoch: 0,
    };
    let mut window = (Instant::now(), clock.now(), 0_i64);
    let handle = task::spawn(context, plugin.create_task_for(&identity));
    let mut finished = None;
    let mut first = true;
    while let Some(event) = received.recv().await {
        match event {
            TaskEvent::OffsetsCommitted { positions, .. } => {
                let done = progress(&positions);
                if std::env::var_os("WEIR_BENCH_TRACE").is_some() {
                    eprintln!("{:?} committed {done}", window.0.elapsed());
                }
                if first {
                    window = (Instant::now(), clock.now(), done);
                }
                first = false;
                if done >= goal {
                    finished = Some(window.0.elapsed());
                    break;
                }
            }
            TaskEvent::Status {
                state: task::TaskState::Failed,
                trace,
                ..
            } => panic!("{name} failed: {trace}"),
            _ => {}
        }
    }
    let cpu = clock.now() - window.1;
    let rss_kib = peak_rss_kib();
    cancel.cancel();
    handle.await.expect("task");
    Measurement {
        records: usize::try_from(goal - window.2).unwrap_or(0),
        wall: finished.expect("the task finished"),
        cpu,
        rss_kib,
    }
}
