//! Single message transforms (SMTs) and predicates, configured exactly as
//! Kafka Connect users write them:
//!
//! ```properties
//! transforms=addHeader,route
//! transforms.addHeader.type=org.apache.kafka.connect.transforms.InsertHeader
//! transforms.addHeader.header=source
//! transforms.addHeader.value.literal=weir
//! transforms.route.type=org.apache.kafka.connect.transforms.RegexRouter
//! transforms.route.predicate=isLogs
//! transforms.route.negate=true
//! predicates=isLogs
//! predicates.isLogs.type=org.apache.kafka.connect.transforms.predicates.TopicNameMatches
//! predicates.isLogs.pattern=logs-.*
//! ```
//!
//! A [`TransformChain`] applies its stages in order; a stage whose predicate
//! does not hold (or holds, with `negate`) passes the record through; a
//! transform returning `None` drops the record.
//!
//! Each SMT and predicate owns its config definition (`config_def`, next to
//! its `configure`) and parses its settings through it, so its keys,
//! defaults and messages are written once; [`defs`] finds a definition by
//! class name for validation.

mod cast;
pub mod defs;
mod fields;
mod headers;
mod routing;
mod structure;
mod time;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use weir_api::api::Header;
use weir_api::config::{ConfigKey, ConfigMap, ConfigType, Default, Importance, parse_list};
use weir_api::data::{Schema, SchemaAndValue, SchemaRef, Value};

pub use cast::Cast;
pub use fields::{ExtractField, HoistField, ValueToKey};
pub use headers::{DropHeaders, InsertHeader};
pub use routing::{Filter, RegexRouter};
pub use structure::{Flatten, HeaderFrom, InsertField, MaskField, ReplaceField, SetSchemaMetadata};
pub use time::{DateFormat, TimestampConverter, TimestampRouter};

/// How many input schemas an SMT remembers its output schema for (Kafka
/// Connect's SMTs keep 16).
const MEMO_SCHEMAS: usize = 16;

/// The output schemas an SMT built, by the input schema each came from:
/// the records of a topic share their schema, so an SMT builds its output
/// schema once instead of once per record, and the records it outputs share
/// one too.
#[derive(Debug, Default)]
pub struct SchemaMemo {
    entries: Mutex<Vec<(SchemaRef, SchemaRef)>>,
}

impl SchemaMemo {
    /// The output schema for `input`: remembered, or built by `build`.
    pub fn output(
        &self,
        input: &SchemaRef,
        build: impl FnOnce(&Schema) -> Result<Schema>,
    ) -> Result<SchemaRef> {
        {
            let entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
            if let Some((_, output)) = entries
                .iter()
                .find(|(known, _)| Arc::ptr_eq(known, input) || **known == **input)
            {
                return Ok(output.clone());
            }
        }
        let output = SchemaRef::new(build(input)?);
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        if entries.len() == MEMO_SCHEMAS {
            entries.remove(0);
        }
        entries.push((input.clone(), output.clone()));
        Ok(output)
    }
}

/// A copy starts empty: the memo is a cache, not part of an SMT's config.
impl Clone for SchemaMemo {
    fn clone(&self) -> Self {
        SchemaMemo::default()
    }
}

/// SMTs compare by their config; what each has cached does not count.
impl PartialEq for SchemaMemo {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

/// The part of a source or sink record that transforms see and change.
#[derive(Debug, Clone, PartialEq)]
pub struct ConnectRecord {
    pub topic: weir_api::api::Topic,
    pub kafka_partition: Option<i32>,
    /// The Kafka offset, for sink records.
    pub kafka_offset: Option<i64>,
    pub key: SchemaAndValue,
    pub value: SchemaAndValue,
    pub timestamp_ms: Option<i64>,
    pub headers: Vec<Header>,
}

/// A transform failure, with Kafka Connect's `DataException` text.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{0}")]
pub struct TransformError(pub String);

pub type Result<T, E = TransformError> = std::result::Result<T, E>;

/// A transform failure and the class of the SMT that failed.
#[derive(Debug, Clone, PartialEq)]
pub struct StageFailure {
    pub class: String,
    pub error: TransformError,
}

/// One SMT. `None` drops the record.
pub trait Transformation: Send + Sync {
    fn apply(&self, record: ConnectRecord) -> Result<Option<ConnectRecord>>;
}

/// A condition on a record, for conditional transforms.
pub trait Predicate: Send + Sync {
    fn test(&self, record: &ConnectRecord) -> bool;
}

/// Whether an SMT works on the record key or value (`$Key` / `$Value`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Part {
    Key,
    Value,
}

impl Part {
    pub fn get(self, record: &ConnectRecord) -> &SchemaAndValue {
        match self {
            Part::Key => &record.key,
            Part::Value => &record.value,
        }
    }

    /// Moves the key or value out of the record, leaving a null in its place.
    pub fn take(self, record: &mut ConnectRecord) -> SchemaAndValue {
        let slot = match self {
            Part::Key => &mut record.key,
            Part::Value => &mut record.value,
        };
        std::mem::replace(slot, SchemaAndValue::null())
    }

    pub fn set(self, record: &mut ConnectRecord, data: SchemaAndValue) {
        match self {
            Part::Key => record.key = data,
            Part::Value => record.value = data,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Part::Key => "key",
            Part::Value => "value",
        }
    }
}

const TRANSFORMS_PACKAGE: &str = "org.apache.kafka.connect.transforms.";
const PREDICATES_PACKAGE: &str = "org.apache.kafka.connect.transforms.predicates.";

/// The settings of one alias: `transforms.<alias>.<key>` without the prefix.
pub fn settings_of(config: &ConfigMap, prefix: &str) -> ConfigMap {
    config
        .iter()
        .filter_map(|(k, v)| {
            k.strip_prefix(prefix)
                .map(|rest| (rest.to_owned(), v.clone()))
        })
        .collect()
}

/// A key of an SMT's or predicate's own definition.
pub(crate) fn key(
    name: &'static str,
    config_type: ConfigType,
    default: Default,
    importance: Importance,
    doc: &'static str,
) -> ConfigKey {
    ConfigKey::new(name, config_type, default)
        .importance(importance)
        .doc(doc)
}

/// KIP-1040's `replace.null.with.default`: whether a null struct field
/// reads as its schema's default value.
pub(crate) const REPLACE_NULL_WITH_DEFAULT: &str = "replace.null.with.default";

/// The definition of `replace.null.with.default`, which the SMTs that have
/// it add after their own keys.
pub(crate) fn replace_null_with_default_key() -> ConfigKey {
    key(
        REPLACE_NULL_WITH_DEFAULT,
        ConfigType::Boolean,
        Default::Value("true"),
        Importance::Medium,
        "Whether to replace fields that have a default value and that are null to the default value. When set to true, the default value is used, otherwise null is used.",
    )
}

/// Reads a struct as Kafka Connect's `Struct.get` does when `replace` is
/// set: null fields that have a default read as the default.
pub fn apply_defaults(replace: bool, data: SchemaAndValue) -> SchemaAndValue {
    let (Some(schema), Value::Struct(fields)) = (&data.schema, &data.value) else {
        return data;
    };
    if !replace || !fields.iter().any(|(_, v)| v.is_null()) {
        return data;
    }
    let filled = fields
        .iter()
        .map(|(name, value)| {
            match (
                value,
                schema.field(name).and_then(|f| f.schema.default.as_deref()),
            ) {
                (Value::Null, Some(default)) => (name.clone(), default.clone()),
                _ => (name.clone(), value.clone()),
            }
        })
        .collect();
    SchemaAndValue {
        schema: data.schema,
        value: Value::Struct(filled),
    }
}

/// The simple name of a predicate class.
pub fn predicate_simple_name(class: &str) -> &str {
    class
        .trim()
        .strip_prefix(PREDICATES_PACKAGE)
        .unwrap_or(class.trim())
}

/// The simple name of an SMT class (`InsertField$Value` → `InsertField`, part `Value`).
pub fn split_class(class: &str) -> (String, Option<Part>) {
    let simple = class.strip_prefix(TRANSFORMS_PACKAGE).unwrap_or(class);
    match simple.split_once('$') {
        Some((name, "Key")) => (name.to_owned(), Some(Part::Key)),
        Some((name, "Value")) => (name.to_owned(), Some(Part::Value)),
        _ => (simple.to_owned(), None),
    }
}

/// SMTs that come as `$Key` and `$Value` classes.
const KEYED_TRANSFORMS: [&str; 10] = [
    "Cast",
    "ExtractField",
    "Flatten",
    "HeaderFrom",
    "HoistField",
    "InsertField",
    "MaskField",
    "ReplaceField",
    "SetSchemaMetadata",
    "TimestampConverter",
];
/// SMTs with one class.
const WHOLE_TRANSFORMS: [&str; 6] = [
    "DropHeaders",
    "Filter",
    "InsertHeader",
    "RegexRouter",
    "TimestampRouter",
    "ValueToKey",
];
const PREDICATES: [&str; 3] = ["HasHeaderKey", "RecordIsTombstone", "TopicNameMatches"];

/// Every SMT class name, as Kafka Connect lists them (`Cast$Key`, `Cast$Value`, …).
pub fn transform_classes() -> Vec<String> {
    let mut classes: Vec<String> = KEYED_TRANSFORMS
        .iter()
        .flat_map(|name| ["Key", "Value"].map(|part| format!("{TRANSFORMS_PACKAGE}{name}${part}")))
        .chain(
            WHOLE_TRANSFORMS
                .iter()
                .map(|name| format!("{TRANSFORMS_PACKAGE}{name}")),
        )
        .collect();
    classes.sort();
    classes
}

/// Every predicate class name.
pub fn predicate_classes() -> Vec<String> {
    PREDICATES
        .iter()
        .map(|name| format!("{PREDICATES_PACKAGE}{name}"))
        .collect()
}

/// Creates an SMT from its class name (full, or simple) and its settings.
pub fn create_transform(
    class: &str,
    settings: &ConfigMap,
) -> Result<Box<dyn Transformation>, String> {
    let (name, part) = split_class(class.trim());
    let needs_part = || part.ok_or_else(|| format!("{class} must name $Key or $Value"));
    Ok(match name.as_str() {
        "InsertHeader" => Box::new(InsertHeader::configure(settings)?),
        "DropHeaders" => Box::new(DropHeaders::configure(settings)?),
        "Filter" => Box::new(Filter),
        "RegexRouter" => Box::new(RegexRouter::configure(settings)?),
        "ValueToKey" => Box::new(ValueToKey::configure(settings)?),
        "ExtractField" => Box::new(ExtractField::configure(needs_part()?, settings)?),
        "HoistField" => Box::new(HoistField::configure(needs_part()?, settings)?),
        "InsertField" => Box::new(InsertField::configure(needs_part()?, settings)?),
        "ReplaceField" => Box::new(ReplaceField::configure(needs_part()?, settings)?),
        "MaskField" => Box::new(MaskField::configure(needs_part()?, settings)?),
        "SetSchemaMetadata" => Box::new(SetSchemaMetadata::configure(needs_part()?, settings)?),
        "Flatten" => Box::new(Flatten::configure(needs_part()?, settings)?),
        "HeaderFrom" => Box::new(HeaderFrom::configure(needs_part()?, settings)?),
        "Cast" => Box::new(Cast::configure(needs_part()?, settings)?),
        "TimestampConverter" => Box::new(TimestampConverter::configure(needs_part()?, settings)?),
        "TimestampRouter" => Box::new(TimestampRouter::configure(settings)?),
        _ => {
            return Err(format!(
                "Invalid value {class} for configuration type: Class {class} could not be found."
            ));
        }
    })
}

/// Creates a predicate from its class name and settings.
pub fn create_predicate(class: &str, settings: &ConfigMap) -> Result<Box<dyn Predicate>, String> {
    let simple = class
        .trim()
        .strip_prefix(PREDICATES_PACKAGE)
        .unwrap_or(class.trim());
    Ok(match simple {
        "TopicNameMatches" => Box::new(routing::TopicNameMatches::configure(settings)?),
        "HasHeaderKey" => Box::new(headers::HasHeaderKey::configure(settings)?),
        "RecordIsTombstone" => Box::new(routing::RecordIsTombstone),
        _ => {
            return Err(format!(
                "Invalid value {class} for configuration type: Class {class} could not be found."
            ));
        }
    })
}

struct Stage {
    alias: String,
    /// The SMT's class name, as Kafka Connect reports it.
    class: String,
    transform: Box<dyn Transformation>,
    /// The predicate and whether it is negated.
    predicate: Option<(Box<dyn Predicate>, bool)>,
}

/// The transforms of one connector, in order.
#[derive(Default)]
pub struct TransformChain {
    stages: Vec<Stage>,
}

impl TransformChain {
    /// Builds the chain from a connector config's `transforms` and `predicates`.
    /// Errors name the offending key, as Kafka Connect's validation does.
    pub fn from_config(config: &ConfigMap) -> Result<Self, String> {
        let mut predicates: BTreeMap<String, ConfigMap> = BTreeMap::new();
        for alias in config
            .get("predicates")
            .map(|p| parse_list(p))
            .unwrap_or_default()
        {
            predicates.insert(
                alias.clone(),
                settings_of(config, &format!("predicates.{alias}.")),
            );
        }
        let mut stages = Vec::new();
        for alias in config
            .get("transforms")
            .map(|t| parse_list(t))
            .unwrap_or_default()
        {
            let prefix = format!("transforms.{alias}.");
            let settings = settings_of(config, &prefix);
            let base_def = defs::transform_base();
            let base = base_def.parse_prefixed(&settings, &prefix)?;
            let class = base.string("type")?;
            let transform = create_transform(class, &settings)
                .map_err(|e| format!("transforms.{alias}: {e}"))?;
            let negate = base.boolean("negate")?;
            let predicate = match base
                .optional_string("predicate")?
                .map(str::trim)
                .filter(|p| !p.is_empty())
            {
                Some(name) => {
                    let predicate_settings = predicates.get(name).ok_or_else(|| {
                        format!("Invalid value {name} for configuration {prefix}predicate: undefined predicate")
                    })?;
                    let predicate_prefix = format!("predicates.{name}.");
                    let predicate_base_def = defs::predicate_base();
                    let predicate_class = predicate_base_def
                        .parse_prefixed(predicate_settings, &predicate_prefix)?
                        .string("type")?;
                    Some((
                        create_predicate(predicate_class, predicate_settings)
                            .map_err(|e| format!("predicates.{name}: {e}"))?,
                        negate,
                    ))
                }
                None if negate => {
                    return Err(format!(
                        "Invalid value true for configuration {prefix}negate: negate can only be used with a predicate"
                    ));
                }
                None => None,
            };
            let (simple, part) = split_class(class.trim());
            let class = match part {
                Some(Part::Key) => format!("{TRANSFORMS_PACKAGE}{simple}$Key"),
                Some(Part::Value) => format!("{TRANSFORMS_PACKAGE}{simple}$Value"),
                None => format!("{TRANSFORMS_PACKAGE}{simple}"),
            };
            stages.push(Stage {
                alias,
                class,
                transform,
                predicate,
            });
        }
        Ok(TransformChain { stages })
    }

    pub fn is_empty(&self) -> bool {
        self.stages.is_empty()
    }

    /// Applies every stage in order; `None` means a stage dropped the record.
    pub fn apply(&self, record: ConnectRecord) -> Result<Option<ConnectRecord>> {
        self.apply_naming_failures(record)
            .map_err(|failure| failure.error)
    }

    /// As [`apply`](Self::apply), and a failure names the SMT class that failed.
    pub fn apply_naming_failures(
        &self,
        mut record: ConnectRecord,
    ) -> std::result::Result<Option<ConnectRecord>, StageFailure> {
        for stage in &self.stages {
            if let Some((predicate, negate)) = &stage.predicate
                && predicate.test(&record) == *negate
            {
                continue;
            }
            record = match stage.transform.apply(record) {
                Ok(Some(next)) => next,
                Ok(None) => return Ok(None),
                Err(TransformError(message)) => {
                    return Err(StageFailure {
                        class: stage.class.clone(),
                        error: TransformError(format!("transform {}: {message}", stage.alias)),
                    });
                }
            };
        }
        Ok(Some(record))
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use weir_api::data::{Schema, Value};

    pub fn record(topic: &str, value: SchemaAndValue) -> ConnectRecord {
        ConnectRecord {
            topic: topic.into(),
            kafka_partition: Some(0),
            kafka_offset: Some(7),
            key: SchemaAndValue::null(),
            value,
            timestamp_ms: Some(1_700_000_000_000),
            headers: Vec::new(),
        }
    }

    pub fn text(value: &str) -> SchemaAndValue {
        SchemaAndValue {
            schema: Some(Schema::string().into()),
            value: Value::String(value.into()),
        }
    }

    pub fn config(pairs: &[(&str, &str)]) -> ConfigMap {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn chain_applies_in_order_with_predicates_and_negate() {
        let chain = TransformChain::from_config(&config(&[
            ("transforms", "route,drop"),
            (
                "transforms.route.type",
                "org.apache.kafka.connect.transforms.RegexRouter",
            ),
            ("transforms.route.regex", "(.*)-raw"),
            ("transforms.route.replacement", "$1-clean"),
            ("transforms.drop.type", "Filter"),
            ("transforms.drop.predicate", "isClean"),
            ("transforms.drop.negate", "true"),
            ("predicates", "isClean"),
            (
                "predicates.isClean.type",
                "org.apache.kafka.connect.transforms.predicates.TopicNameMatches",
            ),
            ("predicates.isClean.pattern", ".*-clean"),
        ]))
        .unwrap();
        let kept = chain.apply(record("logs-raw", text("x"))).unwrap().unwrap();
        assert_eq!(kept.topic, "logs-clean");
        // Not renamed, so the negated predicate holds and Filter drops it.
        assert_eq!(chain.apply(record("other", text("x"))).unwrap(), None);
    }

    // KIP-1040: a null struct field with a default reads as the default unless
    // replace.null.with.default=false.
    #[test]
    fn replace_null_with_default_table() {
        use weir_api::data::{Field, SchemaType};
        let mut age = Schema::new(SchemaType::Int32).optional();
        age.default = Some(Box::new(Value::Int32(18)));
        let mut schema = Schema::new(SchemaType::Struct);
        schema.fields = vec![Field {
            name: "age".into(),
            schema: age,
        }];
        let data = SchemaAndValue {
            schema: Some(schema.into()),
            value: Value::Struct(vec![("age".into(), Value::Null)]),
        };
        type Case = (&'static str, &'static [(&'static str, &'static str)], Value);
        let cases: [Case; 4] = [
            ("ExtractField$Value", &[("field", "age")], Value::Int32(18)),
            (
                "ReplaceField$Value",
                &[("renames", "age:years")],
                Value::Struct(vec![("years".into(), Value::Int32(18))]),
            ),
            (
                "Cast$Value",
                &[("spec", "age:int64")],
                Value::Struct(vec![("age".into(), Value::Int64(18))]),
            ),
            (
                "InsertField$Value",
                &[("static.field", "s"), ("static.value", "x")],
                Value::Struct(vec![
                    ("age".into(), Value::Int32(18)),
                    ("s".into(), Value::String("x".into())),
                ]),
            ),
        ];
        for (class, settings, expected) in cases {
            let on = create_transform(class, &config(settings)).unwrap();
            let out = on.apply(record("t", data.clone())).unwrap().unwrap();
            assert_eq!(out.value.value, expected, "{class} with defaults");
            let mut off_settings = config(settings);
            off_settings.insert("replace.null.with.default".into(), "false".into());
            let off = create_transform(class, &off_settings).unwrap();
            let out = off.apply(record("t", data.clone())).unwrap().unwrap();
            assert_ne!(
                out.value.value, expected,
                "{class} without defaults keeps the null"
            );
        }
        let mut bad = config(&[("field", "age")]);
        bad.insert("replace.null.with.default".into(), "maybe".into());
        assert!(create_transform("ExtractField$Value", &bad).is_err());
    }

    // Every SMT and predicate configures from its required keys alone, its
    // definition found by name giving the rest.
    #[test]
    fn each_smt_configures_through_its_definition() {
        type Case = (&'static str, &'static [(&'static str, &'static str)]);
        let transforms: [Case; 16] = [
            ("InsertHeader", &[("header", "h"), ("value.literal", "v")]),
            ("DropHeaders", &[("headers", "h")]),
            ("Filter", &[]),
            ("RegexRouter", &[("regex", "a"), ("replacement", "b")]),
            ("TimestampRouter", &[]),
            ("ValueToKey", &[("fields", "f")]),
            ("ExtractField$Value", &[("field", "f")]),
            ("HoistField$Value", &[("field", "f")]),
            ("InsertField$Value", &[]),
            ("ReplaceField$Value", &[]),
            ("MaskField$Value", &[("fields", "f")]),
            ("SetSchemaMetadata$Value", &[("schema.name", "n")]),
            ("Flatten$Value", &[]),
            (
                "HeaderFrom$Value",
                &[("fields", "f"), ("headers", "h"), ("operation", "copy")],
            ),
            ("Cast$Value", &[("spec", "int64")]),
            ("TimestampConverter$Value", &[("target.type", "unix")]),
        ];
        for (class, settings) in transforms {
            let (simple, _) = split_class(class);
            assert!(
                defs::transform_def(&simple).is_some(),
                "{class} has a definition"
            );
            if let Err(error) = create_transform(class, &config(settings)) {
                panic!("{class}: {error}");
            }
        }
        let predicates: [Case; 3] = [
            ("TopicNameMatches", &[("pattern", "t")]),
            ("HasHeaderKey", &[("name", "h")]),
            ("RecordIsTombstone", &[]),
        ];
        for (class, settings) in predicates {
            assert!(
                defs::predicate_def(class).is_some(),
                "{class} has a definition"
            );
            if let Err(error) = create_predicate(class, &config(settings)) {
                panic!("{class}: {error}");
            }
        }
    }

    // The messages an SMT's configure gives for its keys: Kafka Connect's, as
    // its definition words them.
    #[test]
    fn configure_messages_come_from_the_definitions() {
        type Case = (
            &'static str,
            &'static [(&'static str, &'static str)],
            &'static str,
        );
        let cases: [Case; 9] = [
            (
                "TimestampConverter$Value",
                &[],
                "Missing required configuration \"target.type\" which has no default value.",
            ),
            (
                "TimestampConverter$Value",
                &[("target.type", "Century")],
                "Invalid value Century for configuration target.type: String must be one of: string, unix, Date, Time, Timestamp",
            ),
            (
                "TimestampConverter$Value",
                &[("target.type", "STRING"), ("format", "yyyy")],
                "Invalid value STRING for configuration target.type: String must be one of: string, unix, Date, Time, Timestamp",
            ),
            (
                "TimestampConverter$Value",
                &[("target.type", "unix"), ("unix.precision", "minutes")],
                "Invalid value minutes for configuration unix.precision: String must be one of: nanoseconds, microseconds, milliseconds, seconds",
            ),
            (
                "HeaderFrom$Value",
                &[("fields", "a"), ("headers", "b"), ("operation", "shift")],
                "Invalid value shift for configuration operation: String must be one of: move, copy",
            ),
            (
                "ExtractField$Value",
                &[("field", "a"), ("field.syntax.version", "V3")],
                "Invalid value V3 for configuration field.syntax.version: String must be one of (case insensitive): V1, V2",
            ),
            (
                "ExtractField$Value",
                &[("field", "a"), ("replace.null.with.default", "maybe")],
                "Invalid value maybe for configuration replace.null.with.default: Expected value to be either true or false",
            ),
            (
                "SetSchemaMetadata$Value",
                &[("schema.version", "two")],
                "Invalid value two for configuration schema.version: Not a number of type INT",
            ),
            (
                "InsertHeader",
                &[("header", "h")],
                "Missing required configuration \"value.literal\" which has no default value.",
            ),
        ];
        for (class, settings, expected) in cases {
            match create_transform(class, &config(settings)) {
                Ok(_) => panic!("{class} {settings:?} configured"),
                Err(error) => assert_eq!(error, expected, "{class} {settings:?}"),
            }
        }
    }

    #[test]
    fn chain_base_keys_are_parsed_under_the_alias() {
        let bad_negate = TransformChain::from_config(&config(&[
            ("transforms", "a"),
            ("transforms.a.type", "Filter"),
            ("transforms.a.negate", "maybe"),
        ]))
        .err()
        .unwrap();
        assert_eq!(
            bad_negate,
            "Invalid value maybe for configuration transforms.a.negate: Expected value to be either true or false"
        );
        let missing_predicate_type = TransformChain::from_config(&config(&[
            ("transforms", "a"),
            ("transforms.a.type", "Filter"),
            ("transforms.a.predicate", "p"),
            ("predicates", "p"),
        ]))
        .err()
        .unwrap();
        assert_eq!(
            missing_predicate_type,
            "Missing required configuration \"predicates.p.type\" which has no default value."
        );
    }

    #[test]
    fn chain_config_errors_name_the_key() {
        let missing = TransformChain::from_config(&config(&[("transforms", "a")]))
            .err()
            .unwrap();
        assert!(missing.contains("transforms.a.type"), "{missing}");
        let unknown = TransformChain::from_config(&config(&[
            ("transforms", "a"),
            ("transforms.a.type", "NoSuchSmt"),
        ]))
        .err()
        .unwrap();
        assert!(unknown.contains("NoSuchSmt"), "{unknown}");
        let negate = TransformChain::from_config(&config(&[
            ("transforms", "a"),
            ("transforms.a.type", "Filter"),
            ("transforms.a.negate", "true"),
        ]))
        .err()
        .unwrap();
        assert!(negate.contains("negate"), "{negate}");
        let undefined = TransformChain::from_config(&config(&[
            ("transforms", "a"),
            ("transforms.a.type", "Filter"),
            ("transforms.a.predicate", "nope"),
        ]))
        .err()
        .unwrap();
        assert!(undefined.contains("nope"), "{undefined}");
    }
}
