//! Time SMTs: `TimestampRouter` and `TimestampConverter$Key/$Value`, with
//! the subset of Java's `SimpleDateFormat` patterns they need (`y M d H m s
//! S`, quoted literals, and `Z`/`X` for UTC), always in UTC.

use super::{
    ConnectRecord, Part, REPLACE_NULL_WITH_DEFAULT, Result, TransformError, Transformation,
    apply_defaults, key, replace_null_with_default_key,
};
use weir_api::config::{ConfigDef, ConfigMap, ConfigType, Default, Importance, Validator};
use weir_api::data::{Schema, SchemaAndValue, SchemaType, Value};

pub const DATE_LOGICAL: &str = "org.apache.kafka.connect.data.Date";
pub const TIME_LOGICAL: &str = "org.apache.kafka.connect.data.Time";
pub const TIMESTAMP_LOGICAL: &str = "org.apache.kafka.connect.data.Timestamp";
const MILLIS_PER_DAY: i64 = 86_400_000;

/// Days since 1970-01-01 → (year, month, day), proleptic Gregorian.
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// (year, month, day) → days since 1970-01-01.
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let yoe = year.rem_euclid(400);
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[derive(Debug, Clone, PartialEq)]
enum Token {
    Field(char, usize),
    Literal(String),
}

/// Splits a `SimpleDateFormat` pattern into fields and literals.
fn tokenize(pattern: &str) -> Result<Vec<Token>, String> {
    let mut tokens = Vec::new();
    let mut chars = pattern.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\'' {
            let mut literal = String::new();
            loop {
                match chars.next() {
                    Some('\'') if chars.peek() == Some(&'\'') => {
                        chars.next();
                        literal.push('\'');
                    }
                    Some('\'') => break,
                    Some(other) => literal.push(other),
                    None => return Err(format!("Unterminated quote in date format {pattern}")),
                }
            }
            if literal.is_empty() {
                literal.push('\'');
            }
            tokens.push(Token::Literal(literal));
        } else if c.is_ascii_alphabetic() {
            if !"yMdHmsSZX".contains(c) {
                return Err(format!(
                    "Unsupported pattern letter '{c}' in date format {pattern}"
                ));
            }
            let mut width = 1;
            while chars.peek() == Some(&c) {
                chars.next();
                width += 1;
            }
            tokens.push(Token::Field(c, width));
        } else {
            tokens.push(Token::Literal(c.to_string()));
        }
    }
    Ok(tokens)
}

/// `SimpleDateFormat`'s reading of `yy`: the year within 80 years before
/// and 20 years after now.
fn two_digit_year(two_digits: i64) -> i64 {
    let now_days = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64 / 86_400);
    let (this_year, _, _) = civil_from_days(now_days);
    let start = this_year - 80;
    let mut year = start - start.rem_euclid(100) + two_digits;
    if year < start {
        year += 100;
    }
    year
}

/// A `SimpleDateFormat` pattern, in UTC.
#[derive(Debug, Clone, PartialEq)]
pub struct DateFormat {
    tokens: Vec<Token>,
}

impl DateFormat {
    pub fn new(pattern: &str) -> Result<Self, String> {
        Ok(DateFormat {
            tokens: tokenize(pattern)?,
        })
    }

    pub fn format(&self, millis: i64) -> String {
        let days = millis.div_euclid(MILLIS_PER_DAY);
        let in_day = millis.rem_euclid(MILLIS_PER_DAY);
        let (year, month, day) = civil_from_days(days);
        let mut out = String::new();
        for token in &self.tokens {
            match token {
                Token::Literal(text) => out.push_str(text),
                Token::Field('y', 2) => out.push_str(&format!("{:02}", year.rem_euclid(100))),
                Token::Field('y', w) => out.push_str(&format!("{year:0w$}")),
                Token::Field('M', w) => out.push_str(&format!("{month:0w$}")),
                Token::Field('d', w) => out.push_str(&format!("{day:0w$}")),
                Token::Field('H', w) => out.push_str(&format!("{:0w$}", in_day / 3_600_000)),
                Token::Field('m', w) => out.push_str(&format!("{:0w$}", in_day / 60_000 % 60)),
                Token::Field('s', w) => out.push_str(&format!("{:0w$}", in_day / 1000 % 60)),
                Token::Field('S', w) => out.push_str(&format!("{:0w$}", in_day % 1000)),
                Token::Field('Z', _) => out.push_str("+0000"),
                Token::Field('X', _) => out.push('Z'),
                Token::Field(_, _) => {}
            }
        }
        out
    }

    pub fn parse(&self, text: &str) -> Result<i64, String> {
        let unparseable = || format!("Unparseable date: \"{text}\"");
        let (mut year, mut month, mut day, mut hour, mut minute, mut second, mut milli) =
            (1970, 1, 1, 0, 0, 0, 0);
        let mut rest = text;
        for (index, token) in self.tokens.iter().enumerate() {
            match token {
                Token::Literal(literal) => {
                    rest = rest
                        .strip_prefix(literal.as_str())
                        .ok_or_else(unparseable)?
                }
                Token::Field('Z' | 'X', _) => {
                    rest = rest
                        .strip_prefix('Z')
                        .or_else(|| rest.strip_prefix("+0000"))
                        .or_else(|| rest.strip_prefix("+00:00"))
                        .ok_or_else(unparseable)?;
                }
                Token::Field(letter, width) => {
                    // Adjacent numeric fields take exactly their width; the last may be longer.
                    let next_is_field =
                        matches!(self.tokens.get(index + 1), Some(Token::Field(_, _)));
                    let digits = rest.chars().take_while(char::is_ascii_digit).count();
                    let take = if next_is_field {
                        (*width).min(digits)
                    } else {
                        digits
                    };
                    if take == 0 {
                        return Err(unparseable());
                    }
                    let number: i64 = rest[..take].parse().map_err(|_| unparseable())?;
                    rest = &rest[take..];
                    match letter {
                        'y' if *width == 2 && take == 2 => year = two_digit_year(number),
                        'y' => year = number,
                        'M' => month = number,
                        'd' => day = number,
                        'H' => hour = number,
                        'm' => minute = number,
                        's' => second = number,
                        _ => milli = number,
                    }
                }
            }
        }
        if !(1..=12).contains(&month) || !(1..=31).contains(&day) {
            return Err(unparseable());
        }
        Ok(days_from_civil(year, month, day) * MILLIS_PER_DAY
            + ((hour * 60 + minute) * 60 + second) * 1000
            + milli)
    }
}

/// Renames the topic by a pattern of `${topic}` and `${timestamp}`.
#[derive(Debug, Clone, PartialEq)]
pub struct TimestampRouter {
    topic_format: String,
    timestamp_format: DateFormat,
}

impl TimestampRouter {
    pub fn config_def() -> ConfigDef {
        ConfigDef::new()
            .define(key(
                "topic.format",
                ConfigType::String,
                Default::Value("${topic}-${timestamp}"),
                Importance::High,
                "Format string which can contain ${topic} and ${timestamp} as placeholders for the topic and timestamp, respectively.",
            ))
            .define(key(
                "timestamp.format",
                ConfigType::String,
                Default::Value("yyyyMMdd"),
                Importance::High,
                "Format string for the timestamp that is compatible with java.text.SimpleDateFormat.",
            ))
    }

    pub fn configure(settings: &ConfigMap) -> Result<Self, String> {
        let def = Self::config_def();
        let config = def.parse(settings)?;
        Ok(TimestampRouter {
            topic_format: config.string("topic.format")?.to_owned(),
            timestamp_format: DateFormat::new(config.string("timestamp.format")?)?,
        })
    }
}

impl Transformation for TimestampRouter {
    fn apply(&self, mut record: ConnectRecord) -> Result<Option<ConnectRecord>> {
        let timestamp = record.timestamp_ms.ok_or_else(|| {
            TransformError(format!(
                "Timestamp missing on record: topic={}",
                record.topic
            ))
        })?;
        record.topic = self
            .topic_format
            .replace("${topic}", &record.topic)
            .replace("${timestamp}", &self.timestamp_format.format(timestamp))
            .into();
        Ok(Some(record))
    }
}

/// The representations `TimestampConverter` converts between.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TimeType {
    String,
    Unix,
    Date,
    Time,
    Timestamp,
}

impl TimeType {
    const ALL: [TimeType; 5] = [
        TimeType::String,
        TimeType::Unix,
        TimeType::Date,
        TimeType::Time,
        TimeType::Timestamp,
    ];
    /// Their `target.type` names, in the order of [`Self::ALL`].
    const NAMES: [&'static str; 5] = ["string", "unix", "Date", "Time", "Timestamp"];

    fn named(name: &str) -> Option<TimeType> {
        Self::NAMES
            .into_iter()
            .zip(Self::ALL)
            .find_map(|(known, time_type)| (known == name.trim()).then_some(time_type))
    }

    fn of_schema(schema: &Schema) -> Option<TimeType> {
        match (schema.name.as_deref(), schema.schema_type) {
            (Some(DATE_LOGICAL), _) => Some(TimeType::Date),
            (Some(TIME_LOGICAL), _) => Some(TimeType::Time),
            (Some(TIMESTAMP_LOGICAL), _) => Some(TimeType::Timestamp),
            (_, SchemaType::String) => Some(TimeType::String),
            (_, SchemaType::Int64) => Some(TimeType::Unix),
            _ => None,
        }
    }

    fn schema(self, optional: bool) -> Schema {
        let mut schema = match self {
            TimeType::String => Schema::string(),
            TimeType::Unix => Schema::new(SchemaType::Int64),
            TimeType::Date | TimeType::Time => Schema::new(SchemaType::Int32),
            TimeType::Timestamp => Schema::new(SchemaType::Int64),
        };
        schema.name = match self {
            TimeType::Date => Some(DATE_LOGICAL.into()),
            TimeType::Time => Some(TIME_LOGICAL.into()),
            TimeType::Timestamp => Some(TIMESTAMP_LOGICAL.into()),
            _ => None,
        };
        if schema.name.is_some() {
            schema.version = Some(1);
        }
        schema.optional = optional;
        schema
    }
}

/// Converts a timestamp between string, unix epoch, and the Date / Time /
/// Timestamp logical types, for the whole key/value or one field.
#[derive(Debug, Clone, PartialEq)]
pub struct TimestampConverter {
    part: Part,
    replace_null: bool,
    field: String,
    target: TimeType,
    format: Option<DateFormat>,
    /// Units of a unix timestamp per millisecond, as (multiply, divide).
    precision: (i64, i64),
}

/// `unix.precision`'s values, and in the same order the units of each per
/// millisecond, as (multiply, divide).
const UNIX_PRECISIONS: [&str; 4] = ["nanoseconds", "microseconds", "milliseconds", "seconds"];
const UNITS_PER_MILLI: [(i64, i64); 4] = [(1_000_000, 1), (1000, 1), (1, 1), (1, 1000)];

impl TimestampConverter {
    pub fn config_def() -> ConfigDef {
        ConfigDef::new()
            .define(key(
                "field",
                ConfigType::String,
                Default::Value(""),
                Importance::High,
                "The field containing the timestamp, or empty if the entire value is a timestamp",
            ))
            .define(
                key(
                    "target.type",
                    ConfigType::String,
                    Default::Required,
                    Importance::High,
                    "The desired timestamp representation: string, unix, Date, Time, or Timestamp",
                )
                .validator(Validator::OneOfMatchingCase(&TimeType::NAMES)),
            )
            .define(key(
                "format",
                ConfigType::String,
                Default::Value(""),
                Importance::Medium,
                "A SimpleDateFormat-compatible format for the timestamp. Used to generate the output when type=string or used to parse the input if the input is a string.",
            ))
            .define(
                key(
                    "unix.precision",
                    ConfigType::String,
                    // milliseconds
                    Default::Value(UNIX_PRECISIONS[2]),
                    Importance::Low,
                    "The desired Unix precision for the timestamp: seconds, milliseconds, microseconds, or nanoseconds.",
                )
                .validator(Validator::OneOfMatchingCase(&UNIX_PRECISIONS)),
            )
            .define(replace_null_with_default_key())
    }

    pub fn configure(part: Part, settings: &ConfigMap) -> Result<Self, String> {
        let def = Self::config_def();
        let config = def.parse(settings)?;
        // The definition allows only the names these look up.
        let target_name = config.string("target.type")?;
        let target = TimeType::named(target_name)
            .ok_or_else(|| format!("Unknown target.type {target_name}"))?;
        let precision_name = config.string("unix.precision")?;
        let precision = UNIX_PRECISIONS
            .into_iter()
            .zip(UNITS_PER_MILLI)
            .find_map(|(known, units)| (known == precision_name.trim()).then_some(units))
            .ok_or_else(|| format!("Unknown unix.precision {precision_name}"))?;
        let format = match config.string("format")? {
            "" if target == TimeType::String => {
                return Err("TimestampConverter requires format option to be specified when using string timestamps".into());
            }
            "" => None,
            pattern => Some(DateFormat::new(pattern)?),
        };
        Ok(TimestampConverter {
            replace_null: config.boolean(REPLACE_NULL_WITH_DEFAULT)?,
            part,
            field: config.string("field")?.to_owned(),
            target,
            format,
            precision,
        })
    }

    fn to_millis(&self, from: TimeType, value: &Value) -> Result<i64> {
        let bad = || TransformError(format!("Expected a {from:?} timestamp, found {value:?}"));
        Ok(match (from, value) {
            (TimeType::String, Value::String(text)) => self
                .format
                .as_ref()
                .ok_or_else(|| TransformError("TimestampConverter requires format option to be specified when using string timestamps".into()))?
                .parse(text)
                .map_err(TransformError)?,
            (TimeType::Unix, Value::Int64(units)) => units * self.precision.1 / self.precision.0,
            (TimeType::Date, Value::Int32(days)) => i64::from(*days) * MILLIS_PER_DAY,
            (TimeType::Time, Value::Int32(ms)) => i64::from(*ms),
            (TimeType::Timestamp, Value::Int64(ms)) => *ms,
            _ => return Err(bad()),
        })
    }

    fn render(&self, millis: i64) -> Result<Value> {
        Ok(match self.target {
            TimeType::String => Value::String(
                self.format
                    .as_ref()
                    .map(|f| f.format(millis))
                    .unwrap_or_default(),
            ),
            TimeType::Unix => Value::Int64(millis * self.precision.0 / self.precision.1),
            TimeType::Date => Value::Int32(
                i32::try_from(millis.div_euclid(MILLIS_PER_DAY))
                    .map_err(|_| TransformError("date out of range".into()))?,
            ),
            TimeType::Time => Value::Int32(millis.rem_euclid(MILLIS_PER_DAY) as i32),
            TimeType::Timestamp => Value::Int64(millis),
        })
    }

    fn convert(&self, schema: Option<&Schema>, value: &Value) -> Result<(Option<Schema>, Value)> {
        let optional = schema.is_some_and(|s| s.optional);
        let from = match schema {
            Some(schema) => TimeType::of_schema(schema).ok_or_else(|| {
                TransformError(format!(
                    "Schema {:?} does not correspond to a known timestamp type format",
                    schema.schema_type
                ))
            })?,
            None => match value {
                Value::String(_) => TimeType::String,
                Value::Int64(_) => TimeType::Unix,
                _ => {
                    return Err(TransformError(format!(
                        "TimestampConverter does not support {value:?} objects as timestamps"
                    )));
                }
            },
        };
        let converted = if value.is_null() {
            Value::Null
        } else {
            self.render(self.to_millis(from, value)?)?
        };
        Ok((schema.map(|_| self.target.schema(optional)), converted))
    }
}

impl Transformation for TimestampConverter {
    fn apply(&self, mut record: ConnectRecord) -> Result<Option<ConnectRecord>> {
        if self.part.get(&record).value.is_null() {
            return Ok(Some(record));
        }
        let data = apply_defaults(self.replace_null, self.part.take(&mut record));
        let converted = if self.field.is_empty() {
            let (schema, value) = self.convert(data.schema.as_deref(), &data.value)?;
            SchemaAndValue {
                schema: schema.map(Into::into),
                value,
            }
        } else {
            match (data.schema, data.value) {
                (Some(mut schema), Value::Struct(mut fields)) => {
                    let field = std::sync::Arc::make_mut(&mut schema)
                        .fields
                        .iter_mut()
                        .find(|f| f.name == self.field)
                        .ok_or_else(|| TransformError(format!("Unknown field: {}", self.field)))?;
                    let slot = fields.iter_mut().find(|(n, _)| *n == self.field);
                    let current = slot.as_ref().map_or(Value::Null, |(_, v)| v.clone());
                    let (new_schema, new_value) = self.convert(Some(&field.schema), &current)?;
                    if let Some(new_schema) = new_schema {
                        field.schema = new_schema;
                    }
                    if let Some((_, v)) = slot {
                        *v = new_value;
                    }
                    SchemaAndValue {
                        schema: Some(schema),
                        value: Value::Struct(fields),
                    }
                }
                (None, Value::Map(mut entries)) => {
                    if let Some((_, v)) = entries
                        .iter_mut()
                        .find(|(k, _)| matches!(k, Value::String(s) if *s == self.field))
                    {
                        *v = self.convert(None, v)?.1;
                    }
                    SchemaAndValue {
                        schema: None,
                        value: Value::Map(entries),
                    }
                }
                (_, other) => {
                    return Err(TransformError(format!(
                        "Only Struct or Map values can have field {} converted, found {other:?}",
                        self.field
                    )));
                }
            }
        };
        self.part.set(&mut record, converted);
        Ok(Some(record))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tests::{config, record, text};
    use weir_api::data::Field;

    // 2023-11-14T22:13:20.000Z
    const MILLIS: i64 = 1_700_000_000_000;

    #[test]
    fn civil_dates_round_trip() {
        for days in [-719_468, -1, 0, 1, 10_957, 19_675, 2_932_896] {
            let (y, m, d) = civil_from_days(days);
            assert_eq!(days_from_civil(y, m, d), days, "{y}-{m}-{d}");
        }
        assert_eq!(civil_from_days(19_675), (2023, 11, 14));
    }

    #[test]
    fn simple_date_format_subset() {
        let cases = [
            ("yyyyMMdd", "20231114"),
            ("yyyy-MM-dd HH:mm:ss.SSS", "2023-11-14 22:13:20.000"),
            ("yyyy-MM-dd'T'HH:mm:ssX", "2023-11-14T22:13:20Z"),
            ("yy/M/d", "23/11/14"),
            ("'day' D", ""),
        ];
        for (pattern, expected) in cases {
            match DateFormat::new(pattern) {
                Ok(format) => {
                    assert_eq!(format.format(MILLIS), expected, "{pattern}");
                    assert_eq!(
                        format.parse(expected).unwrap(),
                        MILLIS - MILLIS % format_granularity(pattern),
                        "{pattern}"
                    );
                }
                Err(error) => assert!(
                    expected.is_empty() && error.contains("'D'"),
                    "{pattern}: {error}"
                ),
            }
        }
        assert!(DateFormat::new("yyyy").unwrap().parse("twenty").is_err());
    }

    fn format_granularity(pattern: &str) -> i64 {
        if pattern.contains('S') {
            1
        } else if pattern.contains('s') {
            1000
        } else {
            MILLIS_PER_DAY
        }
    }

    #[test]
    fn timestamp_router_defaults_and_formats() {
        let default = TimestampRouter::configure(&config(&[])).unwrap();
        assert_eq!(
            default
                .apply(record("orders", text("v")))
                .unwrap()
                .unwrap()
                .topic,
            "orders-20231114"
        );
        let custom = TimestampRouter::configure(&config(&[
            ("topic.format", "${timestamp}.${topic}"),
            ("timestamp.format", "yyyy-MM"),
        ]))
        .unwrap();
        assert_eq!(
            custom
                .apply(record("orders", text("v")))
                .unwrap()
                .unwrap()
                .topic,
            "2023-11.orders"
        );
        let mut untimed = record("orders", text("v"));
        untimed.timestamp_ms = None;
        assert!(
            default
                .apply(untimed)
                .unwrap_err()
                .0
                .starts_with("Timestamp missing on record")
        );
    }

    fn timestamp(ms: i64) -> SchemaAndValue {
        SchemaAndValue {
            schema: Some(TimeType::Timestamp.schema(false).into()),
            value: Value::Int64(ms),
        }
    }

    #[test]
    fn timestamp_converter_whole_value_table() {
        type Case = (
            &'static [(&'static str, &'static str)],
            SchemaAndValue,
            SchemaAndValue,
        );
        let cases: [Case; 6] = [
            (
                &[("target.type", "string"), ("format", "yyyy-MM-dd")],
                timestamp(MILLIS),
                SchemaAndValue {
                    schema: Some(Schema::string().into()),
                    value: Value::String("2023-11-14".into()),
                },
            ),
            (
                &[("target.type", "unix")],
                timestamp(MILLIS),
                SchemaAndValue {
                    schema: Some(Schema::new(SchemaType::Int64).into()),
                    value: Value::Int64(MILLIS),
                },
            ),
            (
                &[("target.type", "unix"), ("unix.precision", "seconds")],
                timestamp(MILLIS),
                SchemaAndValue {
                    schema: Some(Schema::new(SchemaType::Int64).into()),
                    value: Value::Int64(MILLIS / 1000),
                },
            ),
            (
                &[("target.type", "Date")],
                timestamp(MILLIS),
                SchemaAndValue {
                    schema: Some(TimeType::Date.schema(false).into()),
                    value: Value::Int32(19_675),
                },
            ),
            (
                &[("target.type", "Time")],
                timestamp(MILLIS),
                SchemaAndValue {
                    schema: Some(TimeType::Time.schema(false).into()),
                    value: Value::Int32(80_000_000),
                },
            ),
            (
                &[
                    ("target.type", "Timestamp"),
                    ("format", "yyyy-MM-dd HH:mm:ss"),
                ],
                text("2023-11-14 22:13:20"),
                timestamp(MILLIS),
            ),
        ];
        for (settings, input, expected) in cases {
            let smt = TimestampConverter::configure(Part::Value, &config(settings)).unwrap();
            assert_eq!(
                smt.apply(record("t", input)).unwrap().unwrap().value,
                expected,
                "{settings:?}"
            );
        }
        // Schemaless: a unix long becomes a formatted string.
        let smt = TimestampConverter::configure(
            Part::Value,
            &config(&[("target.type", "string"), ("format", "yyyy/MM/dd")]),
        )
        .unwrap();
        let out = smt
            .apply(record(
                "t",
                SchemaAndValue {
                    schema: None,
                    value: Value::Int64(MILLIS),
                },
            ))
            .unwrap()
            .unwrap();
        assert_eq!(
            out.value,
            SchemaAndValue {
                schema: None,
                value: Value::String("2023/11/14".into())
            }
        );
        assert!(
            TimestampConverter::configure(Part::Value, &config(&[("target.type", "string")]))
                .is_err()
        );
        assert!(
            TimestampConverter::configure(Part::Value, &config(&[("target.type", "Century")]))
                .is_err()
        );
    }

    #[test]
    fn timestamp_converter_field() {
        let mut schema = Schema::new(SchemaType::Struct);
        schema.fields = vec![
            Field {
                name: "at".into(),
                schema: Schema::new(SchemaType::Int64),
            },
            Field {
                name: "id".into(),
                schema: Schema::string(),
            },
        ];
        let value = Value::Struct(vec![
            ("at".into(), Value::Int64(MILLIS)),
            ("id".into(), Value::String("x".into())),
        ]);
        let smt = TimestampConverter::configure(
            Part::Value,
            &config(&[("field", "at"), ("target.type", "Timestamp")]),
        )
        .unwrap();
        let out = smt
            .apply(record(
                "t",
                SchemaAndValue {
                    schema: Some(schema.into()),
                    value,
                },
            ))
            .unwrap()
            .unwrap();
        let out_schema = out.value.schema.unwrap();
        assert_eq!(
            out_schema.field("at").unwrap().schema.name.as_deref(),
            Some(TIMESTAMP_LOGICAL)
        );
        assert_eq!(
            out.value.value,
            Value::Struct(vec![
                ("at".into(), Value::Int64(MILLIS)),
                ("id".into(), Value::String("x".into()))
            ])
        );
    }
}
