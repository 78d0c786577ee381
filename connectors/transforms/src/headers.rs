//! `InsertHeader`, `DropHeaders` and the `HasHeaderKey` predicate.

use super::{ConnectRecord, Predicate, Result, Transformation, key};
use weir_api::api::Header;
use weir_api::config::{ConfigDef, ConfigMap, ConfigType, Default, Importance};
use weir_api::data::{Schema, SchemaAndValue, Value};

/// Adds a header with a literal value to every record.
#[derive(Debug, Clone, PartialEq)]
pub struct InsertHeader {
    header: String,
    value: String,
}

impl InsertHeader {
    pub fn config_def() -> ConfigDef {
        ConfigDef::new()
            .define(key(
                "header",
                ConfigType::String,
                Default::Required,
                Importance::High,
                "The name of the header.",
            ))
            .define(key(
                "value.literal",
                ConfigType::String,
                Default::Required,
                Importance::High,
                "The literal value that is to be set as the header value on all records.",
            ))
    }

    pub fn configure(settings: &ConfigMap) -> Result<Self, String> {
        let def = Self::config_def();
        let config = def.parse(settings)?;
        Ok(InsertHeader {
            header: config.string("header")?.to_owned(),
            value: config.string("value.literal")?.to_owned(),
        })
    }
}

impl Transformation for InsertHeader {
    fn apply(&self, mut record: ConnectRecord) -> Result<Option<ConnectRecord>> {
        record.headers.push(Header {
            key: self.header.clone(),
            value: SchemaAndValue {
                schema: Some(Schema::string_ref()),
                value: Value::String(self.value.clone()),
            },
        });
        Ok(Some(record))
    }
}

/// Removes every header with one of the given names.
#[derive(Debug, Clone, PartialEq)]
pub struct DropHeaders {
    headers: Vec<String>,
}

impl DropHeaders {
    pub fn config_def() -> ConfigDef {
        ConfigDef::new().define(key(
            "headers",
            ConfigType::List,
            Default::Required,
            Importance::High,
            "The name of the headers to be removed.",
        ))
    }

    pub fn configure(settings: &ConfigMap) -> Result<Self, String> {
        let def = Self::config_def();
        let headers = def.parse(settings)?.list("headers")?.to_vec();
        if headers.is_empty() {
            return Err("Invalid value  for configuration headers: Empty list".into());
        }
        Ok(DropHeaders { headers })
    }
}

impl Transformation for DropHeaders {
    fn apply(&self, mut record: ConnectRecord) -> Result<Option<ConnectRecord>> {
        record.headers.retain(|h| !self.headers.contains(&h.key));
        Ok(Some(record))
    }
}

/// `HasHeaderKey`: true when the record has at least one header named `name`.
#[derive(Debug, Clone, PartialEq)]
pub struct HasHeaderKey {
    name: String,
}

impl HasHeaderKey {
    pub fn config_def() -> ConfigDef {
        ConfigDef::new().define(key(
            "name",
            ConfigType::String,
            Default::Required,
            Importance::Medium,
            "The header name.",
        ))
    }

    pub fn configure(settings: &ConfigMap) -> Result<Self, String> {
        let def = Self::config_def();
        Ok(HasHeaderKey {
            name: def.parse(settings)?.string("name")?.to_owned(),
        })
    }
}

impl Predicate for HasHeaderKey {
    fn test(&self, record: &ConnectRecord) -> bool {
        record.headers.iter().any(|h| h.key == self.name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tests::{config, record, text};

    fn with_headers(keys: &[&str]) -> ConnectRecord {
        let mut r = record("t", text("v"));
        r.headers = keys
            .iter()
            .map(|k| Header {
                key: (*k).into(),
                value: text("h"),
            })
            .collect();
        r
    }

    fn keys(record: &ConnectRecord) -> Vec<&str> {
        record.headers.iter().map(|h| h.key.as_str()).collect()
    }

    #[test]
    fn insert_header_appends_a_literal() {
        let smt =
            InsertHeader::configure(&config(&[("header", "source"), ("value.literal", "weir")]))
                .unwrap();
        let out = smt.apply(with_headers(&["a"])).unwrap().unwrap();
        assert_eq!(keys(&out), ["a", "source"]);
        assert_eq!(out.headers[1].value, text("weir"));
        assert!(InsertHeader::configure(&config(&[("header", "x")])).is_err());
    }

    #[test]
    fn drop_headers_removes_every_match() {
        let smt = DropHeaders::configure(&config(&[("headers", "a, c")])).unwrap();
        let out = smt
            .apply(with_headers(&["a", "b", "c", "a"]))
            .unwrap()
            .unwrap();
        assert_eq!(keys(&out), ["b"]);
        assert!(DropHeaders::configure(&config(&[("headers", "")])).is_err());
    }

    #[test]
    fn has_header_key() {
        let predicate = HasHeaderKey::configure(&config(&[("name", "b")])).unwrap();
        assert!(predicate.test(&with_headers(&["a", "b"])));
        assert!(!predicate.test(&with_headers(&["a"])));
    }
}
