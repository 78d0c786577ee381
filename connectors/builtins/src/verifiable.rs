//! `VerifiableSource` and `VerifiableSink`, after Kafka's connectors of the
//! same names: they prove "every sequence number at least once" across
//! failures.
//!
//! Each source task emits `{"task":N,"seqno":S}` string values, S counting up
//! from 0 at `throughput` records per second, with source partition
//! `{"task":N}` and offset `{"seqno":S}`; a restarted task resumes after the
//! last committed seqno. The sink appends one JSON line per record it is
//! given to `file`, as Kafka's VerifiableSinkTask prints them: the source's
//! `task` and `seqno`, and which sink task (`sinkTask`) got which `topic`,
//! `partition` and `offset` at what `time` (ms), so a checker can count each
//! (task, seqno) pair and see which task read each partition when.

use std::time::Duration;

use async_trait::async_trait;
use serde_json::json;
use tokio::time::Instant;

use weir_api::api::{
    ConnectorError, ConnectorPlugin, JsonMap, Result, SinkRecord, SinkTask, SourceOffset,
    SourcePosition, SourceRecord, SourceTask, Task, TopicPartitionOffset,
};
use weir_api::config::{
    ConfigDef, ConfigKey, ConfigMap, ConfigType, Default, Direction, Importance, Validator,
};
use weir_api::data::{Schema, SchemaAndValue, Value};

pub const SOURCE_CLASS: &str = "org.apache.kafka.connect.tools.VerifiableSourceConnector";
pub const SINK_CLASS: &str = "org.apache.kafka.connect.tools.VerifiableSinkConnector";

const TOPIC: &str = "topic";
const THROUGHPUT: &str = "throughput";
const FILE: &str = "file";
/// Set on each task config: which task this is.
const TASK_ID: &str = "task.id";

/// `org.apache.kafka.connect.tools.VerifiableSourceConnector`.
pub struct VerifiableSource;

#[async_trait]
impl ConnectorPlugin for VerifiableSource {
    fn class(&self) -> &'static str {
        SOURCE_CLASS
    }

    fn kind(&self) -> Direction {
        Direction::Source
    }

    fn config_def(&self) -> ConfigDef {
        ConfigDef::new()
            .define(
                ConfigKey::new(TOPIC, ConfigType::String, Default::Required)
                    .importance(Importance::High)
                    .validator(Validator::NonEmptyString)
                    .doc("The topic to write the sequence numbers to"),
            )
            .define(
                ConfigKey::new(THROUGHPUT, ConfigType::Long, Default::Value("100"))
                    .importance(Importance::High)
                    .validator(Validator::AtLeast(1))
                    .doc("Records per second each task emits"),
            )
    }

    async fn task_configs(&self, config: &ConfigMap, max_tasks: usize) -> Result<Vec<ConfigMap>> {
        Ok(numbered_task_configs(config, max_tasks))
    }

    fn create_task(&self) -> Task {
        Task::Source(Box::new(VerifiableSourceTask::default()))
    }
}

#[derive(Default)]
struct VerifiableSourceTask {
    task: i64,
    topic: weir_api::api::Topic,
    interval: Duration,
    next_seqno: i64,
    next_at: Option<Instant>,
}

impl VerifiableSourceTask {
    fn partition(&self) -> std::sync::Arc<JsonMap> {
        let mut partition = JsonMap::new();
        partition.insert("task".into(), json!(self.task));
        std::sync::Arc::new(partition)
    }
}

/// A task's keys: its connector's, and the `task.id` that
/// [`numbered_task_configs`] adds.
fn task_def(connector_def: ConfigDef) -> ConfigDef {
    connector_def.define(
        ConfigKey::new(TASK_ID, ConfigType::Int, Default::Value("0"))
            .doc("Which of the connector's tasks this is"),
    )
}

#[async_trait]
impl SourceTask for VerifiableSourceTask {
    async fn open(&mut self, config: &ConfigMap, positions: &[SourcePosition]) -> Result<()> {
        let def = task_def(VerifiableSource.config_def());
        let settings = def.parse(config).map_err(ConnectorError::Config)?;
        self.task = settings
            .int(TASK_ID)
            .map_err(ConnectorError::Config)?
            .into();
        self.topic = settings
            .string(TOPIC)
            .map_err(ConnectorError::Config)?
            .into();
        // At least 1, as the definition says.
        let throughput = settings.long(THROUGHPUT).map_err(ConnectorError::Config)?;
        self.interval = Duration::from_secs_f64(1.0 / throughput as f64);
        let mine = self.partition();
        self.next_seqno = positions
            .iter()
            .filter(|p| p.partition == *mine)
            .filter_map(|p| p.offset.get("seqno").and_then(serde_json::Value::as_i64))
            .max()
            .map_or(0, |committed| committed + 1);
        Ok(())
    }

    async fn poll(&mut self, max_records: usize) -> Result<Vec<SourceRecord>> {
        let now = Instant::now();
        let next_at = *self.next_at.get_or_insert(now);
        if next_at > now {
            tokio::time::sleep_until(next_at).await;
        }
        // Everything due by now, at most `max_records`.
        let now = Instant::now();
        let due = ((now - next_at).as_secs_f64() / self.interval.as_secs_f64()) as usize + 1;
        let count = due.min(max_records.max(1));
        let partition = self.partition();
        let records = (0..count)
            .map(|i| {
                let seqno = self.next_seqno + i as i64;
                SourceRecord {
                    source_partition: partition.clone(),
                    source_offset: SourceOffset::Number("seqno", seqno),
                    topic: self.topic.clone(),
                    kafka_partition: None,
                    key: SchemaAndValue::null(),
                    value: SchemaAndValue {
                        schema: Some(Schema::string_ref()),
                        value: Value::String(
                            json!({"task": self.task, "seqno": seqno}).to_string(),
                        ),
                    },
                    timestamp_ms: None,
                    headers: Vec::new(),
                }
            })
            .collect();
        self.next_seqno += count as i64;
        self.next_at = Some(next_at + self.interval * count as u32);
        Ok(records)
    }

    async fn stop(&mut self) -> Result<()> {
        Ok(())
    }
}

/// `org.apache.kafka.connect.tools.VerifiableSinkConnector`.
pub struct VerifiableSink;

#[async_trait]
impl ConnectorPlugin for VerifiableSink {
    fn class(&self) -> &'static str {
        SINK_CLASS
    }

    fn kind(&self) -> Direction {
        Direction::Sink
    }

    fn config_def(&self) -> ConfigDef {
        ConfigDef::new().define(
            ConfigKey::new(FILE, ConfigType::String, Default::Required)
                .importance(Importance::High)
                .validator(Validator::NonEmptyString)
                .doc("The file every received value is appended to, one per line"),
        )
    }

    async fn task_configs(&self, config: &ConfigMap, max_tasks: usize) -> Result<Vec<ConfigMap>> {
        Ok(numbered_task_configs(config, max_tasks))
    }

    fn create_task(&self) -> Task {
        Task::Sink(Box::new(VerifiableSinkTask::default()))
    }
}

/// `max_tasks` (at least one) copies of the connector config, each with its
/// own `task.id`: both verifiable connectors' tasks say which one they are.
fn numbered_task_configs(config: &ConfigMap, max_tasks: usize) -> Vec<ConfigMap> {
    (0..max_tasks.max(1))
        .map(|task| {
            let mut task_config = config.clone();
            task_config.insert(TASK_ID.to_owned(), task.to_string());
            task_config
        })
        .collect()
}

#[derive(Default)]
struct VerifiableSinkTask {
    task: i64,
    file: Option<tokio::fs::File>,
}

impl VerifiableSinkTask {
    /// One record's line: what the source put in its value, and where and
    /// when this task got it.
    fn line(&self, record: &SinkRecord, now_ms: i64) -> String {
        let value = record.value.value.to_display_string();
        let mut line = match serde_json::from_str::<serde_json::Value>(&value) {
            Ok(serde_json::Value::Object(sent)) => sent,
            _ => {
                let mut raw = JsonMap::new();
                raw.insert("value".into(), json!(value));
                raw
            }
        };
        line.insert("sinkTask".into(), json!(self.task));
        line.insert("topic".into(), json!(record.topic));
        line.insert("partition".into(), json!(record.partition));
        line.insert("offset".into(), json!(record.offset));
        line.insert("time".into(), json!(now_ms));
        let mut text = serde_json::Value::Object(line).to_string();
        text.push('\n');
        text
    }
}

#[async_trait]
impl SinkTask for VerifiableSinkTask {
    async fn open(&mut self, config: &ConfigMap) -> Result<()> {
        let def = task_def(VerifiableSink.config_def());
        let settings = def.parse(config).map_err(ConnectorError::Config)?;
        self.task = settings
            .int(TASK_ID)
            .map_err(ConnectorError::Config)?
            .into();
        let path = settings.string(FILE).map_err(ConnectorError::Config)?;
        let file = tokio::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .await
            .map_err(|e| ConnectorError::Fatal(format!("opening {path}: {e}")))?;
        self.file = Some(file);
        Ok(())
    }

    async fn put(&mut self, records: &[SinkRecord]) -> Result<()> {
        use tokio::io::AsyncWriteExt;
        let now_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as i64);
        let text: String = records.iter().map(|r| self.line(r, now_ms)).collect();
        let Some(file) = self.file.as_mut() else {
            return Err(ConnectorError::Fatal("the task is not open".into()));
        };
        // One append per batch, so concurrent tasks' lines never interleave.
        file.write_all(text.as_bytes())
            .await
            .map_err(|e| ConnectorError::Fatal(format!("appending to the file: {e}")))
    }

    async fn flush(&mut self, _offsets: &[TopicPartitionOffset]) -> Result<()> {
        if let Some(file) = self.file.as_mut() {
            file.sync_data()
                .await
                .map_err(|e| ConnectorError::Fatal(format!("syncing the file: {e}")))?;
        }
        Ok(())
    }

    async fn stop(&mut self) -> Result<()> {
        self.file = None;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_sink_writes_where_and_when_each_record_was_put() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out.jsonl");
        let config = ConfigMap::from([
            (FILE.to_owned(), path.display().to_string()),
            (TASK_ID.to_owned(), "1".to_owned()),
        ]);
        let mut task = VerifiableSinkTask::default();
        task.open(&config).await.unwrap();
        let record = |value: &str, offset| SinkRecord {
            topic: "t".into(),
            partition: 2,
            offset,
            key: SchemaAndValue::null(),
            value: SchemaAndValue {
                schema: Some(Schema::string_ref()),
                value: Value::String(value.into()),
            },
            timestamp_ms: None,
            headers: Vec::new(),
        };
        task.put(&[record(r#"{"task":0,"seqno":7}"#, 40), record("plain", 41)])
            .await
            .unwrap();
        task.flush(&[]).await.unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        let lines: Vec<serde_json::Value> = text
            .lines()
            .map(|line| serde_json::from_str(line).unwrap())
            .collect();
        assert_eq!(lines.len(), 2);
        assert_eq!(
            (&lines[0]["task"], &lines[0]["seqno"], &lines[0]["sinkTask"]),
            (&json!(0), &json!(7), &json!(1))
        );
        assert_eq!(
            (
                &lines[0]["topic"],
                &lines[0]["partition"],
                &lines[0]["offset"]
            ),
            (&json!("t"), &json!(2), &json!(40))
        );
        assert!(lines[0]["time"].as_i64().unwrap() > 0);
        assert_eq!(lines[1]["value"], "plain");
    }

    #[tokio::test]
    async fn tasks_read_their_settings_through_the_connector_definitions() {
        let mut source = VerifiableSourceTask::default();
        source
            .open(&ConfigMap::from([(TOPIC.to_owned(), "t".to_owned())]), &[])
            .await
            .unwrap();
        assert_eq!(source.task, 0);
        assert_eq!(
            source.interval,
            Duration::from_millis(10),
            "throughput's default of 100 records a second"
        );
        type Case = (&'static [(&'static str, &'static str)], &'static str);
        let source_cases: [Case; 3] = [
            (
                &[],
                "invalid configuration: Missing required configuration \"topic\" which has no default value.",
            ),
            (
                &[(TOPIC, "t"), (THROUGHPUT, "0")],
                "invalid configuration: Invalid value 0 for configuration throughput: Value must be at least 1",
            ),
            (
                &[(TOPIC, "t"), (TASK_ID, "first")],
                "invalid configuration: Invalid value first for configuration task.id: Not a number of type INT",
            ),
        ];
        for (pairs, expected) in source_cases {
            let config = pairs
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect();
            let error = VerifiableSourceTask::default()
                .open(&config, &[])
                .await
                .unwrap_err();
            assert_eq!(error.to_string(), expected, "{pairs:?}");
        }
        let error = VerifiableSinkTask::default()
            .open(&ConfigMap::new())
            .await
            .unwrap_err();
        assert_eq!(
            error.to_string(),
            "invalid configuration: Missing required configuration \"file\" which has no default value."
        );
    }

    #[tokio::test(start_paused = true)]
    async fn the_source_counts_up_at_its_throughput_and_resumes_after_the_committed_seqno() {
        let config = ConfigMap::from([
            (TOPIC.to_owned(), "t".to_owned()),
            (THROUGHPUT.to_owned(), "10".to_owned()),
            (TASK_ID.to_owned(), "2".to_owned()),
        ]);
        let mut task = VerifiableSourceTask::default();
        task.open(&config, &[]).await.unwrap_or_default();
        let started = Instant::now();
        let mut values = Vec::new();
        while values.len() < 20 {
            for record in task.poll(100).await.unwrap_or_default() {
                values.push(record.value.value.to_display_string());
            }
        }
        assert_eq!(values[0], r#"{"task":2,"seqno":0}"#);
        assert_eq!(values[19], r#"{"task":2,"seqno":19}"#);
        let took = Instant::now() - started;
        assert!(
            took >= Duration::from_millis(1800),
            "10 records/s: {took:?}"
        );

        let mut committed = JsonMap::new();
        committed.insert("seqno".into(), json!(41));
        let resumed = SourcePosition {
            partition: (*task.partition()).clone(),
            offset: committed,
        };
        let mut again = VerifiableSourceTask::default();
        again.open(&config, &[resumed]).await.unwrap_or_default();
        let first = again.poll(1).await.unwrap_or_default();
        assert_eq!(
            first[0].value.value.to_display_string(),
            r#"{"task":2,"seqno":42}"#
        );
    }
}
