//! `Filter`, `RegexRouter`, and the `TopicNameMatches` and
//! `RecordIsTombstone` predicates.

use regex::Regex;

use super::{ConnectRecord, Predicate, Result, Transformation, key};
use weir_api::config::{ConfigDef, ConfigMap, ConfigType, Default, Importance};

/// Drops every record; used with a predicate.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Filter;

impl Filter {
    /// No keys of its own.
    pub fn config_def() -> ConfigDef {
        ConfigDef::new()
    }
}

impl Transformation for Filter {
    fn apply(&self, _record: ConnectRecord) -> Result<Option<ConnectRecord>> {
        Ok(None)
    }
}

/// Compiles a Java-style regex that must match a whole string.
fn whole_match(key: &str, pattern: &str) -> Result<Regex, String> {
    Regex::new(&format!("^(?:{pattern})$"))
        .map_err(|e| format!("Invalid value {pattern} for configuration {key}: Invalid regex: {e}"))
}

/// Renames the topic when the whole topic matches `regex`; `$1`… refer to groups.
#[derive(Debug, Clone)]
pub struct RegexRouter {
    regex: Regex,
    replacement: String,
}

impl RegexRouter {
    pub fn config_def() -> ConfigDef {
        ConfigDef::new()
            .define(key(
                "regex",
                ConfigType::String,
                Default::Required,
                Importance::High,
                "Regular expression to use for matching.",
            ))
            .define(key(
                "replacement",
                ConfigType::String,
                Default::Required,
                Importance::High,
                "Replacement string.",
            ))
    }

    pub fn configure(settings: &ConfigMap) -> Result<Self, String> {
        let def = Self::config_def();
        let config = def.parse(settings)?;
        Ok(RegexRouter {
            regex: whole_match("regex", config.string("regex")?)?,
            replacement: config.string("replacement")?.to_owned(),
        })
    }
}

impl Transformation for RegexRouter {
    fn apply(&self, mut record: ConnectRecord) -> Result<Option<ConnectRecord>> {
        if let Some(captures) = self.regex.captures(&record.topic) {
            let mut topic = String::new();
            captures.expand(&java_replacement(&self.replacement), &mut topic);
            record.topic = topic.into();
        }
        Ok(Some(record))
    }
}

/// Java's `$1` group references become `${1}` so a following digit or
/// letter is not read as part of the group name.
fn java_replacement(replacement: &str) -> String {
    let mut out = String::with_capacity(replacement.len() + 4);
    let mut chars = replacement.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                if let Some(next) = chars.next() {
                    if next == '$' {
                        out.push_str("$$");
                    } else {
                        out.push(next);
                    }
                }
            }
            '$' if chars.peek().is_some_and(char::is_ascii_digit) => {
                let mut group = String::new();
                while let Some(d) = chars.peek().filter(|d| d.is_ascii_digit()) {
                    group.push(*d);
                    chars.next();
                }
                out.push_str(&format!("${{{group}}}"));
            }
            other => out.push(other),
        }
    }
    out
}

/// `TopicNameMatches`: true when the whole topic matches `pattern`.
#[derive(Debug, Clone)]
pub struct TopicNameMatches {
    pattern: Regex,
}

impl TopicNameMatches {
    pub fn config_def() -> ConfigDef {
        ConfigDef::new().define(key(
            "pattern",
            ConfigType::String,
            Default::Required,
            Importance::Medium,
            "A Java regular expression for matching against the name of a record's topic.",
        ))
    }

    pub fn configure(settings: &ConfigMap) -> Result<Self, String> {
        let def = Self::config_def();
        Ok(TopicNameMatches {
            pattern: whole_match("pattern", def.parse(settings)?.string("pattern")?)?,
        })
    }
}

impl Predicate for TopicNameMatches {
    fn test(&self, record: &ConnectRecord) -> bool {
        self.pattern.is_match(&record.topic)
    }
}

/// `RecordIsTombstone`: true when the record value is null.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RecordIsTombstone;

impl RecordIsTombstone {
    /// No keys of its own.
    pub fn config_def() -> ConfigDef {
        ConfigDef::new()
    }
}

impl Predicate for RecordIsTombstone {
    fn test(&self, record: &ConnectRecord) -> bool {
        record.value.value.is_null()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tests::{config, record, text};
    use weir_api::data::SchemaAndValue;

    #[test]
    fn regex_router_table() {
        // (regex, replacement, topic, expected) — Kafka Connect's documented cases.
        let cases = [
            ("(.*)-(\\d+)", "$1", "orders-2024", "orders"),
            ("(.*)", "prefix-$1", "orders", "prefix-orders"),
            ("orders", "renamed", "orders-x", "orders-x"),
            ("(\\w+)\\.(\\w+)", "$2_$1", "db.table", "table_db"),
            ("(.*)", "$1\\$", "t", "t$"),
        ];
        for (regex, replacement, topic, expected) in cases {
            let smt =
                RegexRouter::configure(&config(&[("regex", regex), ("replacement", replacement)]))
                    .unwrap();
            let out = smt.apply(record(topic, text("v"))).unwrap().unwrap();
            assert_eq!(out.topic, expected, "{regex} → {replacement} on {topic}");
        }
        assert!(RegexRouter::configure(&config(&[("regex", "(")])).is_err());
    }

    #[test]
    fn filter_drops() {
        assert_eq!(Filter.apply(record("t", text("v"))).unwrap(), None);
    }

    #[test]
    fn predicates_table() {
        let matches = TopicNameMatches::configure(&config(&[("pattern", "logs-.*")])).unwrap();
        assert!(matches.test(&record("logs-app", text("v"))));
        assert!(
            !matches.test(&record("app-logs-x", text("v"))),
            "the whole topic must match"
        );
        assert!(RecordIsTombstone.test(&record("t", SchemaAndValue::null())));
        assert!(!RecordIsTombstone.test(&record("t", text("v"))));
        assert!(TopicNameMatches::configure(&config(&[])).is_err());
    }
}
