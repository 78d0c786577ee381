//! The config keys of each SMT and predicate, for validation
//! (`PUT /connector-plugins/{plugin}/config/validate`), plus the keys Kafka
//! Connect adds to every transform and predicate alias.

use weir_api::config::{ConfigDef, ConfigKey, ConfigType, Default, Importance, Validator};

fn key(
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

/// The SMTs that have KIP-1040's `replace.null.with.default`.
const REPLACES_NULLS: [&str; 9] = [
    "Cast",
    "ExtractField",
    "HeaderFrom",
    "InsertField",
    "MaskField",
    "ReplaceField",
    "SetSchemaMetadata",
    "TimestampConverter",
    "ValueToKey",
];

/// The SMT's own keys, by its simple name (without `$Key`/`$Value`).
pub fn transform_def(simple_name: &str) -> Option<ConfigDef> {
    let def = own_keys(simple_name)?;
    Some(if REPLACES_NULLS.contains(&simple_name) {
        def.define(key(
            "replace.null.with.default",
            ConfigType::Boolean,
            Default::Value("true"),
            Importance::Medium,
            "Whether to replace fields that have a default value and that are null to the default value. When set to true, the default value is used, otherwise null is used.",
        ))
    } else {
        def
    })
}

fn own_keys(simple_name: &str) -> Option<ConfigDef> {
    use ConfigType::*;
    use Importance::*;
    let def = ConfigDef::new();
    Some(match simple_name {
        "InsertHeader" => def
            .define(key("header", String, Default::Required, High, "The name of the header."))
            .define(key("value.literal", String, Default::Required, High, "The literal value that is to be set as the header value on all records.")),
        "DropHeaders" => def.define(key("headers", List, Default::Required, High, "The name of the headers to be removed.")),
        "Filter" => def,
        "RegexRouter" => def
            .define(key("regex", String, Default::Required, High, "Regular expression to use for matching."))
            .define(key("replacement", String, Default::Required, High, "Replacement string.")),
        "TimestampRouter" => def
            .define(key("topic.format", String, Default::Value("${topic}-${timestamp}"), High, "Format string which can contain ${topic} and ${timestamp} as placeholders for the topic and timestamp, respectively."))
            .define(key("timestamp.format", String, Default::Value("yyyyMMdd"), High, "Format string for the timestamp that is compatible with java.text.SimpleDateFormat.")),
        "ValueToKey" => def.define(key("fields", List, Default::Required, High, "Field names on the record value to extract as the record key.")),
        "ExtractField" => def
            .define(key("field", String, Default::Required, Medium, "Field name to extract."))
            .define(
                key("field.syntax.version", String, Default::Value("V1"), High, "Defines the version of the syntax to access fields. If set to `V1`, then the field paths are limited to access the elements at the root level of the struct or map. If set to `V2`, the syntax will support accessing nested elements.")
                    .validator(Validator::OneOf(&["V1", "V2"])),
            ),
        "HoistField" => def.define(key("field", String, Default::Required, Medium, "Field name for the single field that will be created in the resulting Struct or Map.")),
        "InsertField" => def
            .define(key("topic.field", String, Default::Null, Medium, "Field name for Kafka topic. Suffix with ! to make this a required field, or ? to keep it optional (the default)."))
            .define(key("partition.field", String, Default::Null, Medium, "Field name for Kafka partition. Suffix with ! to make this a required field, or ? to keep it optional (the default)."))
            .define(key("offset.field", String, Default::Null, Medium, "Field name for Kafka offset - only applicable to sink connectors. Suffix with ! to make this a required field, or ? to keep it optional (the default)."))
            .define(key("timestamp.field", String, Default::Null, Medium, "Field name for record timestamp. Suffix with ! to make this a required field, or ? to keep it optional (the default)."))
            .define(key("static.field", String, Default::Null, Medium, "Field name for static data field. Suffix with ! to make this a required field, or ? to keep it optional (the default)."))
            .define(key("static.value", String, Default::Null, Medium, "Static field value, if field name configured.")),
        "ReplaceField" => def
            .define(key("exclude", List, Default::Value(""), Medium, "Fields to exclude. This takes precedence over the fields to include."))
            .define(key("include", List, Default::Value(""), Medium, "Fields to include. If specified, only these fields will be used."))
            .define(key("renames", List, Default::Value(""), Medium, "Field rename mappings.")),
        "MaskField" => def
            .define(key("fields", List, Default::Required, High, "Names of fields to mask."))
            .define(key("replacement", String, Default::Null, Low, "Custom value replacement, that will be applied to all 'fields' values (numeric or non-empty string values only).")),
        "SetSchemaMetadata" => def
            .define(key("schema.name", String, Default::Null, High, "Schema name to set."))
            .define(key("schema.version", Int, Default::Null, High, "Schema version to set.")),
        "Flatten" => def.define(key("delimiter", String, Default::Value("."), Medium, "Delimiter to insert between field names from the input record when generating field names for the output record")),
        "HeaderFrom" => def
            .define(key("fields", List, Default::Required, High, "Field names in the record whose values are to be copied or moved to headers."))
            .define(key("headers", List, Default::Required, High, "Header names, in the same order as the field names listed in the fields configuration property."))
            .define(key("operation", String, Default::Required, High, "Either move if the fields are to be moved to the headers (removed from the key/value), or copy if the fields are to be copied to the headers (retained in the key/value).").validator(Validator::OneOf(&["move", "copy"]))),
        "Cast" => def.define(key("spec", List, Default::Required, High, "List of fields and the type to cast them to of the form field1:type,field2:type to cast fields of Maps or Structs. A single type to cast the entire value.")),
        "TimestampConverter" => def
            .define(key("field", String, Default::Value(""), High, "The field containing the timestamp, or empty if the entire value is a timestamp"))
            .define(key("target.type", String, Default::Required, High, "The desired timestamp representation: string, unix, Date, Time, or Timestamp").validator(Validator::OneOf(&["string", "unix", "Date", "Time", "Timestamp"])))
            .define(key("format", String, Default::Value(""), Medium, "A SimpleDateFormat-compatible format for the timestamp. Used to generate the output when type=string or used to parse the input if the input is a string."))
            .define(key("unix.precision", String, Default::Value("milliseconds"), Low, "The desired Unix precision for the timestamp: seconds, milliseconds, microseconds, or nanoseconds.").validator(Validator::OneOf(&["nanoseconds", "microseconds", "milliseconds", "seconds"]))),
        _ => return None,
    })
}

/// The predicate's own keys, by its simple name.
pub fn predicate_def(simple_name: &str) -> Option<ConfigDef> {
    let def = ConfigDef::new();
    Some(match simple_name {
        "TopicNameMatches" => def.define(key(
            "pattern",
            ConfigType::String,
            Default::Required,
            Importance::Medium,
            "A Java regular expression for matching against the name of a record's topic.",
        )),
        "HasHeaderKey" => def.define(key(
            "name",
            ConfigType::String,
            Default::Required,
            Importance::Medium,
            "The header name.",
        )),
        "RecordIsTombstone" => def,
        _ => return None,
    })
}
