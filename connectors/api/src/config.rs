//! Config definitions in Kafka Connect's `ConfigDef` shape, the base
//! connector keys every connector shares, and validation with Kafka Connect's
//! error texts.

use std::collections::BTreeMap;

/// A connector or task configuration: string keys to string values.
pub type ConfigMap = BTreeMap<String, String>;

/// `ConfigDef.Type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConfigType {
    Boolean,
    String,
    Int,
    Short,
    Long,
    Double,
    List,
    Class,
    Password,
}

impl ConfigType {
    pub fn name(self) -> &'static str {
        match self {
            ConfigType::Boolean => "BOOLEAN",
            ConfigType::String => "STRING",
            ConfigType::Int => "INT",
            ConfigType::Short => "SHORT",
            ConfigType::Long => "LONG",
            ConfigType::Double => "DOUBLE",
            ConfigType::List => "LIST",
            ConfigType::Class => "CLASS",
            ConfigType::Password => "PASSWORD",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Importance {
    High,
    Medium,
    Low,
}

impl Importance {
    pub fn name(self) -> &'static str {
        match self {
            Importance::High => "HIGH",
            Importance::Medium => "MEDIUM",
            Importance::Low => "LOW",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Width {
    None,
    Short,
    Medium,
    Long,
}

impl Width {
    pub fn name(self) -> &'static str {
        match self {
            Width::None => "NONE",
            Width::Short => "SHORT",
            Width::Medium => "MEDIUM",
            Width::Long => "LONG",
        }
    }
}

/// Value checks beyond the type, with Kafka Connect's messages.
#[derive(Debug, Clone, PartialEq)]
pub enum Validator {
    AtLeast(i64),
    OneOf(&'static [&'static str]),
    NonEmptyString,
    /// `NonEmptyStringWithoutControlChars`, used for connector names.
    NonEmptyNoControlChars,
}

/// What a key defaults to.
#[derive(Debug, Clone, PartialEq)]
pub enum Default {
    /// No default: the key is required.
    Required,
    /// Defaults to null (absent).
    Null,
    Value(&'static str),
}

/// One key of a config definition (`ConfigDef.ConfigKey`).
#[derive(Debug, Clone, PartialEq)]
pub struct ConfigKey {
    pub name: &'static str,
    pub config_type: ConfigType,
    pub default: Default,
    pub validator: Option<Validator>,
    pub importance: Importance,
    pub documentation: &'static str,
    pub group: &'static str,
    pub order: i32,
    pub width: Width,
    pub display_name: &'static str,
}

impl ConfigKey {
    pub fn new(name: &'static str, config_type: ConfigType, default: Default) -> Self {
        ConfigKey {
            name,
            config_type,
            default,
            validator: None,
            importance: Importance::Low,
            documentation: "",
            group: "",
            order: -1,
            width: Width::None,
            display_name: name,
        }
    }

    pub fn importance(mut self, importance: Importance) -> Self {
        self.importance = importance;
        self
    }

    pub fn doc(mut self, documentation: &'static str) -> Self {
        self.documentation = documentation;
        self
    }

    pub fn validator(mut self, validator: Validator) -> Self {
        self.validator = Some(validator);
        self
    }

    pub fn grouped(mut self, group: &'static str, order: i32, width: Width) -> Self {
        self.group = group;
        self.order = order;
        self.width = width;
        self
    }

    pub fn display(mut self, display_name: &'static str) -> Self {
        self.display_name = display_name;
        self
    }

    pub fn is_required(&self) -> bool {
        matches!(self.default, Default::Required)
    }

    pub fn default_value(&self) -> Option<&'static str> {
        match self.default {
            Default::Value(value) => Some(value),
            Default::Required | Default::Null => None,
        }
    }

    /// Checks one raw value; returns Kafka Connect's error messages.
    pub fn check(&self, raw: Option<&str>) -> Vec<String> {
        let Some(raw) = raw.or(self.default_value()) else {
            return if self.is_required() {
                vec![format!(
                    "Missing required configuration \"{}\" which has no default value.",
                    self.name
                )]
            } else {
                Vec::new()
            };
        };
        if let Err(reason) = parse_typed(self.config_type, raw) {
            return vec![invalid(raw, self.name, &reason)];
        }
        match &self.validator {
            None => Vec::new(),
            Some(Validator::AtLeast(min)) => match raw.trim().parse::<i64>() {
                Ok(value) if value < *min => {
                    vec![invalid(
                        raw,
                        self.name,
                        &format!("Value must be at least {min}"),
                    )]
                }
                _ => Vec::new(),
            },
            Some(Validator::OneOf(allowed)) => {
                if allowed.iter().any(|a| a.eq_ignore_ascii_case(raw.trim())) {
                    Vec::new()
                } else {
                    vec![invalid(
                        raw,
                        self.name,
                        &format!("String must be one of: {}", allowed.join(", ")),
                    )]
                }
            }
            Some(Validator::NonEmptyNoControlChars) => {
                if raw.trim().is_empty() {
                    vec![invalid(raw, self.name, "String may not be empty")]
                } else if raw.chars().any(char::is_control) {
                    vec![invalid(
                        raw,
                        self.name,
                        "String may not contain control sequences",
                    )]
                } else {
                    Vec::new()
                }
            }
            Some(Validator::NonEmptyString) => {
                if raw.trim().is_empty() {
                    vec![invalid(raw, self.name, "String must be non-empty")]
                } else {
                    Vec::new()
                }
            }
        }
    }
}

fn invalid(raw: &str, name: &str, reason: &str) -> String {
    format!("Invalid value {raw} for configuration {name}: {reason}")
}

fn parse_typed(config_type: ConfigType, raw: &str) -> Result<(), String> {
    let trimmed = raw.trim();
    let ok = match config_type {
        ConfigType::Boolean => {
            trimmed.eq_ignore_ascii_case("true") || trimmed.eq_ignore_ascii_case("false")
        }
        ConfigType::Int => trimmed.parse::<i32>().is_ok(),
        ConfigType::Short => trimmed.parse::<i16>().is_ok(),
        ConfigType::Long => trimmed.parse::<i64>().is_ok(),
        ConfigType::Double => trimmed.parse::<f64>().is_ok(),
        ConfigType::String | ConfigType::List | ConfigType::Class | ConfigType::Password => true,
    };
    if ok {
        Ok(())
    } else if config_type == ConfigType::Boolean {
        Err("Expected value to be either true or false".to_owned())
    } else {
        Err(format!("Not a number of type {}", config_type.name()))
    }
}

/// Splits a LIST value on commas, trimming blanks.
pub fn parse_list(raw: &str) -> Vec<String> {
    raw.split(',')
        .map(str::trim)
        .filter(|item| !item.is_empty())
        .map(str::to_owned)
        .collect()
}

/// An ordered set of config keys.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ConfigDef {
    pub keys: Vec<ConfigKey>,
}

impl ConfigDef {
    pub fn new() -> Self {
        ConfigDef::default()
    }

    pub fn define(mut self, key: ConfigKey) -> Self {
        self.keys.push(key);
        self
    }

    pub fn extend(mut self, other: ConfigDef) -> Self {
        for key in other.keys {
            if !self.keys.iter().any(|existing| existing.name == key.name) {
                self.keys.push(key);
            }
        }
        self
    }

    pub fn key(&self, name: &str) -> Option<&ConfigKey> {
        self.keys.iter().find(|key| key.name == name)
    }

    /// Per-key errors for `config`, in definition order.
    pub fn validate(&self, config: &ConfigMap) -> Vec<(String, Vec<String>)> {
        self.keys
            .iter()
            .map(|key| {
                (
                    key.name.to_owned(),
                    key.check(config.get(key.name).map(String::as_str)),
                )
            })
            .collect()
    }

    /// A typed value: the configured one or the default.
    pub fn get<'a>(&'a self, config: &'a ConfigMap, name: &str) -> Option<&'a str> {
        config
            .get(name)
            .map(String::as_str)
            .or_else(|| self.key(name).and_then(ConfigKey::default_value))
    }
}

/// Whether a plugin connector reads from or writes to Kafka.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Direction {
    Source,
    Sink,
}

const COMMON: &str = "Common";
const TRANSFORMS: &str = "Transforms";
const PREDICATES: &str = "Predicates";
const ERRORS: &str = "Error Handling";
const TOPIC_CREATION: &str = "Topic Creation";
const EXACTLY_ONCE: &str = "Exactly Once Support";
const OFFSETS_TOPIC: &str = "offsets.topic";

/// The keys every connector config has (`ConnectorConfig`), plus the
/// source-only (`SourceConnectorConfig`) or sink-only (`SinkConnectorConfig`)
/// keys, in Kafka Connect's order and groups.
pub fn base_connector_def(direction: Direction) -> ConfigDef {
    use ConfigType::*;
    let mut def = ConfigDef::new()
        .define(
            ConfigKey::new("name", String, Default::Required)
                .importance(Importance::High)
                .doc("Globally unique name to use for this connector.")
                .validator(Validator::NonEmptyNoControlChars)
                .grouped(COMMON, 1, Width::Medium)
                .display("Connector name"),
        )
        .define(
            ConfigKey::new("connector.class", String, Default::Required)
                .importance(Importance::High)
                .doc("Name or alias of the class for this connector. Must be a subclass of org.apache.kafka.connect.connector.Connector.")
                .grouped(COMMON, 2, Width::Long)
                .display("Connector class"),
        )
        .define(
            ConfigKey::new("tasks.max", Int, Default::Value("1"))
                .importance(Importance::High)
                .doc("Maximum number of tasks to use for this connector.")
                .validator(Validator::AtLeast(1))
                .grouped(COMMON, 3, Width::Short)
                .display("Tasks max"),
        )
        .define(
            ConfigKey::new("tasks.max.enforce", Boolean, Default::Value("true"))
                .doc("(Deprecated) Whether to enforce that the tasks.max property is respected by the connector.")
                .grouped(COMMON, 4, Width::Short)
                .display("Enforce tasks max"),
        )
        .define(
            ConfigKey::new("key.converter", Class, Default::Null)
                .doc("Converter class used to convert between Kafka Connect format and the serialized form that is written to Kafka. This controls the format of the keys in messages written to or read from Kafka.")
                .grouped(COMMON, 5, Width::Short)
                .display("Key converter class"),
        )
        .define(
            ConfigKey::new("value.converter", Class, Default::Null)
                .doc("Converter class used to convert between Kafka Connect format and the serialized form that is written to Kafka. This controls the format of the values in messages written to or read from Kafka.")
                .grouped(COMMON, 6, Width::Short)
                .display("Value converter class"),
        )
        .define(
            ConfigKey::new("header.converter", Class, Default::Null)
                .doc("HeaderConverter class used to convert between Kafka Connect format and the serialized form that is written to Kafka.")
                .grouped(COMMON, 7, Width::Short)
                .display("Header converter class"),
        )
        .define(
            ConfigKey::new("config.action.reload", String, Default::Value("restart"))
                .doc("The action that Connect should take on the connector when changes in external configuration providers result in a change in the connector's configuration properties.")
                .validator(Validator::OneOf(&["none", "restart"]))
                .grouped(COMMON, 8, Width::Medium)
                .display("Reload Action"),
        );
    if direction == Direction::Sink {
        def = def
            .define(
                ConfigKey::new("topics", List, Default::Value(""))
                    .importance(Importance::High)
                    .doc("List of topics to consume, separated by commas")
                    .grouped(COMMON, 4, Width::Long)
                    .display("Topics"),
            )
            .define(
                ConfigKey::new("topics.regex", String, Default::Value(""))
                    .importance(Importance::High)
                    .doc("Regular expression giving topics to consume. Only one of topics or topics.regex should be specified.")
                    .grouped(COMMON, 4, Width::Long)
                    .display("Topics regex"),
            );
    }
    def = def
        .define(
            ConfigKey::new("transforms", List, Default::Value(""))
                .doc("Aliases for the transformations to be applied to records.")
                .grouped(TRANSFORMS, 0, Width::Long)
                .display("Transforms"),
        )
        .define(
            ConfigKey::new("predicates", List, Default::Value(""))
                .doc("Aliases for the predicates used by transformations.")
                .grouped(PREDICATES, 0, Width::Long)
                .display("Predicates"),
        )
        .define(
            ConfigKey::new("errors.retry.timeout", Long, Default::Value("0"))
                .doc("The maximum duration in milliseconds that a failed operation will be reattempted. The default is 0, which means no retries will be attempted. Use -1 for infinite retries.")
                .grouped(ERRORS, 1, Width::Medium)
                .display("Retry Timeout for Errors"),
        )
        .define(
            ConfigKey::new("errors.retry.delay.max.ms", Long, Default::Value("60000"))
                .doc("The maximum duration in milliseconds between consecutive retry attempts.")
                .grouped(ERRORS, 2, Width::Medium)
                .display("Maximum Delay Between Retries for Errors"),
        )
        .define(
            ConfigKey::new("errors.tolerance", String, Default::Value("none"))
                .doc("Behavior for tolerating errors during connector operation. 'none' is the default value and signals that any error will result in an immediate connector task failure; 'all' changes the behavior to skip over problematic records.")
                .validator(Validator::OneOf(&["none", "all"]))
                .grouped(ERRORS, 3, Width::Short)
                .display("Error Tolerance"),
        )
        .define(
            ConfigKey::new("errors.log.enable", Boolean, Default::Value("false"))
                .doc("If true, write each error and the details of the failed operation and problematic record to the Connect application log.")
                .grouped(ERRORS, 4, Width::Short)
                .display("Log Errors"),
        )
        .define(
            ConfigKey::new("errors.log.include.messages", Boolean, Default::Value("false"))
                .doc("Whether to include in the log the Connect record that resulted in a failure.")
                .grouped(ERRORS, 5, Width::Short)
                .display("Log Error Details"),
        );
    match direction {
        Direction::Sink => def
            .define(
                ConfigKey::new("errors.deadletterqueue.topic.name", String, Default::Value(""))
                    .importance(Importance::Medium)
                    .doc("The name of the topic to be used as the dead letter queue (DLQ) for messages that result in an error when processed by this sink connector, or its transformations or converters. The topic name is blank by default, which means that no messages are to be recorded in the DLQ.")
                    .grouped(ERRORS, 6, Width::Medium)
                    .display("Dead Letter Queue Topic Name"),
            )
            .define(
                ConfigKey::new("errors.deadletterqueue.topic.replication.factor", Short, Default::Value("3"))
                    .importance(Importance::Medium)
                    .doc("Replication factor used to create the dead letter queue topic when it doesn't already exist.")
                    .grouped(ERRORS, 7, Width::Medium)
                    .display("Dead Letter Queue Topic Replication Factor"),
            )
            .define(
                ConfigKey::new("errors.deadletterqueue.context.headers.enable", Boolean, Default::Value("false"))
                    .importance(Importance::Medium)
                    .doc("If true, add headers containing error context to the messages written to the dead letter queue.")
                    .grouped(ERRORS, 8, Width::Medium)
                    .display("Enable Error Context Headers"),
            ),
        Direction::Source => def
            .define(
                ConfigKey::new("topic.creation.groups", List, Default::Value(""))
                    .doc("Groups of configurations for topics created by source connectors")
                    .grouped(TOPIC_CREATION, 1, Width::Long)
                    .display("Topic Creation Groups"),
            )
            .define(
                ConfigKey::new("exactly.once.support", String, Default::Value("requested"))
                    .importance(Importance::Medium)
                    .doc("Permitted values are requested, required. If set to \"required\", forces a preflight check for the connector to ensure that it can provide exactly-once semantics with the given configuration.")
                    .validator(Validator::OneOf(&["requested", "required"]))
                    .grouped(EXACTLY_ONCE, 1, Width::Short)
                    .display("Exactly once support"),
            )
            .define(
                ConfigKey::new("transaction.boundary", String, Default::Value("poll"))
                    .importance(Importance::Medium)
                    .doc("Permitted values are: poll, interval, connector. If set to 'poll', a new producer transaction will be started and committed for every batch of records that each task from this connector provides to Connect.")
                    .validator(Validator::OneOf(&["poll", "interval", "connector"]))
                    .grouped(EXACTLY_ONCE, 2, Width::Short)
                    .display("Transaction Boundary"),
            )
            .define(
                ConfigKey::new("transaction.boundary.interval.ms", Long, Default::Null)
                    .doc("If 'transaction.boundary' is set to 'interval', determines the interval for producer transaction commits by connector tasks.")
                    .grouped(EXACTLY_ONCE, 3, Width::Short)
                    .display("Transaction boundary interval"),
            )
            .define(
                ConfigKey::new("offsets.storage.topic", String, Default::Null)
                    .doc("The name of a separate offsets topic to use for this connector. If empty or not specified, the worker's global offsets topic name will be used.")
                    .grouped(OFFSETS_TOPIC, 1, Width::Long)
                    .display("Offsets topic"),
            ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_required_key_uses_kafka_connect_text() {
        let key = ConfigKey::new("topic", ConfigType::String, Default::Required);
        assert_eq!(
            key.check(None),
            vec!["Missing required configuration \"topic\" which has no default value."]
        );
    }

    #[test]
    fn typed_and_validated_values() {
        let key = ConfigKey::new("tasks.max", ConfigType::Int, Default::Value("1"))
            .validator(Validator::AtLeast(1));
        assert!(key.check(None).is_empty());
        assert_eq!(
            key.check(Some("x")),
            vec!["Invalid value x for configuration tasks.max: Not a number of type INT"]
        );
        assert_eq!(
            key.check(Some("0")),
            vec!["Invalid value 0 for configuration tasks.max: Value must be at least 1"]
        );
    }

    #[test]
    fn one_of_is_case_insensitive() {
        let key = ConfigKey::new(
            "errors.tolerance",
            ConfigType::String,
            Default::Value("none"),
        )
        .validator(Validator::OneOf(&["none", "all"]));
        assert!(key.check(Some("ALL")).is_empty());
        assert_eq!(key.check(Some("some")).len(), 1);
    }

    #[test]
    fn list_values_are_trimmed() {
        assert_eq!(parse_list(" a, b ,,c"), vec!["a", "b", "c"]);
    }
}
