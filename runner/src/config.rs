//! Worker settings in Kafka Connect's property names: the Kafka connection,
//! default converters, offset storage and client overrides.

use std::path::PathBuf;
use std::time::Duration;

use weir_connect::client::OverridePolicy;
use weir_connect::config::{ConfigDef, ConfigKey, ConfigMap, ConfigType, Default, Importance};
use weir_connect::converter::{self, Converter};

use crate::clients::{ClientRole, ClientSettings};
use crate::error::{Error, Result};

/// Where source offsets are kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OffsetStorage {
    /// `offset.storage.file.filename` (standalone mode).
    File(PathBuf),
    /// A compacted Kafka topic, `offset.storage.topic` (distributed mode).
    Topic {
        name: String,
        partitions: i32,
        replication_factor: i32,
    },
}

/// The worker-level configuration every task on this runner shares.
#[derive(Debug, Clone)]
pub struct WorkerConfig {
    /// All worker properties as given, for converter and client settings.
    pub properties: ConfigMap,
    pub bootstrap_servers: String,
    pub offset_flush_interval: Duration,
    pub offset_storage: OffsetStorage,
    /// `connector.client.config.override.policy`.
    pub override_policy: OverridePolicy,
    /// `task.shutdown.graceful.timeout.ms`: how long a stopping task may
    /// take to finish in-flight work before it is cut short (then its
    /// connector's `stop` and the final commit get as long again each).
    pub task_shutdown_timeout: Duration,
}

const DEFAULT_CONVERTER: &str = "org.apache.kafka.connect.json.JsonConverter";

impl WorkerConfig {
    /// Reads worker properties. `standalone` selects file offset storage.
    pub fn from_properties(properties: ConfigMap, standalone: bool) -> Result<Self> {
        let def = worker_def(standalone);
        let parsed = def.parse(&properties).map_err(Error::Config)?;
        let bootstrap_servers = parsed
            .string("bootstrap.servers")
            .map_err(Error::Config)?
            .to_owned();
        let flush_ms = parsed
            .long("offset.flush.interval.ms")
            .map_err(Error::Config)?;
        let shutdown_ms = parsed
            .long("task.shutdown.graceful.timeout.ms")
            .map_err(Error::Config)?;
        let offset_storage = if standalone {
            OffsetStorage::File(PathBuf::from(
                parsed
                    .string("offset.storage.file.filename")
                    .map_err(Error::Config)?,
            ))
        } else {
            OffsetStorage::Topic {
                name: parsed
                    .string("offset.storage.topic")
                    .map_err(Error::Config)?
                    .to_owned(),
                partitions: parsed
                    .int("offset.storage.partitions")
                    .map_err(Error::Config)?,
                replication_factor: i32::from(
                    parsed
                        .short("offset.storage.replication.factor")
                        .map_err(Error::Config)?,
                ),
            }
        };
        drop(parsed);
        let override_policy = OverridePolicy::from_worker(&properties).map_err(Error::Config)?;
        let worker = WorkerConfig {
            properties,
            bootstrap_servers,
            offset_flush_interval: Duration::from_millis(flush_ms.max(1) as u64),
            offset_storage,
            override_policy,
            task_shutdown_timeout: Duration::from_millis(shutdown_ms.max(0) as u64),
        };
        // A bad client property fails start-up, naming the property.
        for role in [
            ClientRole::Producer,
            ClientRole::Consumer,
            ClientRole::Admin,
            ClientRole::Worker,
        ] {
            worker
                .client_settings(&ConfigMap::new(), role)?
                .to_rdkafka()?;
        }
        Ok(worker)
    }

    /// The key or value converter for a connector: the connector's own
    /// `key.converter`/`value.converter` with its prefixed settings, else the
    /// worker's. Returned with its class name, for error reports.
    pub fn converter(
        &self,
        connector: &ConfigMap,
        which: ConverterRole,
    ) -> Result<(Box<dyn Converter>, String)> {
        let key = which.key();
        let default = match which {
            ConverterRole::Header => converter::SIMPLE_HEADER_CONVERTER,
            _ => DEFAULT_CONVERTER,
        };
        let (class, source) = match connector.get(key) {
            Some(class) => (class.clone(), connector),
            None => (
                self.properties
                    .get(key)
                    .cloned()
                    .unwrap_or_else(|| default.to_owned()),
                &self.properties,
            ),
        };
        let prefix = format!("{key}.");
        let settings: ConfigMap = source
            .iter()
            .filter_map(|(k, v)| k.strip_prefix(&prefix).map(|s| (s.to_owned(), v.clone())))
            .collect();
        if which == ConverterRole::Header {
            let converter = converter::create_header(&class, &settings).map_err(Error::Convert)?;
            let class = converter::resolve_header_class(&class).map_or(class, str::to_owned);
            return Ok((converter, class));
        }
        let converter = converter::create(&class, &settings).map_err(Error::Convert)?;
        let class = converter::resolve_class(&class).map_or(class, str::to_owned);
        Ok((converter, class))
    }

    /// The Kafka client properties for one of a connector's clients (or,
    /// with [`ClientRole::Worker`], the worker's own), layered as Kafka
    /// Connect layers them. See [`crate::clients`].
    pub fn client_settings(
        &self,
        connector: &ConfigMap,
        role: ClientRole,
    ) -> Result<ClientSettings> {
        ClientSettings::layered(
            &self.bootstrap_servers,
            &self.properties,
            connector,
            role,
            self.override_policy,
        )
    }
}

/// The worker settings the runner reads itself, with Kafka Connect's
/// defaults: the one place each is defined and parsed.
pub fn worker_def(standalone: bool) -> ConfigDef {
    let key = |name, config_type, default, doc| {
        ConfigKey::new(name, config_type, default)
            .importance(Importance::High)
            .doc(doc)
    };
    let def = ConfigDef::new()
        .define(key(
            "bootstrap.servers",
            ConfigType::String,
            Default::Value("localhost:9092"),
            "A list of host/port pairs to use for establishing the initial connection to the Kafka cluster.",
        ))
        .define(
            key(
                "offset.flush.interval.ms",
                ConfigType::Long,
                Default::Value("60000"),
                "Interval at which to try committing offsets for tasks.",
            )
            .importance(Importance::Low),
        )
        .define(
            key(
                "task.shutdown.graceful.timeout.ms",
                ConfigType::Long,
                Default::Value("5000"),
                "Amount of time to wait for tasks to shutdown gracefully.",
            )
            .importance(Importance::Low),
        );
    if standalone {
        def.define(key(
            "offset.storage.file.filename",
            ConfigType::String,
            Default::Required,
            "File to store offset data in.",
        ))
    } else {
        def.define(key(
            "offset.storage.topic",
            ConfigType::String,
            Default::Value("connect-offsets"),
            "The name of the Kafka topic where source connector offsets are stored.",
        ))
        .define(key(
            "offset.storage.partitions",
            ConfigType::Int,
            Default::Value("25"),
            "The number of partitions used when creating the offset storage topic.",
        ))
        .define(key(
            "offset.storage.replication.factor",
            ConfigType::Short,
            Default::Value("-1"),
            "Replication factor used when creating the offset storage topic; -1 for the broker's default.",
        ))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConverterRole {
    Key,
    Value,
    /// `header.converter`: SimpleHeaderConverter unless set.
    Header,
}

impl ConverterRole {
    fn key(self) -> &'static str {
        match self {
            ConverterRole::Key => "key.converter",
            ConverterRole::Value => "value.converter",
            ConverterRole::Header => "header.converter",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use weir_connect::data::{Schema, SchemaAndValue, Value};

    fn props(pairs: &[(&str, &str)]) -> ConfigMap {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn worker_settings_parse_through_their_definition() {
        let worker = WorkerConfig::from_properties(props(&[]), false).unwrap();
        assert_eq!(worker.bootstrap_servers, "localhost:9092");
        assert_eq!(worker.offset_flush_interval, Duration::from_secs(60));
        assert_eq!(worker.task_shutdown_timeout, Duration::from_secs(5));
        assert_eq!(
            worker.offset_storage,
            OffsetStorage::Topic {
                name: "connect-offsets".into(),
                partitions: 25,
                replication_factor: -1,
            }
        );
        let refused = |pairs: &[(&str, &str)], standalone| {
            WorkerConfig::from_properties(props(pairs), standalone)
                .err()
                .map(|e| e.to_string())
                .unwrap_or_default()
        };
        assert!(
            refused(&[("offset.flush.interval.ms", "often")], false).contains(
                "Invalid value often for configuration offset.flush.interval.ms: Not a number of type LONG"
            )
        );
        assert!(refused(&[], true).contains(
            "Missing required configuration \"offset.storage.file.filename\" which has no default value."
        ));
        assert!(
            refused(&[("offset.storage.partitions", "40000000000")], false).contains(
                "Invalid value 40000000000 for configuration offset.storage.partitions: Not a number of type INT"
            )
        );
    }

    #[test]
    fn connector_converter_overrides_worker_default() {
        let worker = WorkerConfig::from_properties(
            props(&[
                (
                    "value.converter",
                    "org.apache.kafka.connect.json.JsonConverter",
                ),
                ("value.converter.schemas.enable", "false"),
                ("offset.storage.file.filename", "/tmp/x"),
            ]),
            true,
        )
        .unwrap();
        let line = SchemaAndValue {
            schema: Some(Schema::string_ref()),
            value: Value::String("a".into()),
        };
        let (default, class) = worker
            .converter(&ConfigMap::new(), ConverterRole::Value)
            .unwrap();
        assert_eq!(class, "org.apache.kafka.connect.json.JsonConverter");
        assert_eq!(default.to_kafka("t", &line).unwrap().unwrap(), br#""a""#);
        let connector = props(&[("value.converter", "StringConverter")]);
        let (own, class) = worker.converter(&connector, ConverterRole::Value).unwrap();
        assert_eq!(class, "org.apache.kafka.connect.storage.StringConverter");
        assert_eq!(own.to_kafka("t", &line).unwrap().unwrap(), b"a");
    }

    #[test]
    fn client_settings_layer_worker_and_connector_overrides() {
        let worker = WorkerConfig::from_properties(
            props(&[
                ("bootstrap.servers", "b:1"),
                ("producer.linger.ms", "7"),
                ("producer.acks", "1"),
            ]),
            false,
        )
        .unwrap();
        let connector = props(&[("producer.override.acks", "all")]);
        let settings = worker
            .client_settings(&connector, ClientRole::Producer)
            .unwrap();
        assert_eq!(settings.get("bootstrap.servers"), Some("b:1"));
        assert_eq!(settings.get("linger.ms"), Some("7"));
        assert_eq!(settings.get("acks"), Some("all"));
        assert!(
            matches!(worker.offset_storage, OffsetStorage::Topic { ref name, .. } if name == "connect-offsets")
        );
    }

    #[test]
    fn a_bad_worker_client_property_fails_start_up_naming_it() {
        let error =
            WorkerConfig::from_properties(props(&[("producer.security.protocol", "TLS")]), false)
                .unwrap_err()
                .to_string();
        assert!(error.contains("producer.security.protocol"), "{error}");
    }

    #[test]
    fn standalone_needs_an_offsets_file() {
        assert!(WorkerConfig::from_properties(ConfigMap::new(), true).is_err());
    }
}
