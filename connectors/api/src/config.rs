//! Config definitions in Kafka Connect's `ConfigDef` shape, the base
//! connector keys every connector shares, validation with Kafka Connect's
//! error texts, and parsing through a definition: [`ConfigDef::parse`]
//! checks a config as validation does and its [`ParsedConfig`]'s typed
//! getters give each key's value or default, so a default lives only in
//! its key's definition.

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
    /// One of the values, ignoring ASCII case, reported as `ValidString`
    /// reports it ("String must be one of: …"): how Weir reads the base
    /// connector keys, and the protocol's `one_of`.
    OneOf(&'static [&'static str]),
    /// `ConfigDef.ValidString`: exactly one of the values.
    OneOfMatchingCase(&'static [&'static str]),
    /// `ConfigDef.CaseInsensitiveValidString`: one of the values in any case.
    OneOfIgnoringCase(&'static [&'static str]),
    NonEmptyString,
    /// `NonEmptyStringWithoutControlChars`, used for connector names.
    NonEmptyNoControlChars,
}

impl Validator {
    /// Why `raw` (already of the key's type) is invalid, in Kafka Connect's words.
    fn reason(&self, raw: &str) -> Option<String> {
        let one_of = |allowed: &[&str], matches: fn(&str, &str) -> bool, wording: &str| {
            let value = raw.trim();
            (!allowed.iter().any(|a| matches(a, value)))
                .then(|| format!("String must be one of{wording}: {}", allowed.join(", ")))
        };
        match self {
            Validator::AtLeast(min) => match raw.trim().parse::<i64>() {
                Ok(value) if value < *min => Some(format!("Value must be at least {min}")),
                _ => None,
            },
            Validator::OneOf(allowed) => one_of(allowed, str::eq_ignore_ascii_case, ""),
            Validator::OneOfMatchingCase(allowed) => one_of(allowed, |a, v| a == v, ""),
            Validator::OneOfIgnoringCase(allowed) => {
                one_of(allowed, str::eq_ignore_ascii_case, " (case insensitive)")
            }
            Validator::NonEmptyNoControlChars => {
                if raw.trim().is_empty() {
                    Some("String may not be empty".to_owned())
                } else if raw.chars().any(char::is_control) {
                    Some("String may not contain control sequences".to_owned())
                } else {
                    None
                }
            }
            Validator::NonEmptyString => raw
                .trim()
                .is_empty()
                .then(|| "String must be non-empty".to_owned()),
        }
    }
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
        self.parse(raw, self.name).err().into_iter().collect()
    }

    /// The value of this key: `raw`, or else the default, parsed by the
    /// key's type and validated; `None` when both are absent (a null
    /// default). The error names the key `shown_name`, in Kafka Connect's words.
    fn parse<'a>(
        &self,
        raw: Option<&'a str>,
        shown_name: &str,
    ) -> Result<Option<ConfigValue<'a>>, String> {
        let Some(raw) = raw.or(self.default_value()) else {
            return if self.is_required() {
                Err(format!(
                    "Missing required configuration \"{shown_name}\" which has no default value."
                ))
            } else {
                Ok(None)
            };
        };
        let invalid =
            |reason: &str| format!("Invalid value {raw} for configuration {shown_name}: {reason}");
        let value = self
            .config_type
            .parse(raw)
            .map_err(|reason| invalid(&reason))?;
        match self.validator.as_ref().and_then(|v| v.reason(raw)) {
            Some(reason) => Err(invalid(&reason)),
            None => Ok(Some(value)),
        }
    }
}

/// A value of a defined key, parsed by the key's type.
#[derive(Debug, Clone, PartialEq)]
pub enum ConfigValue<'a> {
    Boolean(bool),
    Short(i16),
    Int(i32),
    Long(i64),
    Double(f64),
    /// A STRING, CLASS or PASSWORD value, as configured (not trimmed).
    Text(&'a str),
    List(Vec<String>),
}

impl ConfigType {
    /// Parses a raw value as this type; the error is Kafka Connect's reason.
    pub fn parse(self, raw: &str) -> Result<ConfigValue<'_>, String> {
        let trimmed = raw.trim();
        let not_a_number = || format!("Not a number of type {}", self.name());
        Ok(match self {
            ConfigType::Boolean if trimmed.eq_ignore_ascii_case("true") => {
                ConfigValue::Boolean(true)
            }
            ConfigType::Boolean if trimmed.eq_ignore_ascii_case("false") => {
                ConfigValue::Boolean(false)
            }
            ConfigType::Boolean => {
                return Err("Expected value to be either true or false".to_owned());
            }
            ConfigType::Short => ConfigValue::Short(trimmed.parse().map_err(|_| not_a_number())?),
            ConfigType::Int => ConfigValue::Int(trimmed.parse().map_err(|_| not_a_number())?),
            ConfigType::Long => ConfigValue::Long(trimmed.parse().map_err(|_| not_a_number())?),
            ConfigType::Double => ConfigValue::Double(trimmed.parse().map_err(|_| not_a_number())?),
            ConfigType::List => ConfigValue::List(parse_list(raw)),
            ConfigType::String | ConfigType::Class | ConfigType::Password => ConfigValue::Text(raw),
        })
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

    /// The keys `keep` names: a part of a definition a component parses on
    /// its own (the `errors.*` keys of a connector, say).
    pub fn only(&self, keep: impl Fn(&str) -> bool) -> ConfigDef {
        ConfigDef {
            keys: self
                .keys
                .iter()
                .filter(|key| keep(key.name))
                .cloned()
                .collect(),
        }
    }

    /// Parses `config` through this definition: checks every defined key
    /// as [`validate`](Self::validate) does and fails with the first
    /// message; keys it does not define are left alone.
    pub fn parse<'a>(&'a self, config: &'a ConfigMap) -> Result<ParsedConfig<'a>, String> {
        self.parse_prefixed(config, "")
    }

    /// As [`parse`](Self::parse), for keys a larger config writes under
    /// `prefix` (`transforms.<alias>.`): `config` holds them without it, and
    /// messages name them with it.
    pub fn parse_prefixed<'a>(
        &'a self,
        config: &'a ConfigMap,
        prefix: &str,
    ) -> Result<ParsedConfig<'a>, String> {
        let values = self
            .keys
            .iter()
            .map(|key| {
                let raw = config.get(key.name).map(String::as_str);
                Ok(ParsedKey {
                    key,
                    original: raw.or(key.default_value()),
                    value: key.parse(raw, &format!("{prefix}{}", key.name))?,
                })
            })
            .collect::<Result<_, String>>()?;
        Ok(ParsedConfig { values })
    }
}

/// A config parsed through its [`ConfigDef`]: each defined key's value
/// (configured, or else the default) by its type. Its typed getters are
/// where the value of a defined key is read; each fails on a key the
/// definition does not have or of another type, and the required forms
/// (`string`, `int`, …) on a key without a value (a null default).
#[derive(Debug, Clone, PartialEq)]
pub struct ParsedConfig<'a> {
    values: Vec<ParsedKey<'a>>,
}

#[derive(Debug, Clone, PartialEq)]
struct ParsedKey<'a> {
    key: &'a ConfigKey,
    /// The value as written, or the default's text.
    original: Option<&'a str>,
    value: Option<ConfigValue<'a>>,
}

impl<'a> ParsedConfig<'a> {
    /// The value of `name` as written, or the default's text: for messages
    /// that quote it.
    pub fn original(&self, name: &str) -> Result<Option<&'a str>, String> {
        Ok(self.entry(name)?.original)
    }

    /// A STRING, CLASS or PASSWORD value, as configured.
    pub fn string(&self, name: &str) -> Result<&'a str, String> {
        self.required(name, self.optional_string(name)?)
    }

    pub fn optional_string(&self, name: &str) -> Result<Option<&'a str>, String> {
        self.typed(name, "STRING", |value| match value {
            ConfigValue::Text(text) => Some(*text),
            _ => None,
        })
    }

    pub fn boolean(&self, name: &str) -> Result<bool, String> {
        let value = self.typed(name, "BOOLEAN", |value| match value {
            ConfigValue::Boolean(flag) => Some(*flag),
            _ => None,
        })?;
        self.required(name, value)
    }

    pub fn short(&self, name: &str) -> Result<i16, String> {
        let value = self.typed(name, "SHORT", |value| match value {
            ConfigValue::Short(number) => Some(*number),
            _ => None,
        })?;
        self.required(name, value)
    }

    pub fn int(&self, name: &str) -> Result<i32, String> {
        self.required(name, self.optional_int(name)?)
    }

    pub fn optional_int(&self, name: &str) -> Result<Option<i32>, String> {
        self.typed(name, "INT", |value| match value {
            ConfigValue::Int(number) => Some(*number),
            _ => None,
        })
    }

    pub fn long(&self, name: &str) -> Result<i64, String> {
        self.required(name, self.optional_long(name)?)
    }

    pub fn optional_long(&self, name: &str) -> Result<Option<i64>, String> {
        self.typed(name, "LONG", |value| match value {
            ConfigValue::Long(number) => Some(*number),
            _ => None,
        })
    }

    pub fn double(&self, name: &str) -> Result<f64, String> {
        let value = self.typed(name, "DOUBLE", |value| match value {
            ConfigValue::Double(number) => Some(*number),
            _ => None,
        })?;
        self.required(name, value)
    }

    /// A LIST value's items, trimmed, without blanks.
    pub fn list(&self, name: &str) -> Result<&[String], String> {
        let value = self.typed(name, "LIST", |value| match value {
            ConfigValue::List(items) => Some(items.as_slice()),
            _ => None,
        })?;
        self.required(name, value)
    }

    /// The value of `name` read by `read`, which answers `None` for a value
    /// not of type `wanted`.
    fn typed<'s, T>(
        &'s self,
        name: &str,
        wanted: &str,
        read: impl Fn(&'s ConfigValue<'a>) -> Option<T>,
    ) -> Result<Option<T>, String> {
        let entry = self.entry(name)?;
        match &entry.value {
            None => Ok(None),
            Some(value) => read(value).map(Some).ok_or_else(|| {
                format!(
                    "Configuration {name} is of type {}, not {wanted}",
                    entry.key.config_type.name()
                )
            }),
        }
    }

    fn entry(&self, name: &str) -> Result<&ParsedKey<'a>, String> {
        self.values
            .iter()
            .find(|entry| entry.key.name == name)
            .ok_or_else(|| format!("Unknown configuration '{name}'"))
    }

    fn required<T>(&self, name: &str, value: Option<T>) -> Result<T, String> {
        value.ok_or_else(|| format!("Configuration {name} has no value"))
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

    fn sample_def() -> ConfigDef {
        use ConfigType::*;
        ConfigDef::new()
            .define(ConfigKey::new("topic", String, Default::Required))
            .define(ConfigKey::new("label", String, Default::Null))
            .define(
                ConfigKey::new("batch", Int, Default::Value("500"))
                    .validator(Validator::AtLeast(1)),
            )
            .define(ConfigKey::new("offset", Long, Default::Value("-1")))
            .define(ConfigKey::new("version", Int, Default::Null))
            .define(ConfigKey::new("replicas", Short, Default::Value("3")))
            .define(ConfigKey::new("ratio", Double, Default::Value("0.5")))
            .define(ConfigKey::new("enabled", Boolean, Default::Value("true")))
            .define(ConfigKey::new("fields", List, Default::Value("a, b")))
            .define(
                ConfigKey::new("mode", String, Default::Value("copy"))
                    .validator(Validator::OneOfMatchingCase(&["move", "copy"])),
            )
            .define(
                ConfigKey::new("syntax", String, Default::Value("V1"))
                    .validator(Validator::OneOfIgnoringCase(&["V1", "V2"])),
            )
    }

    fn settings(pairs: &[(&str, &str)]) -> ConfigMap {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn parse_gives_defaults_through_typed_getters() {
        let def = sample_def();
        let config = settings(&[("topic", "t"), ("unrelated", "x")]);
        let parsed = def.parse(&config).unwrap();
        assert_eq!(parsed.string("topic").unwrap(), "t");
        assert_eq!(parsed.optional_string("label").unwrap(), None);
        assert_eq!(parsed.int("batch").unwrap(), 500);
        assert_eq!(parsed.long("offset").unwrap(), -1);
        assert_eq!(parsed.optional_int("version").unwrap(), None);
        assert_eq!(parsed.short("replicas").unwrap(), 3);
        assert_eq!(parsed.double("ratio").unwrap(), 0.5);
        assert!(parsed.boolean("enabled").unwrap());
        assert_eq!(parsed.list("fields").unwrap(), ["a", "b"]);
        assert_eq!(parsed.string("mode").unwrap(), "copy");
        assert_eq!(parsed.original("fields").unwrap(), Some("a, b"));
        assert_eq!(parsed.original("label").unwrap(), None);
    }

    #[test]
    fn parse_gives_configured_values_through_typed_getters() {
        let def = sample_def();
        let config = settings(&[
            ("topic", " spaced "),
            ("label", "l"),
            ("batch", " 7 "),
            ("offset", "9000000000"),
            ("version", "2"),
            ("replicas", "1"),
            ("ratio", "1.25"),
            ("enabled", "FALSE"),
            ("fields", " x ,, y "),
            ("mode", "move"),
            ("syntax", "v2"),
        ]);
        let parsed = def.parse(&config).unwrap();
        assert_eq!(parsed.string("topic").unwrap(), " spaced ", "as configured");
        assert_eq!(parsed.optional_string("label").unwrap(), Some("l"));
        assert_eq!(parsed.int("batch").unwrap(), 7);
        assert_eq!(parsed.long("offset").unwrap(), 9_000_000_000);
        assert_eq!(parsed.optional_int("version").unwrap(), Some(2));
        assert_eq!(parsed.optional_long("offset").unwrap(), Some(9_000_000_000));
        assert_eq!(parsed.short("replicas").unwrap(), 1);
        assert_eq!(parsed.double("ratio").unwrap(), 1.25);
        assert!(!parsed.boolean("enabled").unwrap());
        assert_eq!(parsed.list("fields").unwrap(), ["x", "y"]);
        assert_eq!(parsed.string("mode").unwrap(), "move");
        assert_eq!(parsed.string("syntax").unwrap(), "v2");
    }

    #[test]
    fn parse_fails_with_the_first_message_in_kafka_connects_words() {
        let def = sample_def();
        let cases: [(&[(&str, &str)], &str); 9] = [
            (
                &[],
                "Missing required configuration \"topic\" which has no default value.",
            ),
            (
                &[("topic", "t"), ("batch", "many")],
                "Invalid value many for configuration batch: Not a number of type INT",
            ),
            (
                &[("topic", "t"), ("batch", "0")],
                "Invalid value 0 for configuration batch: Value must be at least 1",
            ),
            (
                &[("topic", "t"), ("offset", "1.5")],
                "Invalid value 1.5 for configuration offset: Not a number of type LONG",
            ),
            (
                &[("topic", "t"), ("replicas", "70000")],
                "Invalid value 70000 for configuration replicas: Not a number of type SHORT",
            ),
            (
                &[("topic", "t"), ("ratio", "half")],
                "Invalid value half for configuration ratio: Not a number of type DOUBLE",
            ),
            (
                &[("topic", "t"), ("enabled", "Maybe")],
                "Invalid value Maybe for configuration enabled: Expected value to be either true or false",
            ),
            (
                &[("topic", "t"), ("mode", "MOVE")],
                "Invalid value MOVE for configuration mode: String must be one of: move, copy",
            ),
            (
                &[("topic", "t"), ("syntax", "v3")],
                "Invalid value v3 for configuration syntax: String must be one of (case insensitive): V1, V2",
            ),
        ];
        for (pairs, expected) in cases {
            let config = settings(pairs);
            assert_eq!(def.parse(&config).unwrap_err(), expected, "{pairs:?}");
            let named = def.validate(&config);
            assert!(
                named
                    .iter()
                    .any(|(_, errors)| errors.first().map(String::as_str) == Some(expected)),
                "validate says the same: {named:?}"
            );
        }
        // Two bad keys: the first defined one is reported.
        let config = settings(&[("batch", "x"), ("ratio", "y")]);
        assert!(
            def.parse(&config)
                .unwrap_err()
                .starts_with("Missing required")
        );
    }

    #[test]
    fn parse_prefixed_names_keys_as_the_user_wrote_them() {
        let def = sample_def();
        let config = settings(&[("topic", "t"), ("enabled", "yes")]);
        assert_eq!(
            def.parse_prefixed(&config, "transforms.a.").unwrap_err(),
            "Invalid value yes for configuration transforms.a.enabled: Expected value to be either true or false"
        );
        assert_eq!(
            def.parse_prefixed(&settings(&[]), "transforms.a.")
                .unwrap_err(),
            "Missing required configuration \"transforms.a.topic\" which has no default value."
        );
    }

    #[test]
    fn getters_refuse_unknown_keys_other_types_and_null_values() {
        let def = sample_def();
        let config = settings(&[("topic", "t")]);
        let parsed = def.parse(&config).unwrap();
        assert_eq!(
            parsed.string("nope").unwrap_err(),
            "Unknown configuration 'nope'"
        );
        assert_eq!(
            parsed.int("topic").unwrap_err(),
            "Configuration topic is of type STRING, not INT"
        );
        assert_eq!(
            parsed.boolean("batch").unwrap_err(),
            "Configuration batch is of type INT, not BOOLEAN"
        );
        assert_eq!(
            parsed.string("label").unwrap_err(),
            "Configuration label has no value"
        );
        assert_eq!(
            parsed.int("version").unwrap_err(),
            "Configuration version has no value"
        );
    }

    #[test]
    fn one_of_validators_match_and_word_as_kafka_connect_does() {
        let key = |validator| {
            ConfigKey::new("k", ConfigType::String, Default::Required).validator(validator)
        };
        let lenient = key(Validator::OneOf(&["none", "all"]));
        assert!(lenient.check(Some(" ALL ")).is_empty());
        assert_eq!(
            lenient.check(Some("some")),
            ["Invalid value some for configuration k: String must be one of: none, all"]
        );
        let exact = key(Validator::OneOfMatchingCase(&["string", "Date"]));
        assert!(exact.check(Some("Date")).is_empty());
        assert!(
            exact.check(Some(" string")).is_empty(),
            "trimmed, as Kafka Connect trims strings"
        );
        assert_eq!(
            exact.check(Some("date")),
            ["Invalid value date for configuration k: String must be one of: string, Date"]
        );
        let insensitive = key(Validator::OneOfIgnoringCase(&["V1", "V2"]));
        assert!(insensitive.check(Some("v2")).is_empty());
        assert_eq!(
            insensitive.check(Some("V3")),
            [
                "Invalid value V3 for configuration k: String must be one of (case insensitive): V1, V2"
            ]
        );
    }

    #[test]
    fn list_values_are_trimmed() {
        assert_eq!(parse_list(" a, b ,,c"), vec!["a", "b", "c"]);
    }
}
