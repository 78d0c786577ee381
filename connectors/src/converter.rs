//! Converters between Connect data and the bytes stored in Kafka:
//! `JsonConverter` (with and without the `{"schema":…,"payload":…}`
//! envelope), `StringConverter` and `ByteArrayConverter`, by Kafka Connect's
//! class names and aliases.

use std::collections::BTreeMap;
use std::sync::Arc;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde_json::{Map as JsonObject, Value as Json, json};

use crate::config::{ConfigDef, ConfigKey, ConfigMap, ConfigType, Default, Importance};
use crate::data::{Field, Schema, SchemaAndValue, SchemaRef, SchemaType, Value};

pub const JSON_CONVERTER: &str = "org.apache.kafka.connect.json.JsonConverter";
pub const STRING_CONVERTER: &str = "org.apache.kafka.connect.storage.StringConverter";
pub const BYTE_ARRAY_CONVERTER: &str = "org.apache.kafka.connect.converters.ByteArrayConverter";

/// Every converter this build has, by class name.
pub const CONVERTER_CLASSES: [&str; 3] = [BYTE_ARRAY_CONVERTER, JSON_CONVERTER, STRING_CONVERTER];

/// A conversion failure, with Kafka Connect's `DataException` text.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{0}")]
pub struct ConvertError(pub String);

type Result<T> = std::result::Result<T, ConvertError>;

/// Converts record keys or values to and from their serialized form.
pub trait Converter: Send + Sync {
    fn to_kafka(&self, topic: &str, data: &SchemaAndValue) -> Result<Option<Vec<u8>>>;
    fn to_connect(&self, topic: &str, bytes: Option<&[u8]>) -> Result<SchemaAndValue>;

    /// As [`Converter::to_kafka`], into `out` (cleared first), so that a
    /// task loop reuses one buffer for every record; false for null.
    fn to_kafka_into(&self, topic: &str, data: &SchemaAndValue, out: &mut Vec<u8>) -> Result<bool> {
        out.clear();
        match self.to_kafka(topic, data)? {
            Some(bytes) => {
                out.extend_from_slice(&bytes);
                Ok(true)
            }
            None => Ok(false),
        }
    }
}

/// The class of `classes` that `name` names: its full name, its simple
/// name, or its simple name without `Converter`.
fn resolve_among(classes: &[&'static str], name: &str) -> Option<&'static str> {
    let name = name.trim();
    classes.iter().copied().find(|class| {
        let simple = class.rsplit('.').next().unwrap_or(class);
        name == *class || name == simple || Some(name) == simple.strip_suffix("Converter")
    })
}

/// Resolves a converter class name or alias to its full class name.
pub fn resolve_class(name: &str) -> Option<&'static str> {
    resolve_among(&CONVERTER_CLASSES, name)
}

/// Creates a converter from its class (or alias) and its own settings
/// (already stripped of the `key.converter.` / `value.converter.` prefix).
pub fn create(class: &str, settings: &ConfigMap) -> Result<Box<dyn Converter>> {
    match resolve_class(class) {
        Some(JSON_CONVERTER) => {
            let def = JsonConverter::config_def();
            let settings = def.parse(settings).map_err(ConvertError)?;
            let schemas_enable = settings.boolean(SCHEMAS_ENABLE).map_err(ConvertError)?;
            Ok(Box::new(JsonConverter::new(schemas_enable)))
        }
        Some(STRING_CONVERTER) => Ok(Box::new(StringConverter)),
        Some(BYTE_ARRAY_CONVERTER) => Ok(Box::new(ByteArrayConverter)),
        _ => Err(ConvertError(format!(
            "Failed to find any class that implements Converter and which name matches {class}"
        ))),
    }
}

pub const SIMPLE_HEADER_CONVERTER: &str = "org.apache.kafka.connect.storage.SimpleHeaderConverter";

/// The classes `header.converter` accepts, the default first.
pub const HEADER_CONVERTER_CLASSES: [&str; 4] = [
    SIMPLE_HEADER_CONVERTER,
    STRING_CONVERTER,
    JSON_CONVERTER,
    BYTE_ARRAY_CONVERTER,
];

/// Resolves a header converter class name or alias.
pub fn resolve_header_class(name: &str) -> Option<&'static str> {
    resolve_among(&HEADER_CONVERTER_CLASSES, name)
}

/// Creates a header converter (`header.converter`): the value converters
/// that are also header converters in Kafka Connect, and
/// SimpleHeaderConverter. `settings` are stripped of `header.converter.`.
pub fn create_header(class: &str, settings: &ConfigMap) -> Result<Box<dyn Converter>> {
    match resolve_header_class(class) {
        Some(SIMPLE_HEADER_CONVERTER) => Ok(Box::new(SimpleHeaderConverter)),
        Some(other) => create(other, settings),
        None => Err(ConvertError(format!(
            "Invalid value {class} for configuration header.converter: Class {class} could not be found."
        ))),
    }
}

/// `org.apache.kafka.connect.storage.SimpleHeaderConverter`: a header value
/// as its text; text read back as the simplest value it spells (a boolean,
/// a 32- or 64-bit integer, a 64-bit float, else a string).
pub struct SimpleHeaderConverter;

impl Converter for SimpleHeaderConverter {
    fn to_kafka(&self, _topic: &str, data: &SchemaAndValue) -> Result<Option<Vec<u8>>> {
        Ok(match &data.value {
            Value::Null => None,
            Value::Bytes(bytes) => Some(bytes.clone()),
            other => Some(other.to_display_string().into_bytes()),
        })
    }

    fn to_connect(&self, _topic: &str, bytes: Option<&[u8]>) -> Result<SchemaAndValue> {
        let Some(bytes) = bytes else {
            return Ok(SchemaAndValue::null());
        };
        let text = crate::data::text_of(bytes);
        let typed = |schema_type: SchemaType, value: Value| SchemaAndValue {
            schema: Some(Schema::new(schema_type).into()),
            value,
        };
        Ok(match text.as_str() {
            "true" => typed(SchemaType::Boolean, Value::Boolean(true)),
            "false" => typed(SchemaType::Boolean, Value::Boolean(false)),
            _ => {
                if let Ok(int) = text.parse::<i32>() {
                    typed(SchemaType::Int32, Value::Int32(int))
                } else if let Ok(long) = text.parse::<i64>() {
                    typed(SchemaType::Int64, Value::Int64(long))
                } else if let Some(float) = text
                    .parse::<f64>()
                    .ok()
                    .filter(|f| f.is_finite() && text.contains('.'))
                {
                    typed(SchemaType::Float64, Value::Float64(float))
                } else {
                    typed(SchemaType::String, Value::String(text))
                }
            }
        })
    }
}

/// The settings a converter honours, as `GET /connector-plugins/{p}/config`
/// lists them; `None` for a class that is not a converter.
pub fn converter_def(class: &str) -> Option<ConfigDef> {
    Some(match resolve_class(class)? {
        JSON_CONVERTER => JsonConverter::config_def(),
        _ => ConfigDef::new(),
    })
}

const SCHEMAS_ENABLE: &str = "schemas.enable";

/// `org.apache.kafka.connect.json.JsonConverter`.
pub struct JsonConverter {
    pub schemas_enable: bool,
    /// The serialized JSON of the last schema written: records of one task
    /// usually share a schema, so it is rendered once, as Kafka Connect's cache does.
    schema_cache: std::sync::Mutex<Option<(SchemaRef, String)>>,
    /// The last schema read, by its JSON text.
    read_schema_cache: std::sync::Mutex<Option<(String, SchemaRef)>>,
}

impl JsonConverter {
    /// Its settings, through which [`create`] reads them.
    pub fn config_def() -> ConfigDef {
        ConfigDef::new().define(
            ConfigKey::new(SCHEMAS_ENABLE, ConfigType::Boolean, Default::Value("true"))
                .importance(Importance::High)
                .doc("Include schemas within each of the serialized values and keys."),
        )
    }

    pub fn new(schemas_enable: bool) -> Self {
        JsonConverter {
            schemas_enable,
            schema_cache: std::sync::Mutex::new(None),
            read_schema_cache: std::sync::Mutex::new(None),
        }
    }

    /// Reads a well-formed `{"schema":…,"payload":…}` envelope without building
    /// a JSON tree of the schema: the schema is parsed once per distinct text
    /// (the last one is cached) and a string payload is read directly. `None`
    /// when the bytes are not such an envelope, for the general path to
    /// read (and explain).
    fn envelope_fast_path(&self, bytes: &[u8]) -> Option<Result<SchemaAndValue>> {
        #[derive(serde::Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Envelope<'a> {
            #[serde(borrow)]
            schema: &'a serde_json::value::RawValue,
            #[serde(borrow)]
            payload: &'a serde_json::value::RawValue,
        }
        let envelope: Envelope<'_> = serde_json::from_slice(bytes).ok()?;
        let schema_text = envelope.schema.get();
        if schema_text == "null" {
            return None;
        }
        let schema = {
            let mut cache = self.read_schema_cache.lock().ok()?;
            match cache.as_ref() {
                Some((text, schema)) if text == schema_text => schema.clone(),
                _ => {
                    let parsed: Json = serde_json::from_str(schema_text).ok()?;
                    let schema = match schema_from_json(&parsed) {
                        Ok(schema) => SchemaRef::new(schema),
                        Err(error) => return Some(Err(error)),
                    };
                    *cache = Some((schema_text.to_owned(), schema.clone()));
                    schema
                }
            }
        };
        let payload = envelope.payload.get();
        let value = if schema.schema_type == SchemaType::String && payload.starts_with('"') {
            Value::String(serde_json::from_str(payload).ok()?)
        } else {
            let payload: Json = serde_json::from_str(payload).ok()?;
            match value_from_json(&schema, &payload) {
                Ok(value) => value,
                Err(error) => return Some(Err(error)),
            }
        };
        Some(Ok(SchemaAndValue {
            schema: Some(schema),
            value,
        }))
    }

    /// Writes the schema's JSON text to `out`, from the cache when it is the last one seen.
    fn write_schema(&self, schema: &SchemaRef, out: &mut Vec<u8>) {
        let Ok(mut cache) = self.schema_cache.lock() else {
            out.extend_from_slice(schema_to_json(schema).to_string().as_bytes());
            return;
        };
        if !matches!(cache.as_ref(), Some((cached, _)) if Arc::ptr_eq(cached, schema) || cached == schema)
        {
            *cache = Some((schema.clone(), schema_to_json(schema).to_string()));
        }
        if let Some((_, text)) = cache.as_ref() {
            out.extend_from_slice(text.as_bytes());
        }
    }
}

impl Converter for JsonConverter {
    fn to_kafka(&self, topic: &str, data: &SchemaAndValue) -> Result<Option<Vec<u8>>> {
        let mut out = Vec::with_capacity(64);
        Ok(self.to_kafka_into(topic, data, &mut out)?.then_some(out))
    }

    fn to_kafka_into(
        &self,
        _topic: &str,
        data: &SchemaAndValue,
        out: &mut Vec<u8>,
    ) -> Result<bool> {
        out.clear();
        if data.schema.is_none() && data.value.is_null() {
            return Ok(false);
        }
        if self.schemas_enable {
            // {"schema":…,"payload":…}, byte for byte what serde_json writes for the envelope.
            out.extend_from_slice(br#"{"schema":"#);
            match &data.schema {
                Some(schema) => self.write_schema(schema, out),
                None => out.extend_from_slice(b"null"),
            }
            out.extend_from_slice(br#","payload":"#);
        }
        match (&data.schema, &data.value) {
            // The common case, written without building a JSON tree first.
            (Some(schema), Value::String(text)) if schema.schema_type == SchemaType::String => {
                serde_json::to_writer(&mut *out, text).map_err(serialization_failed)?;
            }
            (schema, value) => write_value_json(schema.as_deref(), value, out)?,
        }
        if self.schemas_enable {
            out.push(b'}');
        }
        Ok(true)
    }

    fn to_connect(&self, _topic: &str, bytes: Option<&[u8]>) -> Result<SchemaAndValue> {
        let Some(bytes) = bytes else {
            return Ok(SchemaAndValue::null());
        };
        if self.schemas_enable
            && let Some(data) = self.envelope_fast_path(bytes)
        {
            return data;
        }
        let document: Json = serde_json::from_slice(bytes).map_err(|e| {
            ConvertError(format!(
                "Converting byte[] to Kafka Connect data failed due to serialization error: {e}"
            ))
        })?;
        if !self.schemas_enable {
            return Ok(SchemaAndValue {
                schema: None,
                value: schemaless_from_json(&document),
            });
        }
        let envelope = match &document {
            Json::Object(fields)
                if fields.len() == 2
                    && fields.contains_key("schema")
                    && fields.contains_key("payload") =>
            {
                fields
            }
            _ => {
                return Err(ConvertError(
                    "JsonConverter with schemas.enable requires \"schema\" and \"payload\" fields and may not contain additional fields. If you are trying to deserialize plain JSON data, set schemas.enable=false in your converter configuration.".into(),
                ));
            }
        };
        let payload = &envelope["payload"];
        match &envelope["schema"] {
            Json::Null => Ok(SchemaAndValue {
                schema: None,
                value: schemaless_from_json(payload),
            }),
            schema_json => {
                let schema = schema_from_json(schema_json)?;
                let value = value_from_json(&schema, payload)?;
                Ok(SchemaAndValue {
                    schema: Some(schema.into()),
                    value,
                })
            }
        }
    }
}

/// The JSON form of a schema, with Kafka Connect's key order.
pub fn schema_to_json(schema: &Schema) -> Json {
    let mut out = JsonObject::new();
    out.insert("type".into(), json!(schema.schema_type.json_name()));
    match schema.schema_type {
        SchemaType::Struct => {
            let fields: Vec<Json> = schema
                .fields
                .iter()
                .map(|field| {
                    let mut field_json = schema_to_json(&field.schema);
                    if let Json::Object(map) = &mut field_json {
                        map.insert("field".into(), json!(field.name));
                    }
                    field_json
                })
                .collect();
            out.insert("fields".into(), Json::Array(fields));
        }
        SchemaType::Array => {
            if let Some(items) = &schema.value_schema {
                out.insert("items".into(), schema_to_json(items));
            }
        }
        SchemaType::Map => {
            if let Some(keys) = &schema.key_schema {
                out.insert("keys".into(), schema_to_json(keys));
            }
            if let Some(values) = &schema.value_schema {
                out.insert("values".into(), schema_to_json(values));
            }
        }
        _ => {}
    }
    out.insert("optional".into(), json!(schema.optional));
    if let Some(name) = &schema.name {
        out.insert("name".into(), json!(name));
    }
    if let Some(version) = schema.version {
        out.insert("version".into(), json!(version));
    }
    if let Some(doc) = &schema.doc {
        out.insert("doc".into(), json!(doc));
    }
    if !schema.parameters.is_empty() {
        out.insert("parameters".into(), json!(schema.parameters));
    }
    if let Some(default) = &schema.default
        && let Ok(default_json) = value_to_json(Some(schema), default)
    {
        out.insert("default".into(), default_json);
    }
    Json::Object(out)
}

/// Parses the JSON form of a schema.
pub fn schema_from_json(json: &Json) -> Result<Schema> {
    let object = json
        .as_object()
        .ok_or_else(|| ConvertError("Schema must be a JSON object".into()))?;
    let type_name = object
        .get("type")
        .and_then(Json::as_str)
        .ok_or_else(|| ConvertError("Schema must contain 'type' field".into()))?;
    let schema_type = SchemaType::from_json_name(type_name)
        .ok_or_else(|| ConvertError(format!("Unknown schema type: {type_name}")))?;
    let mut schema = Schema::new(schema_type);
    schema.optional = object
        .get("optional")
        .and_then(Json::as_bool)
        .unwrap_or(false);
    schema.name = object.get("name").and_then(Json::as_str).map(str::to_owned);
    schema.version = object
        .get("version")
        .and_then(Json::as_i64)
        .and_then(|v| i32::try_from(v).ok());
    schema.doc = object.get("doc").and_then(Json::as_str).map(str::to_owned);
    if let Some(Json::Object(parameters)) = object.get("parameters") {
        schema.parameters = parameters
            .iter()
            .map(|(k, v)| {
                (
                    k.clone(),
                    v.as_str().map_or_else(|| v.to_string(), str::to_owned),
                )
            })
            .collect::<BTreeMap<_, _>>();
    }
    match schema_type {
        SchemaType::Struct => {
            let fields = object
                .get("fields")
                .and_then(Json::as_array)
                .ok_or_else(|| {
                    ConvertError("Struct schema's \"fields\" argument is not an array.".into())
                })?;
            for field in fields {
                let name = field.get("field").and_then(Json::as_str).ok_or_else(|| {
                    ConvertError("Struct schema's field name not specified properly".into())
                })?;
                schema.fields.push(Field {
                    name: name.to_owned(),
                    schema: schema_from_json(field)?,
                });
            }
        }
        SchemaType::Array => {
            let items = object.get("items").ok_or_else(|| {
                ConvertError("Array schema did not specify the element type".into())
            })?;
            schema.value_schema = Some(Box::new(schema_from_json(items)?));
        }
        SchemaType::Map => {
            let keys = object
                .get("keys")
                .ok_or_else(|| ConvertError("Map schema did not specify the key type".into()))?;
            let values = object
                .get("values")
                .ok_or_else(|| ConvertError("Map schema did not specify the value type".into()))?;
            schema.key_schema = Some(Box::new(schema_from_json(keys)?));
            schema.value_schema = Some(Box::new(schema_from_json(values)?));
        }
        _ => {}
    }
    if let Some(default) = object.get("default") {
        schema.default = Some(Box::new(value_from_json(&schema, default)?));
    }
    Ok(schema)
}

/// Kafka Connect's message for a value JSON cannot be written.
fn serialization_failed(error: serde_json::Error) -> ConvertError {
    ConvertError(format!(
        "Converting Kafka Connect data to byte[] failed due to serialization error: {error}"
    ))
}

/// Writes the JSON text of a value, following its schema when there is one:
/// byte for byte what serializing [`value_to_json`] writes, without building
/// the JSON tree for structs, arrays, strings and whole numbers.
pub fn write_value_json(schema: Option<&Schema>, value: &Value, out: &mut Vec<u8>) -> Result<()> {
    let written = |result: serde_json::Result<()>| result.map_err(serialization_failed);
    if !value.is_null()
        && let Some(schema) = schema
    {
        check_type(schema, value)?;
    }
    match value {
        Value::String(text) => written(serde_json::to_writer(&mut *out, text)),
        Value::Int8(v) => written(serde_json::to_writer(&mut *out, v)),
        Value::Int16(v) => written(serde_json::to_writer(&mut *out, v)),
        Value::Int32(v) => written(serde_json::to_writer(&mut *out, v)),
        Value::Int64(v) => written(serde_json::to_writer(&mut *out, v)),
        Value::Boolean(v) => written(serde_json::to_writer(&mut *out, v)),
        Value::Struct(fields) => {
            out.push(b'{');
            for (i, (name, field_value)) in fields.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                written(serde_json::to_writer(&mut *out, name))?;
                out.push(b':');
                let field_schema = schema.and_then(|s| s.field(name)).map(|f| &f.schema);
                write_value_json(field_schema, field_value, out)?;
            }
            out.push(b'}');
            Ok(())
        }
        Value::Array(items) => {
            let element = schema.and_then(|s| s.value_schema.as_deref());
            out.push(b'[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_value_json(element, item, out)?;
            }
            out.push(b']');
            Ok(())
        }
        // Nulls (defaults, required checks), floats, bytes and maps: the tree.
        other => written(serde_json::to_writer(
            &mut *out,
            &value_to_json(schema, other)?,
        )),
    }
}

/// The JSON form of a value, following its schema when there is one.
pub fn value_to_json(schema: Option<&Schema>, value: &Value) -> Result<Json> {
    if value.is_null() {
        if let Some(schema) = schema {
            if let Some(default) = &schema.default {
                return value_to_json(Some(schema), default);
            }
            if !schema.optional {
                return Err(ConvertError(
                    "Conversion error: null value for field that is required and has no default value".into(),
                ));
            }
        }
        return Ok(Json::Null);
    }
    if let Some(schema) = schema {
        check_type(schema, value)?;
    }
    Ok(match value {
        Value::Null => Json::Null,
        Value::Int8(v) => json!(v),
        Value::Int16(v) => json!(v),
        Value::Int32(v) => json!(v),
        Value::Int64(v) => json!(v),
        Value::Float32(v) => json!(v),
        Value::Float64(v) => json!(v),
        Value::Boolean(v) => json!(v),
        Value::String(v) => json!(v),
        Value::Bytes(v) => json!(BASE64.encode(v)),
        Value::Array(items) => {
            let element = schema.and_then(|s| s.value_schema.as_deref());
            Json::Array(
                items
                    .iter()
                    .map(|item| value_to_json(element, item))
                    .collect::<Result<_>>()?,
            )
        }
        Value::Map(entries) => {
            let key_schema = schema.and_then(|s| s.key_schema.as_deref());
            let value_schema = schema.and_then(|s| s.value_schema.as_deref());
            let string_keys = match key_schema {
                Some(k) => k.schema_type == SchemaType::String,
                None => entries.iter().all(|(k, _)| matches!(k, Value::String(_))),
            };
            if string_keys {
                let mut object = JsonObject::new();
                for (k, v) in entries {
                    object.insert(k.to_display_string(), value_to_json(value_schema, v)?);
                }
                Json::Object(object)
            } else {
                Json::Array(
                    entries
                        .iter()
                        .map(|(k, v)| {
                            Ok(json!([
                                value_to_json(key_schema, k)?,
                                value_to_json(value_schema, v)?
                            ]))
                        })
                        .collect::<Result<_>>()?,
                )
            }
        }
        Value::Struct(fields) => {
            let mut object = JsonObject::new();
            for (name, field_value) in fields {
                let field_schema = schema.and_then(|s| s.field(name)).map(|f| &f.schema);
                object.insert(name.clone(), value_to_json(field_schema, field_value)?);
            }
            Json::Object(object)
        }
    })
}

fn check_type(schema: &Schema, value: &Value) -> Result<()> {
    let matches = matches!(
        (schema.schema_type, value),
        (SchemaType::Int8, Value::Int8(_))
            | (SchemaType::Int16, Value::Int16(_))
            | (SchemaType::Int32, Value::Int32(_))
            | (SchemaType::Int64, Value::Int64(_))
            | (SchemaType::Float32, Value::Float32(_))
            | (SchemaType::Float64, Value::Float64(_))
            | (SchemaType::Boolean, Value::Boolean(_))
            | (SchemaType::String, Value::String(_))
            | (SchemaType::Bytes, Value::Bytes(_))
            | (SchemaType::Array, Value::Array(_))
            | (SchemaType::Map, Value::Map(_))
            | (SchemaType::Struct, Value::Struct(_))
    );
    if matches {
        Ok(())
    } else {
        Err(ConvertError(format!(
            "Invalid Java object for schema type {}: {value:?}",
            schema.schema_type.json_name().to_ascii_uppercase()
        )))
    }
}

/// Reads a payload according to its schema.
pub fn value_from_json(schema: &Schema, json: &Json) -> Result<Value> {
    if json.is_null() {
        if let Some(default) = &schema.default {
            return Ok((**default).clone());
        }
        if schema.optional {
            return Ok(Value::Null);
        }
        return Err(ConvertError(
            "Invalid null value for required schema type".to_owned()
                + " "
                + schema.schema_type.json_name(),
        ));
    }
    let mismatch = || {
        ConvertError(format!(
            "Invalid JSON value for schema type {}: {json}",
            schema.schema_type.json_name()
        ))
    };
    let int = |json: &Json| json.as_i64().ok_or_else(mismatch);
    Ok(match schema.schema_type {
        SchemaType::Int8 => Value::Int8(i8::try_from(int(json)?).map_err(|_| mismatch())?),
        SchemaType::Int16 => Value::Int16(i16::try_from(int(json)?).map_err(|_| mismatch())?),
        SchemaType::Int32 => Value::Int32(i32::try_from(int(json)?).map_err(|_| mismatch())?),
        SchemaType::Int64 => Value::Int64(int(json)?),
        SchemaType::Float32 => Value::Float32(json.as_f64().ok_or_else(mismatch)? as f32),
        SchemaType::Float64 => Value::Float64(json.as_f64().ok_or_else(mismatch)?),
        SchemaType::Boolean => Value::Boolean(json.as_bool().ok_or_else(mismatch)?),
        SchemaType::String => Value::String(json.as_str().ok_or_else(mismatch)?.to_owned()),
        SchemaType::Bytes => Value::Bytes(
            BASE64
                .decode(json.as_str().ok_or_else(mismatch)?)
                .map_err(|_| mismatch())?,
        ),
        SchemaType::Array => {
            let element = schema.value_schema.as_deref().ok_or_else(mismatch)?;
            Value::Array(
                json.as_array()
                    .ok_or_else(mismatch)?
                    .iter()
                    .map(|item| value_from_json(element, item))
                    .collect::<Result<_>>()?,
            )
        }
        SchemaType::Map => {
            let key_schema = schema.key_schema.as_deref().ok_or_else(mismatch)?;
            let value_schema = schema.value_schema.as_deref().ok_or_else(mismatch)?;
            match json {
                Json::Object(object) if key_schema.schema_type == SchemaType::String => Value::Map(
                    object
                        .iter()
                        .map(|(k, v)| {
                            Ok((Value::String(k.clone()), value_from_json(value_schema, v)?))
                        })
                        .collect::<Result<_>>()?,
                ),
                Json::Array(pairs) => Value::Map(
                    pairs
                        .iter()
                        .map(|pair| match pair.as_array().map(Vec::as_slice) {
                            Some([k, v]) => Ok((
                                value_from_json(key_schema, k)?,
                                value_from_json(value_schema, v)?,
                            )),
                            _ => Err(mismatch()),
                        })
                        .collect::<Result<_>>()?,
                ),
                _ => return Err(mismatch()),
            }
        }
        SchemaType::Struct => {
            let object = json.as_object().ok_or_else(mismatch)?;
            Value::Struct(
                schema
                    .fields
                    .iter()
                    .map(|field| {
                        let field_json = object.get(&field.name).unwrap_or(&Json::Null);
                        Ok((
                            field.name.clone(),
                            value_from_json(&field.schema, field_json)?,
                        ))
                    })
                    .collect::<Result<_>>()?,
            )
        }
    })
}

/// Reads plain JSON with no schema, as JsonConverter does with schemas off.
pub fn schemaless_from_json(json: &Json) -> Value {
    match json {
        Json::Null => Value::Null,
        Json::Bool(v) => Value::Boolean(*v),
        Json::Number(n) => match n.as_i64() {
            Some(i) => Value::Int64(i),
            None => Value::Float64(n.as_f64().unwrap_or(f64::NAN)),
        },
        Json::String(s) => Value::String(s.clone()),
        Json::Array(items) => Value::Array(items.iter().map(schemaless_from_json).collect()),
        Json::Object(object) => Value::Map(
            object
                .iter()
                .map(|(k, v)| (Value::String(k.clone()), schemaless_from_json(v)))
                .collect(),
        ),
    }
}

/// `org.apache.kafka.connect.storage.StringConverter`.
pub struct StringConverter;

impl Converter for StringConverter {
    fn to_kafka(&self, topic: &str, data: &SchemaAndValue) -> Result<Option<Vec<u8>>> {
        let mut out = Vec::new();
        Ok(self.to_kafka_into(topic, data, &mut out)?.then_some(out))
    }

    fn to_kafka_into(
        &self,
        _topic: &str,
        data: &SchemaAndValue,
        out: &mut Vec<u8>,
    ) -> Result<bool> {
        out.clear();
        match &data.value {
            Value::Null => return Ok(false),
            // Without copies for the common cases; what `to_display_string` writes.
            Value::String(text) => out.extend_from_slice(text.as_bytes()),
            Value::Bytes(bytes) => out.extend_from_slice(String::from_utf8_lossy(bytes).as_bytes()),
            other => out.extend_from_slice(other.to_display_string().as_bytes()),
        }
        Ok(true)
    }

    fn to_connect(&self, _topic: &str, bytes: Option<&[u8]>) -> Result<SchemaAndValue> {
        Ok(SchemaAndValue {
            schema: Some(Schema::optional_string_ref()),
            value: match bytes {
                Some(bytes) => Value::String(crate::data::text_of(bytes)),
                None => Value::Null,
            },
        })
    }
}

/// `org.apache.kafka.connect.converters.ByteArrayConverter`.
pub struct ByteArrayConverter;

impl Converter for ByteArrayConverter {
    fn to_kafka(&self, _topic: &str, data: &SchemaAndValue) -> Result<Option<Vec<u8>>> {
        if let Some(schema) = &data.schema
            && schema.schema_type != SchemaType::Bytes
        {
            return Err(ConvertError(format!(
                "Invalid schema type for ByteArrayConverter: {}",
                schema.schema_type.json_name().to_ascii_uppercase()
            )));
        }
        match &data.value {
            Value::Null => Ok(None),
            Value::Bytes(bytes) => Ok(Some(bytes.clone())),
            other => Err(ConvertError(format!(
                "ByteArrayConverter is not compatible with objects of type {other:?}"
            ))),
        }
    }

    fn to_connect(&self, _topic: &str, bytes: Option<&[u8]>) -> Result<SchemaAndValue> {
        Ok(SchemaAndValue {
            schema: Some(Schema::new(SchemaType::Bytes).optional().into()),
            value: bytes.map_or(Value::Null, |b| Value::Bytes(b.to_vec())),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_written_as_their_json_tree_serializes() {
        let field = |name: &str, schema: Schema| Field {
            name: name.into(),
            schema,
        };
        let mut defaulted = Schema::new(SchemaType::Int32).optional();
        defaulted.default = Some(Box::new(Value::Int32(7)));
        let mut inner = Schema::new(SchemaType::Struct);
        inner.fields = vec![field("b", Schema::new(SchemaType::Boolean))];
        let mut schema = Schema::new(SchemaType::Struct);
        schema.fields = vec![
            field("i8", Schema::new(SchemaType::Int8)),
            field("i64", Schema::new(SchemaType::Int64)),
            field("f32", Schema::new(SchemaType::Float32)),
            field("f64", Schema::new(SchemaType::Float64)),
            field("text", Schema::string()),
            field("bytes", Schema::new(SchemaType::Bytes)),
            field("list", Schema::array(Schema::new(SchemaType::Int16))),
            field(
                "by_name",
                Schema::map(Schema::string(), Schema::new(SchemaType::Int32)),
            ),
            field(
                "by_number",
                Schema::map(Schema::new(SchemaType::Int32), Schema::string()),
            ),
            field("absent", Schema::string().optional()),
            field("defaulted", defaulted),
            field("inner", inner),
        ];
        let value = Value::Struct(vec![
            ("i8".into(), Value::Int8(-8)),
            ("i64".into(), Value::Int64(i64::MAX)),
            ("f32".into(), Value::Float32(0.1)),
            ("f64".into(), Value::Float64(f64::NAN)),
            ("text".into(), Value::String("a \"quoted\"\n\u{1}é".into())),
            ("bytes".into(), Value::Bytes(vec![0, 255, 7])),
            (
                "list".into(),
                Value::Array(vec![Value::Int16(1), Value::Int16(-2)]),
            ),
            (
                "by_name".into(),
                Value::Map(vec![(Value::String("k".into()), Value::Int32(1))]),
            ),
            (
                "by_number".into(),
                Value::Map(vec![(Value::Int32(3), Value::String("three".into()))]),
            ),
            ("absent".into(), Value::Null),
            ("defaulted".into(), Value::Null),
            (
                "inner".into(),
                Value::Struct(vec![("b".into(), Value::Boolean(true))]),
            ),
        ]);
        let mut written = Vec::new();
        write_value_json(Some(&schema), &value, &mut written).unwrap();
        let tree = serde_json::to_vec(&value_to_json(Some(&schema), &value).unwrap()).unwrap();
        assert_eq!(
            String::from_utf8(written).unwrap(),
            String::from_utf8(tree).unwrap()
        );

        let mut schemaless = Vec::new();
        write_value_json(None, &value, &mut schemaless).unwrap();
        let tree = serde_json::to_vec(&value_to_json(None, &value).unwrap()).unwrap();
        assert_eq!(schemaless, tree);

        // The same checks fail the same way.
        let required_null = Value::Struct(vec![("b".into(), Value::Null)]);
        let mut inner_required = Schema::new(SchemaType::Struct);
        inner_required.fields = vec![field("b", Schema::new(SchemaType::Boolean))];
        assert_eq!(
            write_value_json(Some(&inner_required), &required_null, &mut Vec::new())
                .unwrap_err()
                .0,
            value_to_json(Some(&inner_required), &required_null)
                .unwrap_err()
                .0
        );
        assert_eq!(
            write_value_json(Some(&Schema::string()), &Value::Int32(1), &mut Vec::new())
                .unwrap_err()
                .0,
            value_to_json(Some(&Schema::string()), &Value::Int32(1))
                .unwrap_err()
                .0
        );
    }

    fn string_line(text: &str) -> SchemaAndValue {
        SchemaAndValue {
            schema: Some(Schema::string_ref()),
            value: Value::String(text.into()),
        }
    }

    #[test]
    fn envelopes_read_the_same_with_and_without_the_cached_schema() {
        let converter = JsonConverter::new(true);
        let envelopes: [&[u8]; 5] = [
            br#"{"schema":{"type":"string","optional":false},"payload":"a \"quoted\" line\n"}"#,
            br#"{"schema":{"type":"string","optional":false},"payload":"second"}"#,
            br#"{"schema":{"type":"string","optional":true},"payload":null}"#,
            br#"{"payload":{"id":7},"schema":{"type":"struct","fields":[{"field":"id","type":"int32","optional":false}],"optional":false}}"#,
            br#"{"schema":{"type":"int64","optional":false},"payload":42}"#,
        ];
        for _ in 0..2 {
            for envelope in envelopes {
                let fast = converter.to_connect("t", Some(envelope)).unwrap();
                // A converter of its own, so nothing is cached.
                let fresh = JsonConverter::new(true)
                    .to_connect("t", Some(envelope))
                    .unwrap();
                let document: Json = serde_json::from_slice(envelope).unwrap();
                let schema = schema_from_json(&document["schema"]).unwrap();
                let value = value_from_json(&schema, &document["payload"]).unwrap();
                assert_eq!(fast, fresh);
                assert_eq!(fast.schema.as_deref(), Some(&schema));
                assert_eq!(fast.value, value);
            }
        }
        // Not an envelope: the general path explains.
        let error = converter
            .to_connect("t", Some(br#"{"schema":null,"payload":1,"extra":2}"#))
            .unwrap_err();
        assert!(
            error
                .0
                .contains("requires \"schema\" and \"payload\" fields")
        );
        // A payload that does not match the cached schema is refused.
        assert!(
            converter
                .to_connect(
                    "t",
                    Some(br#"{"schema":{"type":"int64","optional":false},"payload":"x"}"#)
                )
                .is_err()
        );
    }

    #[test]
    fn json_with_schemas_writes_kafka_connects_envelope() {
        let converter = JsonConverter::new(true);
        let bytes = converter
            .to_kafka("t", &string_line("hello"))
            .unwrap()
            .unwrap();
        assert_eq!(
            String::from_utf8(bytes.clone()).unwrap(),
            r#"{"schema":{"type":"string","optional":false},"payload":"hello"}"#
        );
        assert_eq!(
            converter.to_connect("t", Some(&bytes)).unwrap(),
            string_line("hello")
        );
    }

    #[test]
    fn json_without_schemas_is_plain_json() {
        let converter = JsonConverter::new(false);
        let bytes = converter
            .to_kafka("t", &string_line("hi"))
            .unwrap()
            .unwrap();
        assert_eq!(bytes, br#""hi""#);
        let parsed = converter
            .to_connect("t", Some(br#"{"a":1,"b":[true,1.5]}"#))
            .unwrap();
        assert_eq!(
            parsed.value,
            Value::Map(vec![
                (Value::String("a".into()), Value::Int64(1)),
                (
                    Value::String("b".into()),
                    Value::Array(vec![Value::Boolean(true), Value::Float64(1.5)])
                ),
            ])
        );
    }

    #[test]
    fn struct_round_trips_with_field_order_and_types() {
        let mut schema = Schema::new(SchemaType::Struct);
        schema.name = Some("com.example.Person".into());
        schema.fields = vec![
            Field {
                name: "name".into(),
                schema: Schema::string(),
            },
            Field {
                name: "age".into(),
                schema: Schema::new(SchemaType::Int32).optional(),
            },
            Field {
                name: "score".into(),
                schema: Schema::new(SchemaType::Float32),
            },
            Field {
                name: "raw".into(),
                schema: Schema::new(SchemaType::Bytes),
            },
            Field {
                name: "tags".into(),
                schema: Schema::map(Schema::string(), Schema::new(SchemaType::Int64)),
            },
        ];
        let value = Value::Struct(vec![
            ("name".into(), Value::String("ann".into())),
            ("age".into(), Value::Null),
            ("score".into(), Value::Float32(1.5)),
            ("raw".into(), Value::Bytes(vec![1, 2, 255])),
            (
                "tags".into(),
                Value::Map(vec![(Value::String("x".into()), Value::Int64(7))]),
            ),
        ]);
        let data = SchemaAndValue {
            schema: Some(schema.into()),
            value,
        };
        let converter = JsonConverter::new(true);
        let bytes = converter.to_kafka("t", &data).unwrap().unwrap();
        let text = String::from_utf8(bytes.clone()).unwrap();
        assert!(text.starts_with(r#"{"schema":{"type":"struct","fields":[{"type":"string","optional":false,"field":"name"},{"type":"int32","optional":true,"field":"age"},{"type":"float","optional":false,"field":"score"}"#), "{text}");
        assert!(
            text.contains(
                r#""payload":{"name":"ann","age":null,"score":1.5,"raw":"AQL/","tags":{"x":7}}"#
            ),
            "{text}"
        );
        assert_eq!(converter.to_connect("t", Some(&bytes)).unwrap(), data);
    }

    fn logical(schema_type: SchemaType, name: &str, parameters: &[(&str, &str)]) -> Schema {
        let mut schema = Schema::new(schema_type);
        schema.name = Some(name.into());
        schema.version = Some(1);
        schema.parameters = parameters
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        schema
    }

    // Kafka Connect's JsonConverter output for its logical types, byte for byte.
    #[test]
    fn logical_types_round_trip_exactly() {
        let converter = JsonConverter::new(true);
        let cases = [
            (
                logical(
                    SchemaType::Bytes,
                    "org.apache.kafka.connect.data.Decimal",
                    &[("scale", "2")],
                ),
                Value::Bytes(vec![0x30, 0x39]), // 12345 unscaled: 123.45
                r#"{"schema":{"type":"bytes","optional":false,"name":"org.apache.kafka.connect.data.Decimal","version":1,"parameters":{"scale":"2"}},"payload":"MDk="}"#,
            ),
            (
                logical(SchemaType::Int32, "org.apache.kafka.connect.data.Date", &[]),
                Value::Int32(19_675),
                r#"{"schema":{"type":"int32","optional":false,"name":"org.apache.kafka.connect.data.Date","version":1},"payload":19675}"#,
            ),
            (
                logical(SchemaType::Int32, "org.apache.kafka.connect.data.Time", &[]),
                Value::Int32(80_000_000),
                r#"{"schema":{"type":"int32","optional":false,"name":"org.apache.kafka.connect.data.Time","version":1},"payload":80000000}"#,
            ),
            (
                logical(
                    SchemaType::Int64,
                    "org.apache.kafka.connect.data.Timestamp",
                    &[],
                ),
                Value::Int64(1_700_000_000_000),
                r#"{"schema":{"type":"int64","optional":false,"name":"org.apache.kafka.connect.data.Timestamp","version":1},"payload":1700000000000}"#,
            ),
            (
                Schema::new(SchemaType::Float32),
                Value::Float32(2.5),
                r#"{"schema":{"type":"float","optional":false},"payload":2.5}"#,
            ),
            (
                Schema::new(SchemaType::Float64),
                Value::Float64(-0.5),
                r#"{"schema":{"type":"double","optional":false},"payload":-0.5}"#,
            ),
            (
                Schema::new(SchemaType::Int8),
                Value::Int8(-7),
                r#"{"schema":{"type":"int8","optional":false},"payload":-7}"#,
            ),
            (
                Schema::new(SchemaType::Boolean).optional(),
                Value::Null,
                r#"{"schema":{"type":"boolean","optional":true},"payload":null}"#,
            ),
            (
                Schema::array(Schema::new(SchemaType::Int16)),
                Value::Array(vec![Value::Int16(1), Value::Int16(2)]),
                r#"{"schema":{"type":"array","items":{"type":"int16","optional":false},"optional":false},"payload":[1,2]}"#,
            ),
            (
                Schema::map(Schema::new(SchemaType::Int32), Schema::string()),
                Value::Map(vec![(Value::Int32(1), Value::String("a".into()))]),
                r#"{"schema":{"type":"map","keys":{"type":"int32","optional":false},"values":{"type":"string","optional":false},"optional":false},"payload":[[1,"a"]]}"#,
            ),
        ];
        for (schema, value, expected) in cases {
            let data = SchemaAndValue {
                schema: Some(schema.into()),
                value,
            };
            let bytes = converter.to_kafka("t", &data).unwrap().unwrap();
            assert_eq!(String::from_utf8(bytes.clone()).unwrap(), expected);
            assert_eq!(
                converter.to_connect("t", Some(&bytes)).unwrap(),
                data,
                "{expected}"
            );
        }
    }

    #[test]
    fn schema_defaults_fill_nulls_both_ways() {
        let mut schema = Schema::new(SchemaType::Int32).optional();
        schema.default = Some(Box::new(Value::Int32(5)));
        let converter = JsonConverter::new(true);
        let bytes = converter
            .to_kafka(
                "t",
                &SchemaAndValue {
                    schema: Some(schema.clone().into()),
                    value: Value::Null,
                },
            )
            .unwrap()
            .unwrap();
        assert_eq!(
            String::from_utf8(bytes).unwrap(),
            r#"{"schema":{"type":"int32","optional":true,"default":5},"payload":5}"#
        );
        let read = converter
            .to_connect(
                "t",
                Some(br#"{"schema":{"type":"int32","optional":true,"default":5},"payload":null}"#),
            )
            .unwrap();
        assert_eq!(read.value, Value::Int32(5));
    }

    #[test]
    fn malformed_and_unenveloped_json_are_errors() {
        let converter = JsonConverter::new(true);
        let err = converter.to_connect("t", Some(b"{not json")).unwrap_err();
        assert!(err.0.starts_with(
            "Converting byte[] to Kafka Connect data failed due to serialization error"
        ));
        let err = converter.to_connect("t", Some(br#"{"a":1}"#)).unwrap_err();
        assert!(err.0.contains("requires \"schema\" and \"payload\" fields"));
    }

    #[test]
    fn null_is_a_tombstone_both_ways() {
        let converter = JsonConverter::new(true);
        assert_eq!(
            converter.to_kafka("t", &SchemaAndValue::null()).unwrap(),
            None
        );
        assert_eq!(
            converter.to_connect("t", None).unwrap(),
            SchemaAndValue::null()
        );
    }

    #[test]
    fn the_string_converter_writes_what_to_display_string_shows_on_both_paths() {
        let values = [
            Value::String("text".into()),
            Value::Bytes(vec![b'o', b'k', 0xff]),
            Value::Int32(7),
            Value::Null,
        ];
        let mut buffer = Vec::new();
        for value in values {
            let data = SchemaAndValue {
                schema: None,
                value: value.clone(),
            };
            let expected = (!value.is_null()).then(|| value.to_display_string().into_bytes());
            assert_eq!(StringConverter.to_kafka("t", &data).unwrap(), expected);
            let present = StringConverter
                .to_kafka_into("t", &data, &mut buffer)
                .unwrap();
            assert_eq!(present.then(|| buffer.clone()), expected, "{value:?}");
        }
    }

    #[test]
    fn string_and_byte_array_converters() {
        let bytes = StringConverter.to_kafka("t", &string_line("x")).unwrap();
        assert_eq!(bytes.as_deref(), Some(&b"x"[..]));
        assert_eq!(
            StringConverter.to_connect("t", Some(b"y")).unwrap().value,
            Value::String("y".into())
        );
        let raw = SchemaAndValue {
            schema: None,
            value: Value::Bytes(vec![0, 1]),
        };
        assert_eq!(
            ByteArrayConverter.to_kafka("t", &raw).unwrap(),
            Some(vec![0, 1])
        );
        assert!(ByteArrayConverter.to_kafka("t", &string_line("x")).is_err());
    }

    #[test]
    fn aliases_resolve_to_class_names() {
        assert_eq!(resolve_class("JsonConverter"), Some(JSON_CONVERTER));
        assert_eq!(resolve_class("Json"), Some(JSON_CONVERTER));
        assert_eq!(resolve_class(STRING_CONVERTER), Some(STRING_CONVERTER));
        assert_eq!(
            resolve_class("ByteArrayConverter"),
            Some(BYTE_ARRAY_CONVERTER)
        );
        assert_eq!(resolve_class("Avro"), None);
        let settings = ConfigMap::from([("schemas.enable".to_owned(), "nope".to_owned())]);
        assert_eq!(
            create("JsonConverter", &settings).err(),
            Some(ConvertError(
                "Invalid value nope for configuration schemas.enable: Expected value to be either true or false".into()
            ))
        );
    }

    #[test]
    fn simple_header_converter_reads_text_as_the_simplest_value() {
        let simple = create_header("SimpleHeaderConverter", &ConfigMap::new())
            .unwrap_or_else(|_| unreachable!());
        let read = |text: &str| {
            simple
                .to_connect("t", Some(text.as_bytes()))
                .unwrap_or_else(|_| unreachable!())
        };
        assert_eq!(read("true").value, Value::Boolean(true));
        assert_eq!(read("42").value, Value::Int32(42));
        assert_eq!(read("9000000000").value, Value::Int64(9_000_000_000));
        assert_eq!(read("1.5").value, Value::Float64(1.5));
        assert_eq!(read("alpha").value, Value::String("alpha".into()));
        assert_eq!(
            simple
                .to_connect("t", None)
                .unwrap_or_else(|_| unreachable!())
                .value,
            Value::Null
        );
        let written = simple
            .to_kafka("t", &read("42"))
            .unwrap_or_else(|_| unreachable!());
        assert_eq!(written.as_deref(), Some(&b"42"[..]));
        assert!(create_header("com.example.Nope", &ConfigMap::new()).is_err());
    }
}
