//! The connector API's types on the wire: conversions between
//! [`weir_api::api`]/[`weir_api::data`] and connector protocol v2
//! (`proto/weir/connector/v2`). Both sides of a sidecar use them: the Rust
//! SDK that serves a connector and the runner that calls it.

use weir_proto::connector::v2 as pb;

use weir_api::api::ConnectorPlugin;
use weir_api::api::{
    ConnectorError, Header, JsonMap, RecordError, SinkRecord, SourcePosition, SourceRecord,
    TopicPartitionOffset,
};
use weir_api::config::{
    ConfigDef, ConfigKey, ConfigType, Default as KeyDefault, Direction, Importance, Validator,
    Width,
};
use weir_api::data::{Field, Schema, SchemaAndValue, SchemaRef, SchemaType, Value};

/// A message that does not follow the protocol.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("malformed connector protocol message: {0}")]
pub struct Malformed(pub String);

type Result<T> = std::result::Result<T, Malformed>;

fn schema_type_name(schema_type: SchemaType) -> &'static str {
    match schema_type {
        SchemaType::Int8 => "INT8",
        SchemaType::Int16 => "INT16",
        SchemaType::Int32 => "INT32",
        SchemaType::Int64 => "INT64",
        SchemaType::Float32 => "FLOAT32",
        SchemaType::Float64 => "FLOAT64",
        SchemaType::Boolean => "BOOLEAN",
        SchemaType::String => "STRING",
        SchemaType::Bytes => "BYTES",
        SchemaType::Array => "ARRAY",
        SchemaType::Map => "MAP",
        SchemaType::Struct => "STRUCT",
    }
}

fn schema_type_of(name: &str) -> Result<SchemaType> {
    Ok(match name {
        "INT8" => SchemaType::Int8,
        "INT16" => SchemaType::Int16,
        "INT32" => SchemaType::Int32,
        "INT64" => SchemaType::Int64,
        "FLOAT32" => SchemaType::Float32,
        "FLOAT64" => SchemaType::Float64,
        "BOOLEAN" => SchemaType::Boolean,
        "STRING" => SchemaType::String,
        "BYTES" => SchemaType::Bytes,
        "ARRAY" => SchemaType::Array,
        "MAP" => SchemaType::Map,
        "STRUCT" => SchemaType::Struct,
        other => return Err(Malformed(format!("unknown schema type {other:?}"))),
    })
}

pub fn schema_to_wire(schema: &Schema) -> pb::Schema {
    pb::Schema {
        r#type: schema_type_name(schema.schema_type).to_owned(),
        optional: schema.optional,
        default_value: schema.default.as_deref().map(value_to_wire),
        name: schema.name.clone().unwrap_or_default(),
        version: schema.version,
        doc: schema.doc.clone().unwrap_or_default(),
        parameters: schema.parameters.clone().into_iter().collect(),
        fields: schema
            .fields
            .iter()
            .map(|field| pb::Field {
                name: field.name.clone(),
                schema: Some(schema_to_wire(&field.schema)),
            })
            .collect(),
        key_schema: schema
            .key_schema
            .as_deref()
            .map(|s| Box::new(schema_to_wire(s))),
        value_schema: schema
            .value_schema
            .as_deref()
            .map(|s| Box::new(schema_to_wire(s))),
    }
}

pub fn schema_from_wire(wire: &pb::Schema) -> Result<Schema> {
    let schema_type = schema_type_of(&wire.r#type)?;
    let fields = wire
        .fields
        .iter()
        .map(|field| {
            let schema = field
                .schema
                .as_ref()
                .ok_or_else(|| Malformed(format!("field {} has no schema", field.name)))?;
            Ok(Field {
                name: field.name.clone(),
                schema: schema_from_wire(schema)?,
            })
        })
        .collect::<Result<Vec<_>>>()?;
    let nested = |wire: &Option<Box<pb::Schema>>| -> Result<Option<Box<Schema>>> {
        wire.as_deref()
            .map(|s| schema_from_wire(s).map(Box::new))
            .transpose()
    };
    let mut schema = Schema::new(schema_type);
    schema.optional = wire.optional;
    schema.name = Some(wire.name.clone()).filter(|n| !n.is_empty());
    schema.version = wire.version;
    schema.doc = Some(wire.doc.clone()).filter(|d| !d.is_empty());
    schema.parameters = wire.parameters.clone().into_iter().collect();
    schema.fields = fields;
    schema.key_schema = nested(&wire.key_schema)?;
    schema.value_schema = nested(&wire.value_schema)?;
    schema.default = match &wire.default_value {
        Some(value) => Some(Box::new(value_from_wire(value, Some(&schema))?)),
        None => None,
    };
    Ok(schema)
}

pub fn value_to_wire(value: &Value) -> pb::Value {
    use pb::value::Kind;
    let kind = match value {
        Value::Null => Kind::Null(true),
        Value::Int8(v) => Kind::Int(i64::from(*v)),
        Value::Int16(v) => Kind::Int(i64::from(*v)),
        Value::Int32(v) => Kind::Int(i64::from(*v)),
        Value::Int64(v) => Kind::Int(*v),
        Value::Float32(v) => Kind::Float(f64::from(*v)),
        Value::Float64(v) => Kind::Float(*v),
        Value::Boolean(v) => Kind::Boolean(*v),
        Value::String(v) => Kind::String(v.clone()),
        Value::Bytes(v) => Kind::Bytes(v.clone().into()),
        Value::Array(items) => Kind::Array(pb::ValueList {
            values: items.iter().map(value_to_wire).collect(),
        }),
        Value::Map(entries) => Kind::Map(pb::MapEntries {
            entries: entries
                .iter()
                .map(|(k, v)| pb::MapEntry {
                    key: Some(value_to_wire(k)),
                    value: Some(value_to_wire(v)),
                })
                .collect(),
        }),
        Value::Struct(fields) => Kind::Struct(pb::StructValue {
            fields: fields
                .iter()
                .map(|(name, v)| pb::FieldValue {
                    name: name.clone(),
                    value: Some(value_to_wire(v)),
                })
                .collect(),
        }),
    };
    pb::Value { kind: Some(kind) }
}

fn out_of_range(what: &str, v: impl std::fmt::Display) -> Malformed {
    Malformed(format!("{v} does not fit {what}"))
}

/// A wire value as the data model's value; the schema, when there is one,
/// restores integer and float widths.
pub fn value_from_wire(wire: &pb::Value, schema: Option<&Schema>) -> Result<Value> {
    use pb::value::Kind;
    let schema_type = schema.map(|s| s.schema_type);
    Ok(match wire.kind.as_ref() {
        None | Some(Kind::Null(_)) => Value::Null,
        Some(Kind::Int(v)) => match schema_type {
            Some(SchemaType::Int8) => {
                Value::Int8(i8::try_from(*v).map_err(|_| out_of_range("INT8", v))?)
            }
            Some(SchemaType::Int16) => {
                Value::Int16(i16::try_from(*v).map_err(|_| out_of_range("INT16", v))?)
            }
            Some(SchemaType::Int32) => {
                Value::Int32(i32::try_from(*v).map_err(|_| out_of_range("INT32", v))?)
            }
            _ => Value::Int64(*v),
        },
        #[allow(clippy::cast_possible_truncation)] // FLOAT32 values came from f32
        Some(Kind::Float(v)) => match schema_type {
            Some(SchemaType::Float32) => Value::Float32(*v as f32),
            _ => Value::Float64(*v),
        },
        Some(Kind::Boolean(v)) => Value::Boolean(*v),
        Some(Kind::String(v)) => Value::String(v.clone()),
        Some(Kind::Bytes(v)) => Value::Bytes(v.to_vec()),
        Some(Kind::Array(list)) => {
            let items = schema.and_then(|s| s.value_schema.as_deref());
            Value::Array(
                list.values
                    .iter()
                    .map(|v| value_from_wire(v, items))
                    .collect::<Result<_>>()?,
            )
        }
        Some(Kind::Map(map)) => {
            let keys = schema.and_then(|s| s.key_schema.as_deref());
            let values = schema.and_then(|s| s.value_schema.as_deref());
            let missing = || pb::Value { kind: None };
            Value::Map(
                map.entries
                    .iter()
                    .map(|entry| {
                        Ok((
                            value_from_wire(entry.key.as_ref().unwrap_or(&missing()), keys)?,
                            value_from_wire(entry.value.as_ref().unwrap_or(&missing()), values)?,
                        ))
                    })
                    .collect::<Result<_>>()?,
            )
        }
        Some(Kind::Struct(fields)) => Value::Struct(
            fields
                .fields
                .iter()
                .map(|field| {
                    let field_schema = schema.and_then(|s| s.field(&field.name)).map(|f| &f.schema);
                    let value = match &field.value {
                        Some(value) => value_from_wire(value, field_schema)?,
                        None => Value::Null,
                    };
                    Ok((field.name.clone(), value))
                })
                .collect::<Result<_>>()?,
        ),
    })
}

pub fn data_to_wire(data: &SchemaAndValue) -> pb::Data {
    pb::Data {
        kind: Some(pb::data::Kind::Structured(pb::Structured {
            schema: data.schema.as_deref().map(schema_to_wire),
            value: Some(value_to_wire(&data.value)),
        })),
    }
}

/// Data for an optional wire field: a null without a schema (a record with
/// no key, say) is left out, which every peer reads back as null, so it
/// costs nothing on the wire.
pub fn present_data_to_wire(data: &SchemaAndValue) -> Option<pb::Data> {
    if data.schema.is_none() && matches!(data.value, Value::Null) {
        return None;
    }
    Some(data_to_wire(data))
}

/// Wire data as the data model's; raw bytes become a BYTES value (the
/// runner's ByteArrayConverter passes them on unchanged).
pub fn data_from_wire(wire: Option<&pb::Data>) -> Result<SchemaAndValue> {
    match wire.and_then(|d| d.kind.as_ref()) {
        None => Ok(SchemaAndValue::null()),
        Some(pb::data::Kind::Raw(bytes)) => Ok(SchemaAndValue {
            schema: Some(Schema::new(SchemaType::Bytes).optional().into()),
            value: Value::Bytes(bytes.to_vec()),
        }),
        Some(pb::data::Kind::Structured(structured)) => {
            let schema = structured
                .schema
                .as_ref()
                .map(schema_from_wire)
                .transpose()?
                .map(SchemaRef::new);
            let value = match &structured.value {
                Some(value) => value_from_wire(value, schema.as_deref())?,
                None => Value::Null,
            };
            Ok(SchemaAndValue { schema, value })
        }
    }
}

fn json_object(text: &str, what: &str) -> Result<JsonMap> {
    match serde_json::from_str(text) {
        Ok(serde_json::Value::Object(map)) => Ok(map),
        _ => Err(Malformed(format!("{what} is not a JSON object: {text}"))),
    }
}

pub fn position_to_wire(position: &SourcePosition) -> pb::SourcePosition {
    pb::SourcePosition {
        partition_json: serde_json::Value::Object(position.partition.clone()).to_string(),
        offset_json: serde_json::Value::Object(position.offset.clone()).to_string(),
    }
}

pub fn position_from_wire(wire: &pb::SourcePosition) -> Result<SourcePosition> {
    Ok(SourcePosition {
        partition: json_object(&wire.partition_json, "a source partition")?,
        offset: json_object(&wire.offset_json, "a source offset")?,
    })
}

fn headers_to_wire(headers: &[Header]) -> Vec<pb::Header> {
    headers
        .iter()
        .map(|h| pb::Header {
            key: h.key.clone(),
            value: present_data_to_wire(&h.value),
        })
        .collect()
}

fn headers_from_wire(headers: &[pb::Header]) -> Result<Vec<Header>> {
    headers
        .iter()
        .map(|h| {
            Ok(Header {
                key: h.key.clone(),
                value: data_from_wire(h.value.as_ref())?,
            })
        })
        .collect()
}

/// The records of one batch for the wire; consecutive records of one
/// source partition (the usual case) share its JSON text, rendered once.
pub fn source_records_to_wire(records: &[SourceRecord]) -> Vec<pb::SourceRecord> {
    let mut last: Option<(&std::sync::Arc<JsonMap>, String)> = None;
    records
        .iter()
        .map(|record| {
            let partition_json = match &last {
                Some((partition, text))
                    if std::sync::Arc::ptr_eq(partition, &record.source_partition) =>
                {
                    text.clone()
                }
                _ => {
                    let text = serde_json::to_string(&*record.source_partition).unwrap_or_default();
                    last = Some((&record.source_partition, text.clone()));
                    text
                }
            };
            pb::SourceRecord {
                partition_json,
                offset_json: serde_json::to_string(&record.source_offset).unwrap_or_default(),
                topic: record.topic.to_string(),
                kafka_partition: record.kafka_partition,
                key: present_data_to_wire(&record.key),
                value: present_data_to_wire(&record.value),
                timestamp_ms: record.timestamp_ms,
                headers: headers_to_wire(&record.headers),
            }
        })
        .collect()
}

/// The records of one batch from the wire; consecutive records of one
/// source partition share one parsed map (see [`SourceRecord::source_partition`]).
pub fn source_records_from_wire(
    records: impl IntoIterator<Item = pb::SourceRecord>,
) -> Result<Vec<SourceRecord>> {
    let mut last: Option<(String, std::sync::Arc<JsonMap>)> = None;
    records
        .into_iter()
        .map(|wire| {
            let partition = match &last {
                Some((text, partition)) if *text == wire.partition_json => partition.clone(),
                _ => {
                    let partition = std::sync::Arc::new(json_object(
                        &wire.partition_json,
                        "a source partition",
                    )?);
                    last = Some((wire.partition_json.clone(), partition.clone()));
                    partition
                }
            };
            Ok(SourceRecord {
                source_partition: partition,
                source_offset: json_object(&wire.offset_json, "a source offset")?.into(),
                topic: wire.topic.into(),
                kafka_partition: wire.kafka_partition,
                key: data_from_wire(wire.key.as_ref())?,
                value: data_from_wire(wire.value.as_ref())?,
                timestamp_ms: wire.timestamp_ms,
                headers: headers_from_wire(&wire.headers)?,
            })
        })
        .collect()
}

pub fn sink_record_to_wire(record: &SinkRecord) -> pb::SinkRecord {
    pb::SinkRecord {
        topic: record.topic.to_string(),
        partition: record.partition,
        offset: record.offset,
        key: present_data_to_wire(&record.key),
        value: present_data_to_wire(&record.value),
        timestamp_ms: record.timestamp_ms,
        headers: headers_to_wire(&record.headers),
    }
}

pub fn sink_record_from_wire(wire: &pb::SinkRecord) -> Result<SinkRecord> {
    Ok(SinkRecord {
        topic: wire.topic.clone().into(),
        partition: wire.partition,
        offset: wire.offset,
        key: data_from_wire(wire.key.as_ref())?,
        value: data_from_wire(wire.value.as_ref())?,
        timestamp_ms: wire.timestamp_ms,
        headers: headers_from_wire(&wire.headers)?,
    })
}

pub fn offset_to_wire(offset: &TopicPartitionOffset) -> pb::TopicPartitionOffset {
    pb::TopicPartitionOffset {
        topic: offset.topic.clone(),
        partition: offset.partition,
        offset: offset.offset,
    }
}

pub fn offset_from_wire(wire: &pb::TopicPartitionOffset) -> TopicPartitionOffset {
    TopicPartitionOffset {
        topic: wire.topic.clone(),
        partition: wire.partition,
        offset: wire.offset,
    }
}

pub fn config_key_to_wire(key: &ConfigKey) -> pb::ConfigKey {
    pb::ConfigKey {
        name: key.name.to_owned(),
        r#type: key.config_type.name().to_owned(),
        default_value: key.default_value().map(str::to_owned),
        importance: key.importance.name().to_owned(),
        documentation: key.documentation.to_owned(),
        group: key.group.to_owned(),
        order: key.order,
        width: key.width.name().to_owned(),
        display_name: key.display_name.to_owned(),
        required: key.is_required(),
        validator: key.validator.as_ref().map(validator_to_wire),
    }
}

fn validator_to_wire(validator: &Validator) -> pb::Validator {
    use pb::validator::Kind;
    let kind = match validator {
        Validator::AtLeast(min) => Kind::AtLeast(*min),
        // The protocol's `one_of` ignores case: a case-sensitive list goes
        // out as it, and the plugin's own configure still refuses the rest.
        Validator::OneOf(values)
        | Validator::OneOfMatchingCase(values)
        | Validator::OneOfIgnoringCase(values) => Kind::OneOf(pb::ValidValues {
            values: values.iter().map(|v| (*v).to_owned()).collect(),
        }),
        Validator::NonEmptyString => Kind::NonEmptyString(true),
        Validator::NonEmptyNoControlChars => Kind::NonEmptyNoControlChars(true),
    };
    pb::Validator { kind: Some(kind) }
}

/// A validator from the wire; one this side does not know is left out (the
/// plugin's own validate still checks it).
fn validator_from_wire(validator: &pb::Validator) -> Option<Validator> {
    use pb::validator::Kind;
    match validator.kind.as_ref()? {
        Kind::AtLeast(min) => Some(Validator::AtLeast(*min)),
        Kind::OneOf(valid) => {
            let values: Vec<&'static str> = valid.values.iter().map(|v| intern(v)).collect();
            Some(Validator::OneOf(intern_list(values)))
        }
        Kind::NonEmptyString(true) => Some(Validator::NonEmptyString),
        Kind::NonEmptyNoControlChars(true) => Some(Validator::NonEmptyNoControlChars),
        Kind::NonEmptyString(false) | Kind::NonEmptyNoControlChars(false) => None,
    }
}

/// A list of interned strings kept once per distinct list, as [`intern`]
/// keeps text.
fn intern_list(values: Vec<&'static str>) -> &'static [&'static str] {
    use std::collections::HashSet;
    use std::sync::{Mutex, OnceLock};
    static INTERNED: OnceLock<Mutex<HashSet<&'static [&'static str]>>> = OnceLock::new();
    let mut interned = INTERNED
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    if let Some(known) = interned.get(values.as_slice()) {
        return known;
    }
    let kept: &'static [&'static str] = Box::leak(values.into_boxed_slice());
    interned.insert(kept);
    kept
}

/// The API keeps class names and ConfigDef text as `'static`. Text learnt
/// from the wire (a sidecar's handshake, a runner's report) is interned:
/// kept once per distinct string, however often it is reported again.
pub fn intern(text: &str) -> &'static str {
    use std::collections::HashSet;
    use std::sync::{Mutex, OnceLock};
    static INTERNED: OnceLock<Mutex<HashSet<&'static str>>> = OnceLock::new();
    let mut interned = INTERNED
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    if let Some(known) = interned.get(text) {
        return known;
    }
    let kept: &'static str = Box::leak(text.to_owned().into_boxed_str());
    interned.insert(kept);
    kept
}

pub fn config_key_from_wire(key: &pb::ConfigKey) -> ConfigKey {
    let config_type = match key.r#type.as_str() {
        "BOOLEAN" => ConfigType::Boolean,
        "INT" => ConfigType::Int,
        "SHORT" => ConfigType::Short,
        "LONG" => ConfigType::Long,
        "DOUBLE" => ConfigType::Double,
        "LIST" => ConfigType::List,
        "CLASS" => ConfigType::Class,
        "PASSWORD" => ConfigType::Password,
        _ => ConfigType::String,
    };
    let default = match (&key.default_value, key.required) {
        (_, true) => KeyDefault::Required,
        (Some(value), false) => KeyDefault::Value(intern(value)),
        (None, false) => KeyDefault::Null,
    };
    let mut defined = ConfigKey::new(intern(&key.name), config_type, default)
        .importance(match key.importance.as_str() {
            "HIGH" => Importance::High,
            "MEDIUM" => Importance::Medium,
            _ => Importance::Low,
        })
        .doc(intern(&key.documentation));
    defined.group = intern(&key.group);
    defined.order = key.order;
    defined.width = match key.width.as_str() {
        "SHORT" => Width::Short,
        "MEDIUM" => Width::Medium,
        "LONG" => Width::Long,
        _ => Width::None,
    };
    defined.display_name = intern(&key.display_name);
    defined.validator = key.validator.as_ref().and_then(validator_from_wire);
    defined
}

/// How a plugin describes itself on the wire: in a sidecar's handshake, and
/// in a runner's Hello.
pub fn plugin_to_wire(plugin: &dyn ConnectorPlugin) -> pb::Plugin {
    pb::Plugin {
        class: plugin.class().to_owned(),
        aliases: weir_api::api::aliases(plugin.class()),
        kind: kind_to_wire(plugin.kind()) as i32,
        version: plugin.version().to_owned(),
        config: plugin
            .config_def()
            .keys
            .iter()
            .map(config_key_to_wire)
            .collect(),
    }
}

/// A plugin as it described itself: enough to list it, find it by name and
/// validate a config against its ConfigDef, but not to run it.
#[derive(Debug, Clone)]
pub struct Described {
    pub class: &'static str,
    pub aliases: Vec<String>,
    pub kind: Direction,
    pub version: &'static str,
    pub config_def: ConfigDef,
}

impl Described {
    pub fn of(plugin: &dyn ConnectorPlugin) -> Self {
        Described {
            class: plugin.class(),
            aliases: weir_api::api::aliases(plugin.class()),
            kind: plugin.kind(),
            version: plugin.version(),
            config_def: plugin.config_def(),
        }
    }

    /// Whether `name` is this plugin's class or one of its aliases.
    pub fn answers_to(&self, name: &str) -> bool {
        let name = name.trim();
        name == self.class || self.aliases.iter().any(|alias| alias == name)
    }
}

pub fn plugin_from_wire(plugin: &pb::Plugin) -> Result<Described> {
    let kind = match pb::PluginKind::try_from(plugin.kind) {
        Ok(pb::PluginKind::Source) => Direction::Source,
        Ok(pb::PluginKind::Sink) => Direction::Sink,
        _ => {
            return Err(Malformed(format!(
                "plugin {} is neither a source nor a sink",
                plugin.class
            )));
        }
    };
    if plugin.class.trim().is_empty() {
        return Err(Malformed("a plugin with an empty class name".to_owned()));
    }
    let mut config_def = ConfigDef::new();
    for key in &plugin.config {
        config_def = config_def.define(config_key_from_wire(key));
    }
    let mut aliases = weir_api::api::aliases(&plugin.class);
    aliases.extend(plugin.aliases.iter().cloned());
    aliases.sort();
    aliases.dedup();
    Ok(Described {
        class: intern(&plugin.class),
        aliases,
        kind,
        version: intern(&plugin.version),
        config_def,
    })
}

pub fn kind_to_wire(kind: Direction) -> pb::PluginKind {
    match kind {
        Direction::Source => pb::PluginKind::Source,
        Direction::Sink => pb::PluginKind::Sink,
    }
}

pub fn record_error_to_wire(failed: &RecordError) -> pb::RecordError {
    let kind = if failed.retriable {
        pb::task_error::Kind::Retriable
    } else {
        pb::task_error::Kind::Fatal
    };
    pb::RecordError {
        index: u32::try_from(failed.index).unwrap_or(u32::MAX),
        error: Some(pb::TaskError {
            kind: kind as i32,
            message: failed.message.clone(),
        }),
    }
}

pub fn record_error_from_wire(failed: &pb::RecordError) -> RecordError {
    let error = failed.error.clone().unwrap_or_default();
    RecordError {
        index: failed.index as usize,
        retriable: error.kind == pb::task_error::Kind::Retriable as i32,
        message: error.message,
    }
}

/// A connector error as a typed task error.
pub fn error_to_wire(error: &ConnectorError) -> pb::TaskError {
    let kind = if error.is_retriable() {
        pb::task_error::Kind::Retriable
    } else {
        pb::task_error::Kind::Fatal
    };
    pb::TaskError {
        kind: kind as i32,
        message: error.to_string(),
    }
}

/// A typed task error as a connector error; an unknown kind is fatal.
pub fn error_from_wire(error: &pb::TaskError) -> ConnectorError {
    match pb::task_error::Kind::try_from(error.kind) {
        Ok(pb::task_error::Kind::Retriable) => ConnectorError::Retriable(error.message.clone()),
        _ => ConnectorError::Fatal(error.message.clone()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_null_without_a_schema_is_left_off_the_wire_and_read_back_as_null() {
        let record = SinkRecord {
            topic: "t".into(),
            partition: 0,
            offset: 7,
            key: SchemaAndValue::null(),
            value: SchemaAndValue {
                schema: Some(Schema::string().optional().into()),
                value: Value::Null,
            },
            timestamp_ms: None,
            headers: Vec::new(),
        };
        let wire = sink_record_to_wire(&record);
        assert!(wire.key.is_none(), "a schemaless null costs nothing");
        assert!(
            wire.value.is_some(),
            "a null with a schema keeps its schema"
        );
        let back = sink_record_from_wire(&wire).unwrap();
        assert_eq!(back.key, SchemaAndValue::null());
        assert_eq!(back.value, record.value);
    }

    #[test]
    fn config_key_validators_cross_the_wire_and_check_values_on_the_other_side() {
        let keys = [
            ConfigKey::new("tasks", ConfigType::Int, KeyDefault::Value("1"))
                .validator(Validator::AtLeast(1)),
            ConfigKey::new("mode", ConfigType::String, KeyDefault::Value("a"))
                .validator(Validator::OneOf(&["a", "b"])),
            ConfigKey::new("label", ConfigType::String, KeyDefault::Required)
                .validator(Validator::NonEmptyString),
            ConfigKey::new("name", ConfigType::String, KeyDefault::Required)
                .validator(Validator::NonEmptyNoControlChars),
            ConfigKey::new("free", ConfigType::String, KeyDefault::Null),
        ];
        for key in keys {
            let back = config_key_from_wire(&config_key_to_wire(&key));
            assert_eq!(back.validator, key.validator, "{}", key.name);
        }
        let mode = config_key_from_wire(&config_key_to_wire(
            &ConfigKey::new("mode", ConfigType::String, KeyDefault::Value("a"))
                .validator(Validator::OneOf(&["a", "b"])),
        ));
        assert_eq!(
            mode.check(Some("c")),
            vec!["Invalid value c for configuration mode: String must be one of: a, b".to_owned()]
        );
        let tasks = config_key_from_wire(&config_key_to_wire(
            &ConfigKey::new("tasks", ConfigType::Int, KeyDefault::Value("1"))
                .validator(Validator::AtLeast(1)),
        ));
        assert_eq!(tasks.check(Some("0")).len(), 1);
        assert!(tasks.check(Some("3")).is_empty());
    }

    fn round_trip(data: SchemaAndValue) {
        let back = data_from_wire(Some(&data_to_wire(&data))).unwrap();
        assert_eq!(back, data);
    }

    #[test]
    fn structured_data_round_trips_with_widths_and_names() {
        let mut point = Schema::new(SchemaType::Struct);
        point.name = Some("com.example.Point".into());
        point.version = Some(2);
        point.fields = vec![
            Field {
                name: "x".into(),
                schema: Schema::new(SchemaType::Int16),
            },
            Field {
                name: "tags".into(),
                schema: Schema::array(Schema::string()).optional(),
            },
            Field {
                name: "ratio".into(),
                schema: Schema::new(SchemaType::Float32),
            },
            Field {
                name: "attrs".into(),
                schema: Schema::map(Schema::string(), Schema::new(SchemaType::Int8)),
            },
        ];
        round_trip(SchemaAndValue {
            schema: Some(point.into()),
            value: Value::Struct(vec![
                ("x".into(), Value::Int16(-7)),
                ("tags".into(), Value::Array(vec![Value::String("a".into())])),
                ("ratio".into(), Value::Float32(0.5)),
                (
                    "attrs".into(),
                    Value::Map(vec![(Value::String("k".into()), Value::Int8(3))]),
                ),
            ]),
        });
        round_trip(SchemaAndValue::null());
        round_trip(SchemaAndValue {
            schema: None,
            value: Value::Bytes(vec![0, 255]),
        });
    }

    #[test]
    fn malformed_messages_are_errors_not_panics() {
        let bad = pb::Schema {
            r#type: "DECIMAL".into(),
            ..Default::default()
        };
        assert!(schema_from_wire(&bad).is_err());
        let too_big = pb::Value {
            kind: Some(pb::value::Kind::Int(1_000)),
        };
        assert!(value_from_wire(&too_big, Some(&Schema::new(SchemaType::Int8))).is_err());
        let position = pb::SourcePosition {
            partition_json: "[1]".into(),
            offset_json: "{}".into(),
        };
        assert!(position_from_wire(&position).is_err());
    }
}
