//! SMTs that reshape a struct or map: `InsertField`, `ReplaceField`,
//! `MaskField`, `SetSchemaMetadata`, `Flatten` and `HeaderFrom`, each with
//! `$Key` / `$Value` variants, schemaful (struct) and schemaless (map).

use super::{
    ConnectRecord, Part, REPLACE_NULL_WITH_DEFAULT, Result, SchemaMemo, TransformError,
    Transformation, apply_defaults, key, replace_null_with_default_key,
};
use weir_api::api::Header;
use weir_api::config::{
    ConfigDef, ConfigMap, ConfigType, Default, Importance, ParsedConfig, Validator,
};
use weir_api::data::{Field, Schema, SchemaAndValue, SchemaType, Value};

pub const TIMESTAMP_LOGICAL: &str = "org.apache.kafka.connect.data.Timestamp";

/// A string setting trimmed, or `None` when it is unset or blank.
fn non_blank(config: &ParsedConfig<'_>, name: &str) -> Result<Option<String>, String> {
    Ok(config
        .optional_string(name)?
        .map(str::trim)
        .filter(|value| !value.is_empty())
        .map(str::to_owned))
}

/// A field to insert: its name and whether `!` made it required.
#[derive(Debug, Clone, PartialEq)]
struct InsertSpec {
    name: String,
    optional: bool,
}

impl InsertSpec {
    fn parse(raw: Option<String>) -> Option<InsertSpec> {
        let raw = raw?;
        Some(if let Some(name) = raw.strip_suffix('!') {
            InsertSpec {
                name: name.to_owned(),
                optional: false,
            }
        } else if let Some(name) = raw.strip_suffix('?') {
            InsertSpec {
                name: name.to_owned(),
                optional: true,
            }
        } else {
            InsertSpec {
                name: raw,
                optional: true,
            }
        })
    }
}

/// Inserts record metadata (topic, partition, offset, timestamp) or a static value as fields.
#[derive(Debug, Clone, PartialEq)]
pub struct InsertField {
    part: Part,
    replace_null: bool,
    topic: Option<InsertSpec>,
    partition: Option<InsertSpec>,
    offset: Option<InsertSpec>,
    timestamp: Option<InsertSpec>,
    static_field: Option<InsertSpec>,
    static_value: Option<String>,
    schemas: SchemaMemo,
}

impl InsertField {
    pub fn config_def() -> ConfigDef {
        use ConfigType::String;
        use Importance::Medium;
        ConfigDef::new()
            .define(key("topic.field", String, Default::Null, Medium, "Field name for Kafka topic. Suffix with ! to make this a required field, or ? to keep it optional (the default)."))
            .define(key("partition.field", String, Default::Null, Medium, "Field name for Kafka partition. Suffix with ! to make this a required field, or ? to keep it optional (the default)."))
            .define(key("offset.field", String, Default::Null, Medium, "Field name for Kafka offset - only applicable to sink connectors. Suffix with ! to make this a required field, or ? to keep it optional (the default)."))
            .define(key("timestamp.field", String, Default::Null, Medium, "Field name for record timestamp. Suffix with ! to make this a required field, or ? to keep it optional (the default)."))
            .define(key("static.field", String, Default::Null, Medium, "Field name for static data field. Suffix with ! to make this a required field, or ? to keep it optional (the default)."))
            .define(key("static.value", String, Default::Null, Medium, "Static field value, if field name configured."))
            .define(replace_null_with_default_key())
    }

    pub fn configure(part: Part, settings: &ConfigMap) -> Result<Self, String> {
        let def = Self::config_def();
        let config = def.parse(settings)?;
        let spec = |name| non_blank(&config, name).map(InsertSpec::parse);
        Ok(InsertField {
            replace_null: config.boolean(REPLACE_NULL_WITH_DEFAULT)?,
            part,
            topic: spec("topic.field")?,
            partition: spec("partition.field")?,
            offset: spec("offset.field")?,
            timestamp: spec("timestamp.field")?,
            static_field: spec("static.field")?,
            static_value: config.optional_string("static.value")?.map(str::to_owned),
            schemas: SchemaMemo::default(),
        })
    }

    /// The fields this SMT adds, in order, with their schemas.
    fn specs(&self) -> impl Iterator<Item = (&InsertSpec, Schema)> {
        let mut timestamp = Schema::new(SchemaType::Int64);
        timestamp.name = Some(TIMESTAMP_LOGICAL.into());
        timestamp.version = Some(1);
        [
            (&self.topic, Schema::string()),
            (&self.partition, Schema::new(SchemaType::Int32)),
            (&self.offset, Schema::new(SchemaType::Int64)),
            (&self.timestamp, timestamp),
            (&self.static_field, Schema::string()),
        ]
        .into_iter()
        .filter_map(|(spec, schema)| {
            let spec = spec.as_ref()?;
            Some((
                spec,
                if spec.optional {
                    schema.optional()
                } else {
                    schema
                },
            ))
        })
    }

    /// The values to add for this record, in the order of [`Self::specs`].
    fn additions(&self, record: &ConnectRecord) -> Result<Vec<(&InsertSpec, Value)>> {
        let mut out = Vec::new();
        if let Some(spec) = &self.topic {
            out.push((spec, Value::String(record.topic.to_string())));
        }
        if let Some(spec) = &self.partition {
            out.push((
                spec,
                record.kafka_partition.map_or(Value::Null, Value::Int32),
            ));
        }
        if let Some(spec) = &self.offset {
            let offset = record.kafka_offset.ok_or_else(|| {
                TransformError("Offset insertion is only supported for sink connectors, record is of type: org.apache.kafka.connect.source.SourceRecord".into())
            })?;
            out.push((spec, Value::Int64(offset)));
        }
        if let Some(spec) = &self.timestamp {
            out.push((spec, record.timestamp_ms.map_or(Value::Null, Value::Int64)));
        }
        if let Some(spec) = &self.static_field {
            out.push((
                spec,
                self.static_value.clone().map_or(Value::Null, Value::String),
            ));
        }
        Ok(out)
    }
}

impl Transformation for InsertField {
    fn apply(&self, mut record: ConnectRecord) -> Result<Option<ConnectRecord>> {
        let data = self.part.get(&record);
        // Tombstones pass through untouched.
        if data.value.is_null() {
            return Ok(Some(record));
        }
        let additions = self.additions(&record)?;
        let data = apply_defaults(self.replace_null, self.part.take(&mut record));
        let updated = match data.schema {
            None => {
                let Value::Map(mut entries) = data.value else {
                    return Err(not_a_map(&data.value, "field insertion"));
                };
                for (spec, value) in additions {
                    entries.push((Value::String(spec.name.clone()), value));
                }
                SchemaAndValue {
                    schema: None,
                    value: Value::Map(entries),
                }
            }
            Some(schema) => {
                let Value::Struct(mut fields) = data.value else {
                    return Err(not_a_struct(&data.value, "field insertion"));
                };
                let updated_schema = self.schemas.output(&schema, |schema| {
                    let mut updated = schema.clone();
                    updated
                        .fields
                        .extend(self.specs().map(|(spec, schema)| Field {
                            name: spec.name.clone(),
                            schema,
                        }));
                    Ok(updated)
                })?;
                fields.reserve(additions.len());
                for (spec, value) in additions {
                    fields.push((spec.name.clone(), value));
                }
                SchemaAndValue {
                    schema: Some(updated_schema),
                    value: Value::Struct(fields),
                }
            }
        };
        self.part.set(&mut record, updated);
        Ok(Some(record))
    }
}

fn not_a_map(value: &Value, purpose: &str) -> TransformError {
    TransformError(format!(
        "Only Map objects supported in absence of schema for [{purpose}], found: {}",
        kind(value)
    ))
}

fn not_a_struct(value: &Value, purpose: &str) -> TransformError {
    TransformError(format!(
        "Only Struct objects supported for [{purpose}], found: {}",
        kind(value)
    ))
}

fn kind(value: &Value) -> &'static str {
    match value {
        Value::Map(_) => "java.util.HashMap",
        Value::Struct(_) => "org.apache.kafka.connect.data.Struct",
        Value::String(_) => "java.lang.String",
        Value::Null => "null",
        _ => "a primitive value",
    }
}

/// Keeps, drops and renames fields.
#[derive(Debug, Clone, PartialEq)]
pub struct ReplaceField {
    part: Part,
    replace_null: bool,
    exclude: Vec<String>,
    include: Vec<String>,
    renames: Vec<(String, String)>,
    schemas: SchemaMemo,
}

impl ReplaceField {
    pub fn config_def() -> ConfigDef {
        use ConfigType::List;
        use Importance::Medium;
        ConfigDef::new()
            .define(key(
                "exclude",
                List,
                Default::Value(""),
                Medium,
                "Fields to exclude. This takes precedence over the fields to include.",
            ))
            .define(key(
                "include",
                List,
                Default::Value(""),
                Medium,
                "Fields to include. If specified, only these fields will be used.",
            ))
            .define(key(
                "renames",
                List,
                Default::Value(""),
                Medium,
                "Field rename mappings.",
            ))
            .define(replace_null_with_default_key())
    }

    pub fn configure(part: Part, settings: &ConfigMap) -> Result<Self, String> {
        let def = Self::config_def();
        let config = def.parse(settings)?;
        let renames = config
            .list("renames")?
            .iter()
            .map(|pair| match pair.split_once(':') {
                Some((from, to)) if !from.is_empty() && !to.is_empty() => Ok((from.to_owned(), to.to_owned())),
                _ => Err(format!(
                    "Invalid value [{pair}] for configuration renames: Invalid rename mapping: {pair}"
                )),
            })
            .collect::<Result<_, String>>()?;
        Ok(ReplaceField {
            replace_null: config.boolean(REPLACE_NULL_WITH_DEFAULT)?,
            part,
            exclude: config.list("exclude")?.to_vec(),
            include: config.list("include")?.to_vec(),
            renames,
            schemas: SchemaMemo::default(),
        })
    }

    fn keeps(&self, name: &str) -> bool {
        !self.exclude.iter().any(|e| e == name)
            && (self.include.is_empty() || self.include.iter().any(|i| i == name))
    }

    fn renamed(&self, name: &str) -> String {
        self.renames
            .iter()
            .find(|(from, _)| from == name)
            .map_or_else(|| name.to_owned(), |(_, to)| to.clone())
    }

    /// `renamed` for a name this SMT owns already: no copy when it stays.
    fn rename_owned(&self, name: String) -> String {
        match self.renames.iter().find(|(from, _)| *from == name) {
            Some((_, to)) => to.clone(),
            None => name,
        }
    }
}

impl Transformation for ReplaceField {
    fn apply(&self, mut record: ConnectRecord) -> Result<Option<ConnectRecord>> {
        if self.part.get(&record).value.is_null() {
            return Ok(Some(record));
        }
        let data = apply_defaults(self.replace_null, self.part.take(&mut record));
        let updated = match data.schema {
            None => {
                let Value::Map(entries) = data.value else {
                    return Err(not_a_map(&data.value, "field replacement"));
                };
                let entries = entries
                    .into_iter()
                    .filter_map(|(k, v)| match k {
                        Value::String(name) if self.keeps(&name) => {
                            Some((Value::String(self.renamed(&name)), v))
                        }
                        Value::String(_) => None,
                        other => Some((other, v)),
                    })
                    .collect();
                SchemaAndValue {
                    schema: None,
                    value: Value::Map(entries),
                }
            }
            Some(schema) => {
                let Value::Struct(fields) = data.value else {
                    return Err(not_a_struct(&data.value, "field replacement"));
                };
                let updated_schema = self.schemas.output(&schema, |schema| {
                    let mut updated = schema.clone();
                    updated.fields = schema
                        .fields
                        .iter()
                        .filter(|f| self.keeps(&f.name))
                        .map(|f| Field {
                            name: self.renamed(&f.name),
                            schema: f.schema.clone(),
                        })
                        .collect();
                    Ok(updated)
                })?;
                let values = fields
                    .into_iter()
                    .filter(|(name, _)| self.keeps(name))
                    .map(|(name, v)| (self.rename_owned(name), v))
                    .collect();
                SchemaAndValue {
                    schema: Some(updated_schema),
                    value: Value::Struct(values),
                }
            }
        };
        self.part.set(&mut record, updated);
        Ok(Some(record))
    }
}

/// Replaces field values with a type's empty value, or with `replacement`.
#[derive(Debug, Clone, PartialEq)]
pub struct MaskField {
    part: Part,
    replace_null: bool,
    fields: Vec<String>,
    replacement: Option<String>,
}

impl MaskField {
    pub fn config_def() -> ConfigDef {
        ConfigDef::new()
            .define(key(
                "fields",
                ConfigType::List,
                Default::Required,
                Importance::High,
                "Names of fields to mask.",
            ))
            .define(key(
                "replacement",
                ConfigType::String,
                Default::Null,
                Importance::Low,
                "Custom value replacement, that will be applied to all 'fields' values (numeric or non-empty string values only).",
            ))
            .define(replace_null_with_default_key())
    }

    pub fn configure(part: Part, settings: &ConfigMap) -> Result<Self, String> {
        let def = Self::config_def();
        let config = def.parse(settings)?;
        let fields = config.list("fields")?.to_vec();
        if fields.is_empty() {
            return Err("Invalid value  for configuration fields: Empty list".into());
        }
        Ok(MaskField {
            replace_null: config.boolean(REPLACE_NULL_WITH_DEFAULT)?,
            part,
            fields,
            replacement: config
                .optional_string("replacement")?
                .filter(|r| !r.is_empty())
                .map(str::to_owned),
        })
    }

    fn mask(&self, value: &Value) -> Result<Value> {
        let bad = |what: &str| {
            TransformError(format!(
                "Unable to mask value of type {what} with replacement"
            ))
        };
        Ok(match (&self.replacement, value) {
            (_, Value::Null) => Value::Null,
            (None, Value::Int8(_)) => Value::Int8(0),
            (None, Value::Int16(_)) => Value::Int16(0),
            (None, Value::Int32(_)) => Value::Int32(0),
            (None, Value::Int64(_)) => Value::Int64(0),
            (None, Value::Float32(_)) => Value::Float32(0.0),
            (None, Value::Float64(_)) => Value::Float64(0.0),
            (None, Value::Boolean(_)) => Value::Boolean(false),
            (None, Value::String(_)) => Value::String(String::new()),
            (None, Value::Bytes(_)) => Value::Bytes(Vec::new()),
            (None, Value::Array(_)) => Value::Array(Vec::new()),
            (None, Value::Map(_)) => Value::Map(Vec::new()),
            (None, Value::Struct(_)) => {
                return Err(TransformError("Cannot mask value of type Struct".into()));
            }
            (Some(r), Value::String(_)) => Value::String(r.clone()),
            (Some(r), Value::Int8(_)) => Value::Int8(r.trim().parse().map_err(|_| bad("Byte"))?),
            (Some(r), Value::Int16(_)) => Value::Int16(r.trim().parse().map_err(|_| bad("Short"))?),
            (Some(r), Value::Int32(_)) => {
                Value::Int32(r.trim().parse().map_err(|_| bad("Integer"))?)
            }
            (Some(r), Value::Int64(_)) => Value::Int64(r.trim().parse().map_err(|_| bad("Long"))?),
            (Some(r), Value::Float32(_)) => {
                Value::Float32(r.trim().parse().map_err(|_| bad("Float"))?)
            }
            (Some(r), Value::Float64(_)) => {
                Value::Float64(r.trim().parse().map_err(|_| bad("Double"))?)
            }
            (Some(r), Value::Boolean(_)) => Value::Boolean(r.trim().eq_ignore_ascii_case("true")),
            (Some(_), other) => return Err(bad(kind(other))),
        })
    }
}

impl Transformation for MaskField {
    fn apply(&self, mut record: ConnectRecord) -> Result<Option<ConnectRecord>> {
        if self.part.get(&record).value.is_null() {
            return Ok(Some(record));
        }
        let data = apply_defaults(self.replace_null, self.part.take(&mut record));
        let value = match (&data.schema, data.value) {
            (None, Value::Map(entries)) => Value::Map(
                entries
                    .into_iter()
                    .map(|(k, v)| {
                        let masked = matches!(&k, Value::String(n) if self.fields.contains(n));
                        Ok((k, if masked { self.mask(&v)? } else { v }))
                    })
                    .collect::<Result<_>>()?,
            ),
            (None, other) => return Err(not_a_map(&other, "masking fields")),
            (Some(_), Value::Struct(fields)) => Value::Struct(
                fields
                    .into_iter()
                    .map(|(n, v)| {
                        let masked = self.fields.contains(&n);
                        Ok((n, if masked { self.mask(&v)? } else { v }))
                    })
                    .collect::<Result<_>>()?,
            ),
            (Some(_), other) => return Err(not_a_struct(&other, "masking fields")),
        };
        self.part.set(
            &mut record,
            SchemaAndValue {
                schema: data.schema,
                value,
            },
        );
        Ok(Some(record))
    }
}

/// Sets the schema's name and/or version.
#[derive(Debug, Clone, PartialEq)]
pub struct SetSchemaMetadata {
    part: Part,
    replace_null: bool,
    name: Option<String>,
    version: Option<i32>,
    schemas: SchemaMemo,
}

impl SetSchemaMetadata {
    pub fn config_def() -> ConfigDef {
        ConfigDef::new()
            .define(key(
                "schema.name",
                ConfigType::String,
                Default::Null,
                Importance::High,
                "Schema name to set.",
            ))
            .define(key(
                "schema.version",
                ConfigType::Int,
                Default::Null,
                Importance::High,
                "Schema version to set.",
            ))
            .define(replace_null_with_default_key())
    }

    pub fn configure(part: Part, settings: &ConfigMap) -> Result<Self, String> {
        let def = Self::config_def();
        let config = def.parse(settings)?;
        let version = config.optional_int("schema.version")?;
        let name = non_blank(&config, "schema.name")?;
        if name.is_none() && version.is_none() {
            return Err("Neither schema name nor version configured".into());
        }
        Ok(SetSchemaMetadata {
            replace_null: config.boolean(REPLACE_NULL_WITH_DEFAULT)?,
            part,
            name,
            version,
            schemas: SchemaMemo::default(),
        })
    }
}

impl Transformation for SetSchemaMetadata {
    fn apply(&self, mut record: ConnectRecord) -> Result<Option<ConnectRecord>> {
        let mut data = apply_defaults(self.replace_null, self.part.take(&mut record));
        let schema = data.schema.as_mut().ok_or_else(|| {
            TransformError("Schema required for [updating schema metadata]".into())
        })?;
        *schema = self.schemas.output(schema, |schema| {
            let mut updated = schema.clone();
            if let Some(name) = &self.name {
                updated.name = Some(name.clone());
            }
            if let Some(version) = self.version {
                updated.version = Some(version);
            }
            Ok(updated)
        })?;
        self.part.set(&mut record, data);
        Ok(Some(record))
    }
}

/// Flattens nested structs (or maps) into one level, joining names with `delimiter`.
#[derive(Debug, Clone, PartialEq)]
pub struct Flatten {
    part: Part,
    delimiter: String,
}

impl Flatten {
    pub fn config_def() -> ConfigDef {
        ConfigDef::new().define(key(
            "delimiter",
            ConfigType::String,
            Default::Value("."),
            Importance::Medium,
            "Delimiter to insert between field names from the input record when generating field names for the output record",
        ))
    }

    pub fn configure(part: Part, settings: &ConfigMap) -> Result<Self, String> {
        let def = Self::config_def();
        Ok(Flatten {
            part,
            delimiter: def.parse(settings)?.string("delimiter")?.to_owned(),
        })
    }

    fn name(&self, prefix: &str, name: &str) -> String {
        if prefix.is_empty() {
            name.to_owned()
        } else {
            format!("{prefix}{}{name}", self.delimiter)
        }
    }

    fn flatten_map(
        &self,
        prefix: &str,
        entries: Vec<(Value, Value)>,
        out: &mut Vec<(Value, Value)>,
    ) {
        for (key, value) in entries {
            let name = self.name(prefix, &key.to_display_string());
            match value {
                Value::Map(nested) => self.flatten_map(&name, nested, out),
                other => out.push((Value::String(name), other)),
            }
        }
    }

    fn flatten_struct(
        &self,
        prefix: &str,
        schema: &Schema,
        values: Vec<(String, Value)>,
        parent_optional: bool,
        fields: &mut Vec<Field>,
        out: &mut Vec<(String, Value)>,
    ) {
        for (name, value) in values {
            let Some(field) = schema.field(&name) else {
                continue;
            };
            let flat = self.name(prefix, &name);
            match (field.schema.schema_type, value) {
                (SchemaType::Struct, Value::Struct(nested)) => {
                    let optional = parent_optional || field.schema.optional;
                    self.flatten_struct(&flat, &field.schema, nested, optional, fields, out);
                }
                (SchemaType::Struct, Value::Null) => {
                    // A null optional struct: its fields become nulls.
                    let nulls = field
                        .schema
                        .fields
                        .iter()
                        .map(|f| (f.name.clone(), Value::Null))
                        .collect();
                    self.flatten_struct(&flat, &field.schema, nulls, true, fields, out);
                }
                (_, value) => {
                    let mut field_schema = field.schema.clone();
                    field_schema.optional |= parent_optional;
                    fields.push(Field {
                        name: flat.clone(),
                        schema: field_schema,
                    });
                    out.push((flat, value));
                }
            }
        }
    }
}

impl Transformation for Flatten {
    fn apply(&self, mut record: ConnectRecord) -> Result<Option<ConnectRecord>> {
        if self.part.get(&record).value.is_null() {
            return Ok(Some(record));
        }
        let data = self.part.take(&mut record);
        let flattened = match (data.schema, data.value) {
            (None, Value::Map(entries)) => {
                let mut out = Vec::new();
                self.flatten_map("", entries, &mut out);
                SchemaAndValue {
                    schema: None,
                    value: Value::Map(out),
                }
            }
            (None, other) => return Err(not_a_map(&other, "flattening")),
            (Some(schema), Value::Struct(values)) => {
                let mut fields = Vec::new();
                let mut out = Vec::new();
                self.flatten_struct("", &schema, values, false, &mut fields, &mut out);
                let mut flat_schema = (*schema).clone();
                flat_schema.fields = fields;
                SchemaAndValue {
                    schema: Some(flat_schema.into()),
                    value: Value::Struct(out),
                }
            }
            (Some(_), other) => return Err(not_a_struct(&other, "flattening")),
        };
        self.part.set(&mut record, flattened);
        Ok(Some(record))
    }
}

/// Copies or moves fields into headers.
#[derive(Debug, Clone, PartialEq)]
pub struct HeaderFrom {
    part: Part,
    replace_null: bool,
    fields: Vec<String>,
    headers: Vec<String>,
    moving: bool,
}

impl HeaderFrom {
    pub fn config_def() -> ConfigDef {
        use ConfigType::{List, String};
        use Importance::High;
        ConfigDef::new()
            .define(key("fields", List, Default::Required, High, "Field names in the record whose values are to be copied or moved to headers."))
            .define(key("headers", List, Default::Required, High, "Header names, in the same order as the field names listed in the fields configuration property."))
            .define(
                key("operation", String, Default::Required, High, "Either move if the fields are to be moved to the headers (removed from the key/value), or copy if the fields are to be copied to the headers (retained in the key/value).")
                    .validator(Validator::OneOfMatchingCase(&["move", "copy"])),
            )
            .define(replace_null_with_default_key())
    }

    pub fn configure(part: Part, settings: &ConfigMap) -> Result<Self, String> {
        let def = Self::config_def();
        let config = def.parse(settings)?;
        let fields = config.list("fields")?.to_vec();
        let headers = config.list("headers")?.to_vec();
        if fields.len() != headers.len() {
            return Err(format!(
                "Invalid value {} for configuration headers: 'fields' config must have the same number of elements as 'headers' config.",
                headers.join(",")
            ));
        }
        // The definition allows `move` and `copy` only.
        let moving = config.string("operation")?.trim() == "move";
        Ok(HeaderFrom {
            replace_null: config.boolean(REPLACE_NULL_WITH_DEFAULT)?,
            part,
            fields,
            headers,
            moving,
        })
    }
}

impl Transformation for HeaderFrom {
    fn apply(&self, mut record: ConnectRecord) -> Result<Option<ConnectRecord>> {
        let data = apply_defaults(self.replace_null, self.part.get(&record).clone());
        let mut updated = data.clone();
        match (&data.schema, &data.value) {
            (_, Value::Null) => return Ok(Some(record)),
            (None, Value::Map(entries)) => {
                for (field, header) in self.fields.iter().zip(&self.headers) {
                    let value = entries
                        .iter()
                        .find(|(k, _)| matches!(k, Value::String(s) if s == field))
                        .map_or(Value::Null, |(_, v)| v.clone());
                    record.headers.push(Header {
                        key: header.clone(),
                        value: SchemaAndValue {
                            schema: None,
                            value,
                        },
                    });
                }
                if self.moving {
                    let kept = entries
                        .iter()
                        .filter(|(k, _)| !matches!(k, Value::String(s) if self.fields.contains(s)))
                        .cloned()
                        .collect();
                    updated.value = Value::Map(kept);
                }
            }
            (Some(schema), Value::Struct(values)) => {
                for (field, header) in self.fields.iter().zip(&self.headers) {
                    let field_schema = schema
                        .field(field)
                        .ok_or_else(|| {
                            TransformError(format!("Field {field} not found in schema"))
                        })?
                        .schema
                        .clone();
                    let value = values
                        .iter()
                        .find(|(n, _)| n == field)
                        .map_or(Value::Null, |(_, v)| v.clone());
                    record.headers.push(Header {
                        key: header.clone(),
                        value: SchemaAndValue {
                            schema: Some(field_schema.into()),
                            value,
                        },
                    });
                }
                if self.moving {
                    let mut moved_schema = (**schema).clone();
                    moved_schema
                        .fields
                        .retain(|f| !self.fields.contains(&f.name));
                    updated.schema = Some(moved_schema.into());
                    updated.value = Value::Struct(
                        values
                            .iter()
                            .filter(|(n, _)| !self.fields.contains(n))
                            .cloned()
                            .collect(),
                    );
                }
            }
            (None, other) => return Err(not_a_map(other, "header conversion")),
            (Some(_), other) => return Err(not_a_struct(other, "header conversion")),
        }
        self.part.set(&mut record, updated);
        Ok(Some(record))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tests::{config, record};

    fn s(text: &str) -> Value {
        Value::String(text.into())
    }

    fn map(entries: &[(&str, Value)]) -> Value {
        Value::Map(entries.iter().map(|(k, v)| (s(k), v.clone())).collect())
    }

    fn person() -> SchemaAndValue {
        let mut schema = Schema::new(SchemaType::Struct);
        schema.name = Some("Person".into());
        schema.fields = vec![
            Field {
                name: "id".into(),
                schema: Schema::new(SchemaType::Int64),
            },
            Field {
                name: "name".into(),
                schema: Schema::string(),
            },
            Field {
                name: "ssn".into(),
                schema: Schema::string(),
            },
        ];
        SchemaAndValue {
            schema: Some(schema.into()),
            value: Value::Struct(vec![
                ("id".into(), Value::Int64(1)),
                ("name".into(), s("ann")),
                ("ssn".into(), s("123")),
            ]),
        }
    }

    fn person_map() -> SchemaAndValue {
        SchemaAndValue {
            schema: None,
            value: map(&[
                ("id", Value::Int64(1)),
                ("name", s("ann")),
                ("ssn", s("123")),
            ]),
        }
    }

    fn names(data: &SchemaAndValue) -> Vec<String> {
        match &data.value {
            Value::Struct(fields) => fields.iter().map(|(n, _)| n.clone()).collect(),
            Value::Map(entries) => entries.iter().map(|(k, _)| k.to_display_string()).collect(),
            _ => Vec::new(),
        }
    }

    #[test]
    fn insert_field_schemaless() {
        let smt = InsertField::configure(
            Part::Value,
            &config(&[
                ("topic.field", "topic"),
                ("partition.field", "part"),
                ("static.field", "origin"),
                ("static.value", "weir"),
            ]),
        )
        .unwrap();
        let out = smt.apply(record("orders", person_map())).unwrap().unwrap();
        assert_eq!(
            out.value.value,
            map(&[
                ("id", Value::Int64(1)),
                ("name", s("ann")),
                ("ssn", s("123")),
                ("topic", s("orders")),
                ("part", Value::Int32(0)),
                ("origin", s("weir"))
            ])
        );
    }

    #[test]
    fn insert_field_schemaful_with_required_and_timestamp() {
        let smt = InsertField::configure(
            Part::Value,
            &config(&[
                ("topic.field", "topic!"),
                ("timestamp.field", "ts"),
                ("offset.field", "off"),
            ]),
        )
        .unwrap();
        let out = smt.apply(record("orders", person())).unwrap().unwrap();
        let schema = out.value.schema.unwrap();
        let topic = schema.field("topic").unwrap();
        assert!(!topic.schema.optional, "`!` makes the field required");
        let ts = schema.field("ts").unwrap();
        assert_eq!(ts.schema.name.as_deref(), Some(TIMESTAMP_LOGICAL));
        assert!(ts.schema.optional);
        assert_eq!(
            schema.name.as_deref(),
            Some("Person"),
            "schema basics are kept"
        );
        let Value::Struct(fields) = out.value.value else {
            panic!()
        };
        assert_eq!(fields[3], ("topic".into(), s("orders")));
        // Kafka Connect's order: topic, partition, offset, timestamp, static.
        assert_eq!(fields[4], ("off".into(), Value::Int64(7)));
        assert_eq!(fields[5], ("ts".into(), Value::Int64(1_700_000_000_000)));

        let mut source = record("orders", person());
        source.kafka_offset = None;
        assert!(
            smt.apply(source)
                .unwrap_err()
                .0
                .contains("only supported for sink connectors")
        );
        let tombstone = smt
            .apply(record("orders", SchemaAndValue::null()))
            .unwrap()
            .unwrap();
        assert!(tombstone.value.value.is_null());
    }

    #[test]
    fn replace_field_table() {
        type Case = (
            &'static [(&'static str, &'static str)],
            &'static [&'static str],
        );
        let cases: [Case; 4] = [
            (&[("exclude", "ssn")], &["id", "name"]),
            (&[("include", "name,id")], &["id", "name"]),
            (
                &[("renames", "name:full_name,id:key")],
                &["key", "full_name", "ssn"],
            ),
            (&[("exclude", "ssn"), ("renames", "name:n")], &["id", "n"]),
        ];
        for (settings, expected) in cases {
            let smt = ReplaceField::configure(Part::Value, &config(settings)).unwrap();
            let schemaful = smt.apply(record("t", person())).unwrap().unwrap();
            assert_eq!(names(&schemaful.value), expected, "{settings:?} schemaful");
            let schema_names: Vec<_> = schemaful
                .value
                .schema
                .unwrap()
                .fields
                .iter()
                .map(|f| f.name.clone())
                .collect();
            assert_eq!(schema_names, expected, "{settings:?} schema");
            let schemaless = smt.apply(record("t", person_map())).unwrap().unwrap();
            assert_eq!(
                names(&schemaless.value),
                expected,
                "{settings:?} schemaless"
            );
        }
        assert!(ReplaceField::configure(Part::Value, &config(&[("renames", "broken")])).is_err());
    }

    #[test]
    fn mask_field_table() {
        let smt = MaskField::configure(Part::Value, &config(&[("fields", "ssn,id")])).unwrap();
        let out = smt.apply(record("t", person())).unwrap().unwrap();
        assert_eq!(
            out.value.value,
            Value::Struct(vec![
                ("id".into(), Value::Int64(0)),
                ("name".into(), s("ann")),
                ("ssn".into(), s(""))
            ])
        );
        let replacing = MaskField::configure(
            Part::Value,
            &config(&[("fields", "ssn"), ("replacement", "***")]),
        )
        .unwrap();
        let out = replacing.apply(record("t", person_map())).unwrap().unwrap();
        assert_eq!(
            out.value.value,
            map(&[
                ("id", Value::Int64(1)),
                ("name", s("ann")),
                ("ssn", s("***"))
            ])
        );
        let numeric = MaskField::configure(
            Part::Value,
            &config(&[("fields", "id"), ("replacement", "not-a-number")]),
        )
        .unwrap();
        assert!(numeric.apply(record("t", person())).is_err());
    }

    #[test]
    fn set_schema_metadata() {
        let smt = SetSchemaMetadata::configure(
            Part::Value,
            &config(&[("schema.name", "com.example.User"), ("schema.version", "3")]),
        )
        .unwrap();
        let out = smt.apply(record("t", person())).unwrap().unwrap();
        let schema = out.value.schema.unwrap();
        assert_eq!(
            (schema.name.as_deref(), schema.version),
            (Some("com.example.User"), Some(3))
        );
        assert!(
            smt.apply(record("t", person_map())).is_err(),
            "schemaless records have no schema to name"
        );
        assert!(SetSchemaMetadata::configure(Part::Value, &config(&[])).is_err());
    }

    #[test]
    fn flatten_schemaless_and_schemaful() {
        let smt = Flatten::configure(Part::Value, &config(&[("delimiter", "_")])).unwrap();
        let nested = SchemaAndValue {
            schema: None,
            value: map(&[
                (
                    "a",
                    map(&[("b", Value::Int64(1)), ("c", map(&[("d", s("x"))]))]),
                ),
                ("e", Value::Boolean(true)),
            ]),
        };
        let out = smt.apply(record("t", nested)).unwrap().unwrap();
        assert_eq!(
            out.value.value,
            map(&[
                ("a_b", Value::Int64(1)),
                ("a_c_d", s("x")),
                ("e", Value::Boolean(true))
            ])
        );

        let mut address = Schema::new(SchemaType::Struct).optional();
        address.fields = vec![Field {
            name: "city".into(),
            schema: Schema::string(),
        }];
        let mut schema = Schema::new(SchemaType::Struct);
        schema.fields = vec![
            Field {
                name: "id".into(),
                schema: Schema::new(SchemaType::Int32),
            },
            Field {
                name: "address".into(),
                schema: address,
            },
        ];
        let value = Value::Struct(vec![
            ("id".into(), Value::Int32(1)),
            (
                "address".into(),
                Value::Struct(vec![("city".into(), s("Oslo"))]),
            ),
        ]);
        let dotted = Flatten::configure(Part::Value, &config(&[])).unwrap();
        let out = dotted
            .apply(record(
                "t",
                SchemaAndValue {
                    schema: Some(schema.into()),
                    value,
                },
            ))
            .unwrap()
            .unwrap();
        assert_eq!(
            out.value.value,
            Value::Struct(vec![
                ("id".into(), Value::Int32(1)),
                ("address.city".into(), s("Oslo"))
            ])
        );
        let flat_schema = out.value.schema.unwrap();
        assert!(
            flat_schema.field("address.city").unwrap().schema.optional,
            "fields of an optional struct become optional"
        );
    }

    #[test]
    fn header_from_copy_and_move() {
        let copy = HeaderFrom::configure(
            Part::Value,
            &config(&[
                ("fields", "id,name"),
                ("headers", "h_id,h_name"),
                ("operation", "copy"),
            ]),
        )
        .unwrap();
        let out = copy.apply(record("t", person())).unwrap().unwrap();
        assert_eq!(
            out.headers
                .iter()
                .map(|h| h.key.as_str())
                .collect::<Vec<_>>(),
            ["h_id", "h_name"]
        );
        assert_eq!(
            out.headers[0].value,
            SchemaAndValue {
                schema: Some(Schema::new(SchemaType::Int64).into()),
                value: Value::Int64(1)
            }
        );
        assert_eq!(names(&out.value), ["id", "name", "ssn"]);
        let moving = HeaderFrom::configure(
            Part::Value,
            &config(&[
                ("fields", "ssn"),
                ("headers", "secret"),
                ("operation", "move"),
            ]),
        )
        .unwrap();
        let out = moving.apply(record("t", person_map())).unwrap().unwrap();
        assert_eq!(names(&out.value), ["id", "name"]);
        assert_eq!(out.headers[0].value.value, s("123"));
        assert!(
            HeaderFrom::configure(
                Part::Value,
                &config(&[("fields", "a,b"), ("headers", "x"), ("operation", "copy")])
            )
            .is_err()
        );
    }
}
