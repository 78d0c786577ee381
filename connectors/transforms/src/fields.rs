//! Field-level SMTs: `ValueToKey`, `ExtractField$Key/$Value`,
//! `HoistField$Key/$Value`. Each handles schemaful records (struct values
//! with a struct schema) and schemaless ones (maps with string keys).

use super::{
    ConnectRecord, Part, REPLACE_NULL_WITH_DEFAULT, Result, SchemaMemo, TransformError,
    Transformation, apply_defaults, key, replace_null_with_default_key,
};
use weir_api::config::{ConfigDef, ConfigMap, ConfigType, Default, Importance, Validator};
use weir_api::data::{Field, Schema, SchemaAndValue, SchemaType, Value};

/// Kafka Connect's name for a value's type in error messages.
fn type_name(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Int8(_) => "java.lang.Byte",
        Value::Int16(_) => "java.lang.Short",
        Value::Int32(_) => "java.lang.Integer",
        Value::Int64(_) => "java.lang.Long",
        Value::Float32(_) => "java.lang.Float",
        Value::Float64(_) => "java.lang.Double",
        Value::Boolean(_) => "java.lang.Boolean",
        Value::String(_) => "java.lang.String",
        Value::Bytes(_) => "[B",
        Value::Array(_) => "java.util.ArrayList",
        Value::Map(_) => "java.util.HashMap",
        Value::Struct(_) => "org.apache.kafka.connect.data.Struct",
    }
}

fn require_map<'a>(value: &'a Value, purpose: &str) -> Result<&'a [(Value, Value)]> {
    match value {
        Value::Map(entries) => Ok(entries),
        other => Err(TransformError(format!(
            "Only Map objects supported in absence of schema for [{purpose}], found: {}",
            type_name(other)
        ))),
    }
}

fn require_struct<'a>(value: &'a Value, purpose: &str) -> Result<&'a [(String, Value)]> {
    match value {
        Value::Struct(fields) => Ok(fields),
        other => Err(TransformError(format!(
            "Only Struct objects supported for [{purpose}], found: {}",
            type_name(other)
        ))),
    }
}

fn map_get<'a>(entries: &'a [(Value, Value)], name: &str) -> Option<&'a Value> {
    entries
        .iter()
        .find(|(k, _)| matches!(k, Value::String(s) if s == name))
        .map(|(_, v)| v)
}

fn struct_get<'a>(fields: &'a [(String, Value)], name: &str) -> Option<&'a Value> {
    fields.iter().find(|(k, _)| k == name).map(|(_, v)| v)
}

/// Copies fields of the value into a new key.
#[derive(Debug, Clone, PartialEq)]
pub struct ValueToKey {
    fields: Vec<String>,
    replace_null: bool,
}

impl ValueToKey {
    pub fn config_def() -> ConfigDef {
        ConfigDef::new()
            .define(key(
                "fields",
                ConfigType::List,
                Default::Required,
                Importance::High,
                "Field names on the record value to extract as the record key.",
            ))
            .define(replace_null_with_default_key())
    }

    pub fn configure(settings: &ConfigMap) -> Result<Self, String> {
        let def = Self::config_def();
        let config = def.parse(settings)?;
        let fields = config.list("fields")?.to_vec();
        if fields.is_empty() {
            return Err("Invalid value  for configuration fields: Empty list".into());
        }
        Ok(ValueToKey {
            fields,
            replace_null: config.boolean(REPLACE_NULL_WITH_DEFAULT)?,
        })
    }
}

impl Transformation for ValueToKey {
    fn apply(&self, mut record: ConnectRecord) -> Result<Option<ConnectRecord>> {
        const PURPOSE: &str = "copying fields from value to key";
        record.key = match &record.value.schema {
            None => {
                let entries = require_map(&record.value.value, PURPOSE)?;
                let key = self
                    .fields
                    .iter()
                    .map(|f| {
                        (
                            Value::String(f.clone()),
                            map_get(entries, f).cloned().unwrap_or(Value::Null),
                        )
                    })
                    .collect();
                SchemaAndValue {
                    schema: None,
                    value: Value::Map(key),
                }
            }
            Some(schema) => {
                let read = apply_defaults(self.replace_null, record.value.clone());
                let values = require_struct(&read.value, PURPOSE)?;
                let mut key_schema = Schema::new(SchemaType::Struct);
                let mut key = Vec::with_capacity(self.fields.len());
                for name in &self.fields {
                    let field = schema
                        .field(name)
                        .ok_or_else(|| TransformError(format!("Field does not exist: {name}")))?;
                    key_schema.fields.push(field.clone());
                    key.push((
                        name.clone(),
                        struct_get(values, name).cloned().unwrap_or(Value::Null),
                    ));
                }
                SchemaAndValue {
                    schema: Some(key_schema.into()),
                    value: Value::Struct(key),
                }
            }
        };
        Ok(Some(record))
    }
}

/// Replaces the key or value with one of its fields.
#[derive(Debug, Clone, PartialEq)]
pub struct ExtractField {
    part: Part,
    field: String,
    /// `field.syntax.version=V2`: `field` is a dotted path into nested values.
    nested: bool,
    replace_null: bool,
}

impl ExtractField {
    pub fn config_def() -> ConfigDef {
        ConfigDef::new()
            .define(key(
                "field",
                ConfigType::String,
                Default::Required,
                Importance::Medium,
                "Field name to extract.",
            ))
            .define(
                key(
                    "field.syntax.version",
                    ConfigType::String,
                    Default::Value("V1"),
                    Importance::High,
                    "Defines the version of the syntax to access fields. If set to `V1`, then the field paths are limited to access the elements at the root level of the struct or map. If set to `V2`, the syntax will support accessing nested elements.",
                )
                .validator(Validator::OneOfIgnoringCase(&["V1", "V2"])),
            )
            .define(replace_null_with_default_key())
    }

    pub fn configure(part: Part, settings: &ConfigMap) -> Result<Self, String> {
        let def = Self::config_def();
        let config = def.parse(settings)?;
        Ok(ExtractField {
            part,
            field: config.string("field")?.to_owned(),
            // V1 reads `field` as one name, V2 as a dotted path.
            nested: config
                .string("field.syntax.version")?
                .trim()
                .eq_ignore_ascii_case("V2"),
            replace_null: config.boolean(REPLACE_NULL_WITH_DEFAULT)?,
        })
    }
}

impl ExtractField {
    /// The path to the field: the name itself (`V1`), or dotted segments
    /// with backtick-quoted names kept whole (`V2`, KIP-821).
    fn path(&self) -> Vec<String> {
        if !self.nested {
            return vec![self.field.clone()];
        }
        let mut segments = Vec::new();
        let mut current = String::new();
        let mut quoted = false;
        for c in self.field.chars() {
            match c {
                '`' => quoted = !quoted,
                '.' if !quoted => segments.push(std::mem::take(&mut current)),
                other => current.push(other),
            }
        }
        segments.push(current);
        segments
    }
}

impl Transformation for ExtractField {
    fn apply(&self, mut record: ConnectRecord) -> Result<Option<ConnectRecord>> {
        const PURPOSE: &str = "field extraction";
        let data = apply_defaults(self.replace_null, self.part.take(&mut record));
        let unknown = || TransformError(format!("Unknown field: {}", self.field));
        let mut schema = data.schema;
        let mut value = data.value;
        for segment in self.path() {
            schema = match schema {
                None => None,
                Some(s) => Some(s.field(&segment).ok_or_else(unknown)?.schema.clone().into()),
            };
            value = match (&schema, value) {
                (_, Value::Null) => Value::Null,
                (None, other) => map_get(require_map(&other, PURPOSE)?, &segment)
                    .cloned()
                    .unwrap_or(Value::Null),
                (Some(_), other) => struct_get(require_struct(&other, PURPOSE)?, &segment)
                    .cloned()
                    .unwrap_or(Value::Null),
            };
        }
        self.part.set(&mut record, SchemaAndValue { schema, value });
        Ok(Some(record))
    }
}

/// Wraps the key or value in a struct (or map) with one field.
#[derive(Debug, Clone, PartialEq)]
pub struct HoistField {
    part: Part,
    field: String,
    schemas: SchemaMemo,
}

impl HoistField {
    pub fn config_def() -> ConfigDef {
        ConfigDef::new().define(key(
            "field",
            ConfigType::String,
            Default::Required,
            Importance::Medium,
            "Field name for the single field that will be created in the resulting Struct or Map.",
        ))
    }

    pub fn configure(part: Part, settings: &ConfigMap) -> Result<Self, String> {
        let def = Self::config_def();
        Ok(HoistField {
            part,
            field: def.parse(settings)?.string("field")?.to_owned(),
            schemas: SchemaMemo::default(),
        })
    }
}

impl Transformation for HoistField {
    fn apply(&self, mut record: ConnectRecord) -> Result<Option<ConnectRecord>> {
        let data = self.part.take(&mut record);
        let hoisted = match data.schema {
            None => SchemaAndValue {
                schema: None,
                value: Value::Map(vec![(Value::String(self.field.clone()), data.value)]),
            },
            Some(schema) => {
                let wrapper = self.schemas.output(&schema, |schema| {
                    let mut wrapper = Schema::new(SchemaType::Struct);
                    wrapper.fields.push(Field {
                        name: self.field.clone(),
                        schema: schema.clone(),
                    });
                    Ok(wrapper)
                })?;
                SchemaAndValue {
                    schema: Some(wrapper),
                    value: Value::Struct(vec![(self.field.clone(), data.value)]),
                }
            }
        };
        self.part.set(&mut record, hoisted);
        Ok(Some(record))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tests::{config, record};

    fn person_schema() -> Schema {
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
        ];
        schema
    }

    fn person() -> SchemaAndValue {
        SchemaAndValue {
            schema: Some(person_schema().into()),
            value: Value::Struct(vec![
                ("id".into(), Value::Int64(42)),
                ("name".into(), Value::String("ann".into())),
            ]),
        }
    }

    fn person_map() -> SchemaAndValue {
        SchemaAndValue {
            schema: None,
            value: Value::Map(vec![
                (Value::String("id".into()), Value::Int64(42)),
                (Value::String("name".into()), Value::String("ann".into())),
            ]),
        }
    }

    #[test]
    fn value_to_key_schemaful_and_schemaless() {
        let smt = ValueToKey::configure(&config(&[("fields", "id")])).unwrap();
        let out = smt.apply(record("t", person())).unwrap().unwrap();
        assert_eq!(
            out.key.value,
            Value::Struct(vec![("id".into(), Value::Int64(42))])
        );
        let key_schema = out.key.schema.unwrap();
        assert_eq!(key_schema.schema_type, SchemaType::Struct);
        assert_eq!(
            key_schema.fields,
            vec![Field {
                name: "id".into(),
                schema: Schema::new(SchemaType::Int64)
            }]
        );
        assert_eq!(out.value, person(), "the value is unchanged");

        let out = smt.apply(record("t", person_map())).unwrap().unwrap();
        assert_eq!(
            out.key,
            SchemaAndValue {
                schema: None,
                value: Value::Map(vec![(Value::String("id".into()), Value::Int64(42))])
            }
        );

        let missing = ValueToKey::configure(&config(&[("fields", "nope")])).unwrap();
        assert!(missing.apply(record("t", person())).is_err());
        let not_a_map = smt.apply(record(
            "t",
            SchemaAndValue {
                schema: None,
                value: Value::String("x".into()),
            },
        ));
        assert!(
            not_a_map
                .unwrap_err()
                .0
                .starts_with("Only Map objects supported in absence of schema")
        );
    }

    #[test]
    fn extract_field_table() {
        let value = ExtractField::configure(Part::Value, &config(&[("field", "name")])).unwrap();
        let out = value.apply(record("t", person())).unwrap().unwrap();
        assert_eq!(
            out.value,
            SchemaAndValue {
                schema: Some(Schema::string().into()),
                value: Value::String("ann".into())
            }
        );
        let out = value.apply(record("t", person_map())).unwrap().unwrap();
        assert_eq!(
            out.value,
            SchemaAndValue {
                schema: None,
                value: Value::String("ann".into())
            }
        );
        let out = value
            .apply(record("t", SchemaAndValue::null()))
            .unwrap()
            .unwrap();
        assert_eq!(out.value, SchemaAndValue::null(), "null passes through");
        let unknown = ExtractField::configure(Part::Value, &config(&[("field", "nope")])).unwrap();
        assert_eq!(
            unknown.apply(record("t", person())).unwrap_err().0,
            "Unknown field: nope"
        );

        let key = ExtractField::configure(Part::Key, &config(&[("field", "id")])).unwrap();
        let mut keyed = record("t", person());
        keyed.key = person_map();
        let out = key.apply(keyed).unwrap().unwrap();
        assert_eq!(out.key.value, Value::Int64(42));
        assert_eq!(out.value, person());
    }

    #[test]
    fn extract_field_nested_paths_with_field_syntax_v2() {
        let mut address = Schema::new(SchemaType::Struct);
        address.fields = vec![
            Field {
                name: "city".into(),
                schema: Schema::string(),
            },
            Field {
                name: "zip.code".into(),
                schema: Schema::string(),
            },
        ];
        let mut schema = Schema::new(SchemaType::Struct);
        schema.fields = vec![Field {
            name: "address".into(),
            schema: address,
        }];
        let value = Value::Struct(vec![(
            "address".into(),
            Value::Struct(vec![
                ("city".into(), Value::String("Oslo".into())),
                ("zip.code".into(), Value::String("0150".into())),
            ]),
        )]);
        let data = SchemaAndValue {
            schema: Some(schema.into()),
            value,
        };
        let cases = [("address.city", "Oslo"), ("address.`zip.code`", "0150")];
        for (path, expected) in cases {
            let smt = ExtractField::configure(
                Part::Value,
                &config(&[("field", path), ("field.syntax.version", "V2")]),
            )
            .unwrap();
            let out = smt.apply(record("t", data.clone())).unwrap().unwrap();
            assert_eq!(
                out.value,
                SchemaAndValue {
                    schema: Some(Schema::string().into()),
                    value: Value::String(expected.into())
                },
                "{path}"
            );
        }
        // V1 (the default) takes the name literally.
        let literal =
            ExtractField::configure(Part::Value, &config(&[("field", "address.city")])).unwrap();
        assert_eq!(
            literal.apply(record("t", data.clone())).unwrap_err().0,
            "Unknown field: address.city"
        );
        let schemaless = SchemaAndValue {
            schema: None,
            value: Value::Map(vec![(
                Value::String("a".into()),
                Value::Map(vec![(Value::String("b".into()), Value::Int64(1))]),
            )]),
        };
        let nested = ExtractField::configure(
            Part::Value,
            &config(&[("field", "a.b"), ("field.syntax.version", "v2")]),
        )
        .unwrap();
        assert_eq!(
            nested
                .apply(record("t", schemaless))
                .unwrap()
                .unwrap()
                .value
                .value,
            Value::Int64(1)
        );
        assert!(
            ExtractField::configure(
                Part::Value,
                &config(&[("field", "a"), ("field.syntax.version", "V3")])
            )
            .is_err()
        );
    }

    #[test]
    fn hoist_field_table() {
        let smt = HoistField::configure(Part::Value, &config(&[("field", "line")])).unwrap();
        let text = SchemaAndValue {
            schema: Some(Schema::string().into()),
            value: Value::String("x".into()),
        };
        let out = smt.apply(record("t", text)).unwrap().unwrap();
        let schema = out.value.schema.unwrap();
        assert_eq!(
            schema.fields,
            vec![Field {
                name: "line".into(),
                schema: Schema::string()
            }]
        );
        assert_eq!(
            out.value.value,
            Value::Struct(vec![("line".into(), Value::String("x".into()))])
        );
        let schemaless = SchemaAndValue {
            schema: None,
            value: Value::Int64(1),
        };
        let out = smt.apply(record("t", schemaless)).unwrap().unwrap();
        assert_eq!(
            out.value.value,
            Value::Map(vec![(Value::String("line".into()), Value::Int64(1))])
        );
    }
}
