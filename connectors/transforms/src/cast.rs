//! `Cast$Key/$Value`: casts the whole key/value (`spec=int64`) or fields
//! (`spec=a:int32,b:string`) to another primitive type.

use super::{
    ConnectRecord, Part, REPLACE_NULL_WITH_DEFAULT, Result, TransformError, Transformation,
    apply_defaults, key, replace_null_with_default_key,
};
use weir_api::config::{ConfigDef, ConfigMap, ConfigType, Default, Importance};
use weir_api::data::{Schema, SchemaAndValue, SchemaType, Value};

const CASTABLE: [SchemaType; 8] = [
    SchemaType::Int8,
    SchemaType::Int16,
    SchemaType::Int32,
    SchemaType::Int64,
    SchemaType::Float32,
    SchemaType::Float64,
    SchemaType::Boolean,
    SchemaType::String,
];

fn target_type(name: &str, spec: &str) -> Result<SchemaType, String> {
    let parsed = SchemaType::from_json_name(match name.trim() {
        "float32" => "float",
        "float64" => "double",
        other => other,
    });
    match parsed {
        Some(t) if CASTABLE.contains(&t) => Ok(t),
        _ => Err(format!(
            "Invalid value {spec} for configuration spec: Cast transformations only support the following types: [INT8, INT16, INT32, INT64, FLOAT32, FLOAT64, BOOLEAN, STRING]"
        )),
    }
}

/// Casts values to primitive types.
#[derive(Debug, Clone, PartialEq)]
pub struct Cast {
    part: Part,
    replace_null: bool,
    /// `None` field means the whole key/value.
    casts: Vec<(Option<String>, SchemaType)>,
}

impl Cast {
    pub fn config_def() -> ConfigDef {
        ConfigDef::new()
            .define(key(
                "spec",
                ConfigType::List,
                Default::Required,
                Importance::High,
                "List of fields and the type to cast them to of the form field1:type,field2:type to cast fields of Maps or Structs. A single type to cast the entire value.",
            ))
            .define(replace_null_with_default_key())
    }

    pub fn configure(part: Part, settings: &ConfigMap) -> Result<Self, String> {
        let def = Self::config_def();
        let config = def.parse(settings)?;
        let items = config.list("spec")?;
        // Messages quote the spec as written.
        let spec = config.original("spec")?.unwrap_or_default();
        if items.is_empty() {
            return Err(
                "Invalid value  for configuration spec: Must specify at least one field to cast."
                    .into(),
            );
        }
        let mut casts = Vec::new();
        for item in items {
            match item.split_once(':') {
                Some((field, to)) => {
                    casts.push((Some(field.trim().to_owned()), target_type(to, spec)?))
                }
                None if items.len() == 1 => casts.push((None, target_type(item, spec)?)),
                None => {
                    return Err(format!(
                        "Invalid value {spec} for configuration spec: Invalid rename mapping: {item}"
                    ));
                }
            }
        }
        Ok(Cast {
            part,
            casts,
            replace_null: config.boolean(REPLACE_NULL_WITH_DEFAULT)?,
        })
    }

    fn target_for(&self, field: &str) -> Option<SchemaType> {
        self.casts
            .iter()
            .find(|(f, _)| f.as_deref() == Some(field))
            .map(|(_, t)| *t)
    }
}

fn as_f64(value: &Value) -> Option<f64> {
    Some(match value {
        Value::Int8(v) => f64::from(*v),
        Value::Int16(v) => f64::from(*v),
        Value::Int32(v) => f64::from(*v),
        Value::Int64(v) => *v as f64,
        Value::Float32(v) => f64::from(*v),
        Value::Float64(v) => *v,
        Value::Boolean(v) => f64::from(u8::from(*v)),
        _ => return None,
    })
}

fn as_i64(value: &Value) -> Option<i64> {
    Some(match value {
        Value::Int8(v) => i64::from(*v),
        Value::Int16(v) => i64::from(*v),
        Value::Int32(v) => i64::from(*v),
        Value::Int64(v) => *v,
        Value::Float32(v) => *v as i64,
        Value::Float64(v) => *v as i64,
        Value::Boolean(v) => i64::from(*v),
        _ => return None,
    })
}

/// Casts one value the way Java's narrowing conversions and `parseX` do.
pub fn cast_value(value: &Value, to: SchemaType) -> Result<Value> {
    if value.is_null() {
        return Ok(Value::Null);
    }
    let fail = || {
        TransformError(format!(
            "Unexpected type in Cast transformation: {value:?} to {}",
            to.json_name()
        ))
    };
    if let Value::String(text) = value {
        let text = text.trim();
        return Ok(match to {
            SchemaType::Int8 => Value::Int8(text.parse().map_err(|_| fail())?),
            SchemaType::Int16 => Value::Int16(text.parse().map_err(|_| fail())?),
            SchemaType::Int32 => Value::Int32(text.parse().map_err(|_| fail())?),
            SchemaType::Int64 => Value::Int64(text.parse().map_err(|_| fail())?),
            SchemaType::Float32 => Value::Float32(text.parse().map_err(|_| fail())?),
            SchemaType::Float64 => Value::Float64(text.parse().map_err(|_| fail())?),
            SchemaType::Boolean => Value::Boolean(text.eq_ignore_ascii_case("true")),
            SchemaType::String => Value::String(text.to_owned()),
            _ => return Err(fail()),
        });
    }
    Ok(match to {
        SchemaType::Int8 => Value::Int8(as_i64(value).ok_or_else(fail)? as i8),
        SchemaType::Int16 => Value::Int16(as_i64(value).ok_or_else(fail)? as i16),
        SchemaType::Int32 => Value::Int32(as_i64(value).ok_or_else(fail)? as i32),
        SchemaType::Int64 => Value::Int64(as_i64(value).ok_or_else(fail)?),
        SchemaType::Float32 => Value::Float32(as_f64(value).ok_or_else(fail)? as f32),
        SchemaType::Float64 => Value::Float64(as_f64(value).ok_or_else(fail)?),
        SchemaType::Boolean => Value::Boolean(as_f64(value).ok_or_else(fail)? != 0.0),
        SchemaType::String => Value::String(value.to_display_string()),
        _ => return Err(fail()),
    })
}

fn cast_schema(schema: &Schema, to: SchemaType) -> Schema {
    let mut cast = Schema::new(to);
    cast.optional = schema.optional;
    cast
}

impl Transformation for Cast {
    fn apply(&self, mut record: ConnectRecord) -> Result<Option<ConnectRecord>> {
        if self.part.get(&record).value.is_null() {
            return Ok(Some(record));
        }
        let data = apply_defaults(self.replace_null, self.part.take(&mut record));
        let cast = match self.casts.as_slice() {
            [(None, to)] => SchemaAndValue {
                schema: data.schema.as_ref().map(|s| cast_schema(s, *to).into()),
                value: cast_value(&data.value, *to)?,
            },
            _ => match (data.schema, data.value) {
                (Some(mut schema), Value::Struct(fields)) => {
                    for field in std::sync::Arc::make_mut(&mut schema).fields.iter_mut() {
                        if let Some(to) = self.target_for(&field.name) {
                            field.schema = cast_schema(&field.schema, to);
                        }
                    }
                    let values = fields
                        .into_iter()
                        .map(|(name, v)| match self.target_for(&name) {
                            Some(to) => Ok((name, cast_value(&v, to)?)),
                            None => Ok((name, v)),
                        })
                        .collect::<Result<_>>()?;
                    SchemaAndValue {
                        schema: Some(schema),
                        value: Value::Struct(values),
                    }
                }
                (None, Value::Map(entries)) => SchemaAndValue {
                    schema: None,
                    value: Value::Map(
                        entries
                            .into_iter()
                            .map(|(k, v)| match &k {
                                Value::String(name) => match self.target_for(name) {
                                    Some(to) => Ok((k.clone(), cast_value(&v, to)?)),
                                    None => Ok((k, v)),
                                },
                                _ => Ok((k, v)),
                            })
                            .collect::<Result<_>>()?,
                    ),
                },
                (_, other) => {
                    return Err(TransformError(format!(
                        "Only Struct or Map values can have fields cast, found {other:?}"
                    )));
                }
            },
        };
        self.part.set(&mut record, cast);
        Ok(Some(record))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tests::{config, record};
    use weir_api::data::Field;

    #[test]
    fn cast_value_table() {
        let cases = [
            (Value::Int64(300), SchemaType::Int8, Value::Int8(44)),
            (Value::Float64(3.9), SchemaType::Int32, Value::Int32(3)),
            (Value::Boolean(true), SchemaType::Int16, Value::Int16(1)),
            (
                Value::String("42".into()),
                SchemaType::Int64,
                Value::Int64(42),
            ),
            (
                Value::String("1.5".into()),
                SchemaType::Float64,
                Value::Float64(1.5),
            ),
            (Value::Int32(0), SchemaType::Boolean, Value::Boolean(false)),
            (
                Value::Int32(7),
                SchemaType::String,
                Value::String("7".into()),
            ),
            (
                Value::String("TRUE".into()),
                SchemaType::Boolean,
                Value::Boolean(true),
            ),
        ];
        for (input, to, expected) in cases {
            assert_eq!(
                cast_value(&input, to).unwrap(),
                expected,
                "{input:?} → {to:?}"
            );
        }
        assert!(cast_value(&Value::String("x".into()), SchemaType::Int32).is_err());
    }

    #[test]
    fn cast_whole_value_and_fields() {
        let whole = Cast::configure(Part::Value, &config(&[("spec", "int64")])).unwrap();
        let data = SchemaAndValue {
            schema: Some(Schema::string().optional().into()),
            value: Value::String("12".into()),
        };
        let out = whole.apply(record("t", data)).unwrap().unwrap();
        assert_eq!(
            out.value,
            SchemaAndValue {
                schema: Some(Schema::new(SchemaType::Int64).optional().into()),
                value: Value::Int64(12)
            }
        );

        let fields =
            Cast::configure(Part::Value, &config(&[("spec", "age:int8,score:string")])).unwrap();
        let mut schema = Schema::new(SchemaType::Struct);
        schema.fields = vec![
            Field {
                name: "age".into(),
                schema: Schema::new(SchemaType::Int32),
            },
            Field {
                name: "score".into(),
                schema: Schema::new(SchemaType::Float64),
            },
            Field {
                name: "name".into(),
                schema: Schema::string(),
            },
        ];
        let value = Value::Struct(vec![
            ("age".into(), Value::Int32(30)),
            ("score".into(), Value::Float64(1.5)),
            ("name".into(), Value::String("a".into())),
        ]);
        let out = fields
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
                ("age".into(), Value::Int8(30)),
                ("score".into(), Value::String("1.5".into())),
                ("name".into(), Value::String("a".into()))
            ])
        );
        assert_eq!(
            out.value
                .schema
                .unwrap()
                .field("age")
                .unwrap()
                .schema
                .schema_type,
            SchemaType::Int8
        );

        let schemaless = SchemaAndValue {
            schema: None,
            value: Value::Map(vec![(
                Value::String("age".into()),
                Value::String("5".into()),
            )]),
        };
        let out = fields.apply(record("t", schemaless)).unwrap().unwrap();
        assert_eq!(
            out.value.value,
            Value::Map(vec![(Value::String("age".into()), Value::Int8(5))])
        );
        assert!(Cast::configure(Part::Value, &config(&[("spec", "bytes")])).is_err());
    }
}
