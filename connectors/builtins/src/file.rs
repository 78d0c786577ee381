//! `FileStreamSource` and `FileStreamSink`, Kafka Connect's file connectors.
//!
//! The source tails a file line by line; its source partition is
//! `{"filename": <path>}` and its offset `{"position": <byte after the line>}`,
//! exactly as Kafka Connect writes them, so a restarted task resumes after the
//! last committed line. The sink appends each record's value as a line.

use std::path::PathBuf;
use std::time::Duration;

use async_trait::async_trait;
use serde_json::json;
use tokio::fs::{File, OpenOptions};
use tokio::io::{AsyncReadExt, AsyncSeekExt, AsyncWriteExt};

use weir_api::api::{
    ConnectorError, ConnectorPlugin, JsonMap, Result, SinkRecord, SinkTask, SourceOffset,
    SourcePosition, SourceRecord, SourceTask, Task, TopicPartitionOffset,
};
use weir_api::config::{
    ConfigDef, ConfigKey, ConfigMap, ConfigType, Default, Direction, Importance, Validator,
};
use weir_api::data::{Schema, SchemaAndValue, Value};

pub const SOURCE_CLASS: &str = "org.apache.kafka.connect.file.FileStreamSourceConnector";
pub const SINK_CLASS: &str = "org.apache.kafka.connect.file.FileStreamSinkConnector";

const FILE: &str = "file";
const TOPIC: &str = "topic";
const BATCH_SIZE: &str = "batch.size";
const READ_CHUNK: usize = 256 * 1024;
/// How long `poll` waits when the file has no new complete line.
const IDLE_WAIT: Duration = Duration::from_millis(100);

/// `org.apache.kafka.connect.file.FileStreamSourceConnector`.
pub struct FileStreamSource;

#[async_trait::async_trait]
impl ConnectorPlugin for FileStreamSource {
    fn class(&self) -> &'static str {
        SOURCE_CLASS
    }

    fn kind(&self) -> Direction {
        Direction::Source
    }

    fn config_def(&self) -> ConfigDef {
        ConfigDef::new()
            .define(
                ConfigKey::new(FILE, ConfigType::String, Default::Null)
                    .importance(Importance::High)
                    .doc("Source filename. If not specified, the standard input will be used"),
            )
            .define(
                ConfigKey::new(TOPIC, ConfigType::String, Default::Required)
                    .importance(Importance::High)
                    .validator(Validator::NonEmptyString)
                    .doc("The topic to publish data to"),
            )
            .define(
                ConfigKey::new(BATCH_SIZE, ConfigType::Int, Default::Value("2000"))
                    .doc("The maximum number of records the source task can read from the file each time it is polled"),
            )
    }

    async fn validate(&self, config: &ConfigMap) -> Vec<(String, Vec<String>)> {
        match config.get(TOPIC) {
            Some(topic) if topic.contains(',') => vec![(
                TOPIC.to_owned(),
                vec![format!(
                    "Invalid value {topic} for configuration topic: FileStreamSourceConnector should only have a single topic when used as a source."
                )],
            )],
            _ => Vec::new(),
        }
    }

    async fn task_configs(&self, config: &ConfigMap, _max_tasks: usize) -> Result<Vec<ConfigMap>> {
        // One file is read by one task, whatever tasks.max says.
        let mut task = ConfigMap::new();
        for key in [FILE, TOPIC, BATCH_SIZE] {
            if let Some(value) = config.get(key) {
                task.insert(key.to_owned(), value.clone());
            }
        }
        Ok(vec![task])
    }

    fn create_task(&self) -> Task {
        Task::Source(Box::new(FileStreamSourceTask::default()))
    }
}

/// Reads complete lines from a growing file.
#[derive(Default)]
pub struct FileStreamSourceTask {
    path: PathBuf,
    topic: weir_api::api::Topic,
    batch_size: usize,
    file: Option<File>,
    /// File position just after the last line handed out by `poll`.
    position: u64,
    /// Bytes read after `position` that do not yet end in a newline.
    pending: Vec<u8>,
    /// Lines split off but not yet returned; kept here so that a cancelled
    /// `poll` loses nothing.
    ready: Vec<SourceRecord>,
    warned_missing: bool,
    /// The read buffer, reused by every poll.
    chunk: Vec<u8>,
    /// `{"filename": …}`, built once at open and shared by every record.
    source_partition: std::sync::Arc<JsonMap>,
}

impl FileStreamSourceTask {
    fn partition(&self) -> JsonMap {
        let mut partition = JsonMap::new();
        partition.insert("filename".into(), json!(self.path.to_string_lossy()));
        partition
    }

    async fn ensure_open(&mut self) -> Result<bool> {
        if self.file.is_some() {
            return Ok(true);
        }
        match File::open(&self.path).await {
            Ok(mut file) => {
                file.seek(std::io::SeekFrom::Start(self.position))
                    .await
                    .map_err(|e| {
                        ConnectorError::io(format!("seeking {}", self.path.display()), e)
                    })?;
                tracing::debug!(file = %self.path.display(), position = self.position, "opened source file");
                self.file = Some(file);
                Ok(true)
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                if !self.warned_missing {
                    tracing::warn!(file = %self.path.display(), "source file not found, waiting for it to appear");
                    self.warned_missing = true;
                }
                Ok(false)
            }
            Err(e) => Err(ConnectorError::io(
                format!("opening {}", self.path.display()),
                e,
            )),
        }
    }

    /// Moves complete lines from `pending` to `ready` until `ready` holds `max`.
    fn take_lines(&mut self, max: usize) {
        let mut consumed = 0usize;
        while self.ready.len() < max {
            let Some(newline) = self.pending[consumed..].iter().position(|b| *b == b'\n') else {
                break;
            };
            let end = consumed + newline;
            let mut line = &self.pending[consumed..end];
            if line.last() == Some(&b'\r') {
                line = &line[..line.len() - 1];
            }
            let text = weir_api::data::text_of(line);
            consumed = end + 1;
            let position = self.position + consumed as u64;
            self.ready.push(SourceRecord {
                source_partition: self.source_partition.clone(),
                source_offset: SourceOffset::Number(
                    "position",
                    i64::try_from(position).unwrap_or(i64::MAX),
                ),
                topic: self.topic.clone(),
                kafka_partition: None,
                key: SchemaAndValue::null(),
                value: SchemaAndValue {
                    schema: Some(Schema::string_ref()),
                    value: Value::String(text),
                },
                timestamp_ms: None,
                headers: Vec::new(),
            });
        }
        self.pending.drain(..consumed);
        self.position += consumed as u64;
    }
}

#[async_trait]
impl SourceTask for FileStreamSourceTask {
    async fn open(&mut self, config: &ConfigMap, positions: &[SourcePosition]) -> Result<()> {
        let def = FileStreamSource.config_def();
        let settings = def.parse(config).map_err(ConnectorError::Config)?;
        let path = settings
            .optional_string(FILE)
            .map_err(ConnectorError::Config)?
            .filter(|f| !f.is_empty())
            .ok_or_else(|| {
                ConnectorError::Config(
                    "file is required: Weir's FileStreamSource does not read standard input".into(),
                )
            })?;
        self.path = PathBuf::from(path);
        self.topic = settings
            .string(TOPIC)
            .map_err(ConnectorError::Config)?
            .into();
        let batch_size = settings.int(BATCH_SIZE).map_err(ConnectorError::Config)?;
        self.batch_size = usize::try_from(batch_size).map_err(|_| {
            ConnectorError::Config(format!(
                "Invalid value {batch_size} for configuration {BATCH_SIZE}: Value must be at least 0"
            ))
        })?;
        let partition = self.partition();
        self.source_partition = std::sync::Arc::new(partition.clone());
        self.position = positions
            .iter()
            .find(|p| p.partition == partition)
            .and_then(|p| p.offset.get("position"))
            .and_then(serde_json::Value::as_u64)
            .unwrap_or(0);
        tracing::info!(file = %self.path.display(), position = self.position, "file source starting");
        Ok(())
    }

    async fn poll(&mut self, max_records: usize) -> Result<Vec<SourceRecord>> {
        let max = max_records.min(self.batch_size).max(1);
        // The batch is handed over whole each poll: size it once, not by doubling.
        self.ready.reserve(max.saturating_sub(self.ready.len()));
        self.take_lines(max);
        if self.ready.len() < max && self.ensure_open().await? {
            self.chunk.resize(READ_CHUNK, 0);
            // Read until the batch is full or the file has nothing more now.
            while self.ready.len() < max {
                let read = match self.file.as_mut() {
                    Some(file) => file.read(&mut self.chunk).await.map_err(|e| {
                        ConnectorError::io(format!("reading {}", self.path.display()), e)
                    })?,
                    None => 0,
                };
                if read == 0 {
                    break;
                }
                self.pending.extend_from_slice(&self.chunk[..read]);
                self.take_lines(max);
            }
        }
        if self.ready.is_empty() {
            tokio::time::sleep(IDLE_WAIT).await;
        }
        Ok(std::mem::take(&mut self.ready))
    }

    async fn stop(&mut self) -> Result<()> {
        self.file = None;
        Ok(())
    }
}

/// `org.apache.kafka.connect.file.FileStreamSinkConnector`.
pub struct FileStreamSink;

#[async_trait::async_trait]
impl ConnectorPlugin for FileStreamSink {
    fn class(&self) -> &'static str {
        SINK_CLASS
    }

    fn kind(&self) -> Direction {
        Direction::Sink
    }

    fn config_def(&self) -> ConfigDef {
        ConfigDef::new().define(
            ConfigKey::new(FILE, ConfigType::String, Default::Null)
                .importance(Importance::High)
                .doc("Destination filename. If not specified, the standard output will be used"),
        )
    }

    async fn task_configs(&self, config: &ConfigMap, max_tasks: usize) -> Result<Vec<ConfigMap>> {
        Ok(vec![config.clone(); max_tasks.max(1)])
    }

    fn create_task(&self) -> Task {
        Task::Sink(Box::new(FileStreamSinkTask::default()))
    }
}

enum SinkOutput {
    File { path: PathBuf, file: File },
    Stdout(tokio::io::Stdout),
}

/// Appends each record's value as one line. Each `put` batch reaches the
/// file in one write before `put` returns, as Kafka Connect's FileStreamSink
/// writes each record in `put`; `flush` syncs it to disk.
#[derive(Default)]
pub struct FileStreamSinkTask {
    output: Option<SinkOutput>,
}

#[async_trait]
impl SinkTask for FileStreamSinkTask {
    async fn open(&mut self, config: &ConfigMap) -> Result<()> {
        let def = FileStreamSink.config_def();
        let settings = def.parse(config).map_err(ConnectorError::Config)?;
        let file = settings
            .optional_string(FILE)
            .map_err(ConnectorError::Config)?
            .filter(|f| !f.is_empty());
        self.output = Some(match file {
            Some(path) => {
                let path = PathBuf::from(path);
                let file = OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(&path)
                    .await
                    .map_err(|e| ConnectorError::io(format!("opening {}", path.display()), e))?;
                SinkOutput::File { path, file }
            }
            None => SinkOutput::Stdout(tokio::io::stdout()),
        });
        Ok(())
    }

    async fn put(&mut self, records: &[SinkRecord]) -> Result<()> {
        let mut text = String::new();
        for record in records {
            match &record.value.value {
                Value::String(value) => text.push_str(value),
                other => text.push_str(&other.to_display_string()),
            }
            text.push('\n');
        }
        match self.output.as_mut() {
            Some(SinkOutput::File { path, file }) => {
                let failed = |e| ConnectorError::io(format!("writing {}", path.display()), e);
                file.write_all(text.as_bytes()).await.map_err(failed)?;
                // tokio writes files on a blocking thread: wait until it has.
                file.flush().await.map_err(failed)
            }
            Some(SinkOutput::Stdout(out)) => {
                out.write_all(text.as_bytes())
                    .await
                    .map_err(|e| ConnectorError::io("writing standard output", e))?;
                out.flush()
                    .await
                    .map_err(|e| ConnectorError::io("writing standard output", e))
            }
            None => Err(ConnectorError::Fatal("sink task used before open".into())),
        }
    }

    async fn flush(&mut self, _offsets: &[TopicPartitionOffset]) -> Result<()> {
        match self.output.as_mut() {
            Some(SinkOutput::File { path, file }) => file
                .sync_data()
                .await
                .map_err(|e| ConnectorError::io(format!("syncing {}", path.display()), e)),
            Some(SinkOutput::Stdout(out)) => out
                .flush()
                .await
                .map_err(|e| ConnectorError::io("flushing standard output", e)),
            None => Ok(()),
        }
    }

    async fn stop(&mut self) -> Result<()> {
        self.flush(&[]).await?;
        self.output = None;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn source_config(path: &std::path::Path) -> ConfigMap {
        ConfigMap::from([
            (FILE.to_owned(), path.to_string_lossy().into_owned()),
            (TOPIC.to_owned(), "lines".to_owned()),
        ])
    }

    fn line_values(records: &[SourceRecord]) -> Vec<String> {
        records
            .iter()
            .map(|r| r.value.value.to_display_string())
            .collect()
    }

    #[tokio::test]
    async fn the_sink_writes_each_batch_before_put_returns() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out.txt");
        let mut task = FileStreamSinkTask::default();
        task.open(&ConfigMap::from([(
            FILE.to_owned(),
            path.to_string_lossy().into_owned(),
        )]))
        .await
        .unwrap();
        let record = |value: &str| SinkRecord {
            topic: "t".into(),
            partition: 0,
            offset: 0,
            key: SchemaAndValue::null(),
            value: SchemaAndValue {
                schema: Some(Schema::string_ref()),
                value: Value::String(value.into()),
            },
            timestamp_ms: None,
            headers: Vec::new(),
        };
        task.put(&[record("a"), record("b")]).await.unwrap();
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            "a\nb\n",
            "no flush needed"
        );
        task.put(&[record("c")]).await.unwrap();
        task.flush(&[]).await.unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "a\nb\nc\n");
    }

    #[tokio::test]
    async fn source_reads_complete_lines_and_tails() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("in.txt");
        std::fs::write(&path, "one\ntwo\r\nthr").unwrap();
        let mut task = FileStreamSourceTask::default();
        task.open(&source_config(&path), &[]).await.unwrap();
        let records = task.poll(100).await.unwrap();
        assert_eq!(line_values(&records), ["one", "two"]);
        assert_eq!(records[1].source_offset.get("position"), Some(json!(9)));
        assert_eq!(
            records[0].source_partition["filename"],
            json!(path.to_string_lossy())
        );
        assert!(task.poll(100).await.unwrap().is_empty());
        std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap()
            .write_all_sync(b"ee\nfour\n");
        let records = task.poll(100).await.unwrap();
        assert_eq!(line_values(&records), ["three", "four"]);
    }

    #[tokio::test]
    async fn source_resumes_from_committed_position() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("in.txt");
        std::fs::write(&path, "a\nb\nc\n").unwrap();
        let mut task = FileStreamSourceTask::default();
        let mut partition = JsonMap::new();
        partition.insert("filename".into(), json!(path.to_string_lossy()));
        let mut offset = JsonMap::new();
        offset.insert("position".into(), json!(2));
        task.open(
            &source_config(&path),
            &[SourcePosition { partition, offset }],
        )
        .await
        .unwrap();
        assert_eq!(line_values(&task.poll(100).await.unwrap()), ["b", "c"]);
    }

    #[tokio::test]
    async fn source_honours_batch_size() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("in.txt");
        std::fs::write(&path, "1\n2\n3\n").unwrap();
        let mut config = source_config(&path);
        config.insert(BATCH_SIZE.into(), "2".into());
        let mut task = FileStreamSourceTask::default();
        task.open(&config, &[]).await.unwrap();
        assert_eq!(task.poll(100).await.unwrap().len(), 2);
        assert_eq!(line_values(&task.poll(100).await.unwrap()), ["3"]);
    }

    #[tokio::test]
    async fn source_reads_its_settings_through_the_connector_definition() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("in.txt");
        let mut task = FileStreamSourceTask::default();
        task.open(&source_config(&path), &[]).await.unwrap();
        assert_eq!(
            task.batch_size, 2000,
            "the default, from the connector's definition"
        );
        let mut config = source_config(&path);
        config.insert(BATCH_SIZE.into(), "lots".into());
        let error = FileStreamSourceTask::default()
            .open(&config, &[])
            .await
            .unwrap_err();
        assert_eq!(
            error.to_string(),
            "invalid configuration: Invalid value lots for configuration batch.size: Not a number of type INT"
        );
        config.insert(BATCH_SIZE.into(), "-1".into());
        assert!(
            FileStreamSourceTask::default()
                .open(&config, &[])
                .await
                .is_err()
        );
        config.remove(TOPIC);
        let error = FileStreamSourceTask::default()
            .open(&config, &[])
            .await
            .unwrap_err();
        assert_eq!(
            error.to_string(),
            "invalid configuration: Missing required configuration \"topic\" which has no default value."
        );
    }

    #[tokio::test]
    async fn sink_appends_values_as_lines() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out.txt");
        let mut task = FileStreamSinkTask::default();
        let config = ConfigMap::from([(FILE.to_owned(), path.to_string_lossy().into_owned())]);
        task.open(&config).await.unwrap();
        let record = |text: &str| SinkRecord {
            topic: "t".into(),
            partition: 0,
            offset: 0,
            key: SchemaAndValue::null(),
            value: SchemaAndValue {
                schema: None,
                value: Value::String(text.into()),
            },
            timestamp_ms: None,
            headers: Vec::new(),
        };
        task.put(&[record("x"), record("y")]).await.unwrap();
        task.flush(&[]).await.unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "x\ny\n");
    }

    #[tokio::test]
    async fn a_cancelled_poll_loses_no_lines() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("in.txt");
        let text: String = (0..5000).map(|i| format!("line {i}\n")).collect();
        std::fs::write(&path, &text).unwrap();
        let mut task = FileStreamSourceTask::default();
        task.open(&source_config(&path), &[]).await.unwrap();
        // A full poll reads the whole file and returns ten lines; the rest wait in memory.
        let mut seen = line_values(&task.poll(10).await.unwrap());
        // These polls split off a batch, then are dropped at their read of the file.
        for _ in 0..5 {
            if let Some(polled) = futures_lite_poll_once(task.poll(100_000)).await {
                seen.extend(line_values(&polled.unwrap()));
            }
        }
        for _ in 0..100 {
            if seen.len() >= 5000 {
                break;
            }
            seen.extend(line_values(&task.poll(100_000).await.unwrap()));
        }
        let expected: Vec<String> = (0..5000).map(|i| format!("line {i}")).collect();
        assert_eq!(seen, expected);
    }

    /// Polls a future once and drops it, as `select!` does to a losing branch.
    async fn futures_lite_poll_once<F: std::future::Future>(future: F) -> Option<F::Output> {
        let mut future = std::pin::pin!(future);
        std::future::poll_fn(|cx| match future.as_mut().poll(cx) {
            std::task::Poll::Ready(value) => std::task::Poll::Ready(Some(value)),
            std::task::Poll::Pending => std::task::Poll::Ready(None),
        })
        .await
    }

    trait WriteAllSync {
        fn write_all_sync(self, bytes: &[u8]);
    }

    impl WriteAllSync for std::fs::File {
        fn write_all_sync(mut self, bytes: &[u8]) {
            std::io::Write::write_all(&mut self, bytes).unwrap();
        }
    }
}
