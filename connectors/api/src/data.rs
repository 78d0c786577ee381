//! Kafka Connect's data model: typed schemas and the values they describe.

use std::collections::BTreeMap;
use std::sync::{Arc, LazyLock};

/// The primitive and container types of a Connect schema.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SchemaType {
    Int8,
    Int16,
    Int32,
    Int64,
    Float32,
    Float64,
    Boolean,
    String,
    Bytes,
    Array,
    Map,
    Struct,
}

impl SchemaType {
    /// The name JsonConverter writes in `"type"`.
    pub fn json_name(self) -> &'static str {
        match self {
            SchemaType::Int8 => "int8",
            SchemaType::Int16 => "int16",
            SchemaType::Int32 => "int32",
            SchemaType::Int64 => "int64",
            SchemaType::Float32 => "float",
            SchemaType::Float64 => "double",
            SchemaType::Boolean => "boolean",
            SchemaType::String => "string",
            SchemaType::Bytes => "bytes",
            SchemaType::Array => "array",
            SchemaType::Map => "map",
            SchemaType::Struct => "struct",
        }
    }

    pub fn from_json_name(name: &str) -> Option<Self> {
        Some(match name {
            "int8" => SchemaType::Int8,
            "int16" => SchemaType::Int16,
            "int32" => SchemaType::Int32,
            "int64" => SchemaType::Int64,
            "float" => SchemaType::Float32,
            "double" => SchemaType::Float64,
            "boolean" => SchemaType::Boolean,
            "string" => SchemaType::String,
            "bytes" => SchemaType::Bytes,
            "array" => SchemaType::Array,
            "map" => SchemaType::Map,
            "struct" => SchemaType::Struct,
            _ => return None,
        })
    }
}

/// A Connect schema. Container types carry their element schemas.
#[derive(Debug, Clone, PartialEq)]
pub struct Schema {
    pub schema_type: SchemaType,
    pub optional: bool,
    pub default: Option<Box<Value>>,
    pub name: Option<String>,
    pub version: Option<i32>,
    pub doc: Option<String>,
    pub parameters: BTreeMap<String, String>,
    /// Struct fields, in order.
    pub fields: Vec<Field>,
    /// Map key schema.
    pub key_schema: Option<Box<Schema>>,
    /// Map value schema, or array element schema.
    pub value_schema: Option<Box<Schema>>,
}

/// A named field of a struct schema.
#[derive(Debug, Clone, PartialEq)]
pub struct Field {
    pub name: String,
    pub schema: Schema,
}

impl Schema {
    pub fn new(schema_type: SchemaType) -> Self {
        Schema {
            schema_type,
            optional: false,
            default: None,
            name: None,
            version: None,
            doc: None,
            parameters: BTreeMap::new(),
            fields: Vec::new(),
            key_schema: None,
            value_schema: None,
        }
    }

    pub fn optional(mut self) -> Self {
        self.optional = true;
        self
    }

    pub fn string() -> Self {
        Schema::new(SchemaType::String)
    }

    pub fn array(element: Schema) -> Self {
        let mut schema = Schema::new(SchemaType::Array);
        schema.value_schema = Some(Box::new(element));
        schema
    }

    pub fn map(key: Schema, value: Schema) -> Self {
        let mut schema = Schema::new(SchemaType::Map);
        schema.key_schema = Some(Box::new(key));
        schema.value_schema = Some(Box::new(value));
        schema
    }

    pub fn field(&self, name: &str) -> Option<&Field> {
        self.fields.iter().find(|field| field.name == name)
    }
}

/// A Connect value. Struct values keep their fields in schema order.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Null,
    Int8(i8),
    Int16(i16),
    Int32(i32),
    Int64(i64),
    Float32(f32),
    Float64(f64),
    Boolean(bool),
    String(String),
    Bytes(Vec<u8>),
    Array(Vec<Value>),
    Map(Vec<(Value, Value)>),
    Struct(Vec<(String, Value)>),
}

impl Value {
    pub fn is_null(&self) -> bool {
        matches!(self, Value::Null)
    }

    /// The text a sink writes for this value, as Kafka Connect's
    /// `String.valueOf(value)` does for the common cases.
    pub fn to_display_string(&self) -> String {
        match self {
            Value::Null => "null".to_owned(),
            Value::Int8(v) => v.to_string(),
            Value::Int16(v) => v.to_string(),
            Value::Int32(v) => v.to_string(),
            Value::Int64(v) => v.to_string(),
            Value::Float32(v) => v.to_string(),
            Value::Float64(v) => v.to_string(),
            Value::Boolean(v) => v.to_string(),
            Value::String(v) => v.clone(),
            Value::Bytes(v) => String::from_utf8_lossy(v).into_owned(),
            Value::Array(items) => {
                let parts: Vec<String> = items.iter().map(Value::to_display_string).collect();
                format!("[{}]", parts.join(", "))
            }
            Value::Map(entries) => {
                let parts: Vec<String> = entries
                    .iter()
                    .map(|(k, v)| format!("{}={}", k.to_display_string(), v.to_display_string()))
                    .collect();
                format!("{{{}}}", parts.join(", "))
            }
            Value::Struct(fields) => {
                let parts: Vec<String> = fields
                    .iter()
                    .map(|(k, v)| format!("{k}={}", v.to_display_string()))
                    .collect();
                format!("Struct{{{}}}", parts.join(","))
            }
        }
    }
}

/// `bytes` as text, invalid UTF-8 replaced as Java's decoder does. Valid
/// text (nearly all) takes the fast validator, not the lossy scan.
pub fn text_of(bytes: &[u8]) -> String {
    match std::str::from_utf8(bytes) {
        Ok(text) => text.to_owned(),
        Err(_) => String::from_utf8_lossy(bytes).into_owned(),
    }
}

/// A schema shared by every record that has it: records of one source or
/// topic usually carry the same schema, and cloning this costs one count.
pub type SchemaRef = Arc<Schema>;

/// A schema (absent for schemaless data) with its value.
#[derive(Debug, Clone, PartialEq)]
pub struct SchemaAndValue {
    pub schema: Option<SchemaRef>,
    pub value: Value,
}

impl SchemaAndValue {
    pub fn null() -> Self {
        SchemaAndValue {
            schema: None,
            value: Value::Null,
        }
    }

    /// A value with its schema.
    pub fn new(schema: impl Into<SchemaRef>, value: Value) -> Self {
        SchemaAndValue {
            schema: Some(schema.into()),
            value,
        }
    }

    /// A schemaless value.
    pub fn schemaless(value: Value) -> Self {
        SchemaAndValue {
            schema: None,
            value,
        }
    }

    /// The schema, borrowed.
    pub fn schema(&self) -> Option<&Schema> {
        self.schema.as_deref()
    }
}

impl Schema {
    /// The shared required `string` schema.
    pub fn string_ref() -> SchemaRef {
        static STRING: LazyLock<SchemaRef> = LazyLock::new(|| Arc::new(Schema::string()));
        STRING.clone()
    }

    /// The shared optional `string` schema.
    pub fn optional_string_ref() -> SchemaRef {
        static OPTIONAL_STRING: LazyLock<SchemaRef> =
            LazyLock::new(|| Arc::new(Schema::string().optional()));
        OPTIONAL_STRING.clone()
    }
}
