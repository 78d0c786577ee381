//! The config definitions by simple class name, for validation
//! (`PUT /connector-plugins/{plugin}/config/validate`): each SMT and
//! predicate owns its keys (`config_def`, next to its `configure`); this
//! module finds them by name and holds the keys Kafka Connect adds to every
//! transform and predicate alias.

use weir_api::config::{ConfigDef, ConfigType, Default, Importance};

use crate::headers::HasHeaderKey;
use crate::routing::{RecordIsTombstone, TopicNameMatches};
use crate::{
    Cast, DropHeaders, ExtractField, Filter, Flatten, HeaderFrom, HoistField, InsertField,
    InsertHeader, MaskField, RegexRouter, ReplaceField, SetSchemaMetadata, TimestampConverter,
    TimestampRouter, ValueToKey, key,
};

/// Keys every transform alias has: `type`, `predicate`, `negate`.
pub fn transform_base() -> ConfigDef {
    use ConfigType::*;
    ConfigDef::new()
        .define(key(
            "type",
            Class,
            Default::Required,
            Importance::High,
            "Class for the 'transforms' transformation.",
        ))
        .define(key(
            "predicate",
            String,
            Default::Null,
            Importance::Medium,
            "The alias of a predicate used to determine whether to apply this transformation.",
        ))
        .define(key(
            "negate",
            Boolean,
            Default::Value("false"),
            Importance::Medium,
            "Whether the configured predicate should be negated.",
        ))
}

/// Keys every predicate alias has: `type`.
pub fn predicate_base() -> ConfigDef {
    ConfigDef::new().define(key(
        "type",
        ConfigType::Class,
        Default::Required,
        Importance::High,
        "Class for the 'predicates' predicate.",
    ))
}

/// The SMT's own keys, by its simple name (without `$Key`/`$Value`).
pub fn transform_def(simple_name: &str) -> Option<ConfigDef> {
    Some(match simple_name {
        "InsertHeader" => InsertHeader::config_def(),
        "DropHeaders" => DropHeaders::config_def(),
        "Filter" => Filter::config_def(),
        "RegexRouter" => RegexRouter::config_def(),
        "TimestampRouter" => TimestampRouter::config_def(),
        "ValueToKey" => ValueToKey::config_def(),
        "ExtractField" => ExtractField::config_def(),
        "HoistField" => HoistField::config_def(),
        "InsertField" => InsertField::config_def(),
        "ReplaceField" => ReplaceField::config_def(),
        "MaskField" => MaskField::config_def(),
        "SetSchemaMetadata" => SetSchemaMetadata::config_def(),
        "Flatten" => Flatten::config_def(),
        "HeaderFrom" => HeaderFrom::config_def(),
        "Cast" => Cast::config_def(),
        "TimestampConverter" => TimestampConverter::config_def(),
        _ => return None,
    })
}

/// The predicate's own keys, by its simple name.
pub fn predicate_def(simple_name: &str) -> Option<ConfigDef> {
    Some(match simple_name {
        "TopicNameMatches" => TopicNameMatches::config_def(),
        "HasHeaderKey" => HasHeaderKey::config_def(),
        "RecordIsTombstone" => RecordIsTombstone::config_def(),
        _ => return None,
    })
}
