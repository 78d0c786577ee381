//! Record batches encoded straight into connector protocol v2 bytes.
//!
//! The hot messages of a task stream (a sink's `Put`, a source's `Batch`)
//! are written here field by field, byte for byte what prost writes for the
//! same message built with [`crate::wire`], without building that message
//! first. Building it costs a copy of every string and byte value, a fresh
//! schema per record, and prost's length pass at every nesting level; on the
//! sidecar paths that was the larger part of the runner's CPU. A schema seen
//! in the last few records is encoded once and its bytes reused
//! ([`SchemaCache`]). Values that are not primitives (structs, arrays, maps)
//! go through [`crate::wire`] as before.
//!
//! [`PreEncoded`] is the tonic codec that sends such bytes as they are and
//! decodes what comes back with prost.

use std::marker::PhantomData;
use std::sync::Arc;

use bytes::{BufMut, Bytes};
use prost::Message;
use prost::encoding::{WireType, encode_key, encode_varint, encoded_len_varint, key_len};
use tonic::Status;
use tonic::codec::{BufferSettings, Codec, DecodeBuf, Decoder, EncodeBuf, Encoder};
use weir_proto::connector::v2 as pb;

use crate::wire;
use weir_api::api::{Header, JsonMap, SinkRecord, SourceOffset, SourceRecord, Topic, TopicNames};
use weir_api::data::{Schema, SchemaAndValue, SchemaRef, Value};

/// Tags of the messages written here, as in `connector.proto`.
mod tag {
    pub const SINK_COMMAND_PUT: u32 = 4;
    pub const PUT_ID: u32 = 1;
    pub const PUT_RECORDS: u32 = 2;
    pub const SINK_TOPIC: u32 = 1;
    pub const SINK_PARTITION: u32 = 2;
    pub const SINK_OFFSET: u32 = 3;
    pub const SINK_KEY: u32 = 4;
    pub const SINK_VALUE: u32 = 5;
    pub const SINK_TIMESTAMP: u32 = 6;
    pub const SINK_HEADERS: u32 = 7;
    pub const SOURCE_EVENT_BATCH: u32 = 2;
    pub const BATCH_RECORDS: u32 = 1;
    pub const SOURCE_PARTITION_JSON: u32 = 1;
    pub const SOURCE_OFFSET_JSON: u32 = 2;
    pub const SOURCE_TOPIC: u32 = 3;
    pub const SOURCE_KAFKA_PARTITION: u32 = 4;
    pub const SOURCE_KEY: u32 = 5;
    pub const SOURCE_VALUE: u32 = 6;
    pub const SOURCE_TIMESTAMP: u32 = 7;
    pub const SOURCE_HEADERS: u32 = 8;
    pub const HEADER_KEY: u32 = 1;
    pub const HEADER_VALUE: u32 = 2;
    pub const DATA_STRUCTURED: u32 = 1;
    pub const STRUCTURED_SCHEMA: u32 = 1;
    pub const STRUCTURED_VALUE: u32 = 2;
    pub const VALUE_NULL: u32 = 1;
    pub const VALUE_INT: u32 = 2;
    pub const VALUE_FLOAT: u32 = 3;
    pub const VALUE_BOOLEAN: u32 = 4;
    pub const VALUE_STRING: u32 = 5;
    pub const VALUE_BYTES: u32 = 6;
}

/// How many distinct schemas a stream keeps encoded: a key schema, a value
/// schema and a header's, with room for a topic or two more.
const CACHED_SCHEMAS: usize = 8;

/// The encoded bytes of the schemas a stream sent last, so that records
/// sharing a schema (nearly all of a batch) encode it once. One per stream.
#[derive(Default)]
pub struct SchemaCache {
    entries: Vec<(SchemaRef, Bytes)>,
}

impl SchemaCache {
    fn encoded(&mut self, schema: &SchemaRef) -> Bytes {
        if let Some((_, bytes)) = self
            .entries
            .iter()
            .find(|(known, _)| Arc::ptr_eq(known, schema) || known == schema)
        {
            return bytes.clone();
        }
        let bytes = Bytes::from(wire::schema_to_wire(schema).encode_to_vec());
        if self.entries.len() == CACHED_SCHEMAS {
            self.entries.remove(0);
        }
        self.entries.push((schema.clone(), bytes.clone()));
        bytes
    }
}

/// A value's kind and its encoded body length, or the wire message for the
/// ones that are not primitives.
enum ValuePlan {
    Null,
    Int(i64),
    Float(f64),
    Boolean(bool),
    Text(usize),
    Complex(pb::Value),
}

/// A `Data` message ready to write: its parts and their lengths.
struct DataPlan {
    schema: Option<Bytes>,
    value: ValuePlan,
    value_len: usize,
    structured_len: usize,
    len: usize,
}

fn plan_value(value: &Value) -> (ValuePlan, usize) {
    let plan = match value {
        Value::Null => ValuePlan::Null,
        Value::Int8(v) => ValuePlan::Int(i64::from(*v)),
        Value::Int16(v) => ValuePlan::Int(i64::from(*v)),
        Value::Int32(v) => ValuePlan::Int(i64::from(*v)),
        Value::Int64(v) => ValuePlan::Int(*v),
        Value::Float32(v) => ValuePlan::Float(f64::from(*v)),
        Value::Float64(v) => ValuePlan::Float(*v),
        Value::Boolean(v) => ValuePlan::Boolean(*v),
        Value::String(v) => ValuePlan::Text(v.len()),
        Value::Bytes(v) => ValuePlan::Text(v.len()),
        Value::Array(_) | Value::Map(_) | Value::Struct(_) => {
            let complex = wire::value_to_wire(value);
            let len = complex.encoded_len();
            return (ValuePlan::Complex(complex), len);
        }
    };
    // One key byte (tags below 16) and the field.
    let len = match &plan {
        ValuePlan::Null | ValuePlan::Boolean(_) => 2,
        ValuePlan::Int(v) => 1 + encoded_len_varint(*v as u64),
        ValuePlan::Float(_) => 9,
        ValuePlan::Text(n) => 1 + encoded_len_varint(*n as u64) + n,
        ValuePlan::Complex(_) => 0,
    };
    (plan, len)
}

fn nested_len(tag: u32, len: usize) -> usize {
    key_len(tag) + encoded_len_varint(len as u64) + len
}

/// The plan of a `Data` field, or none for a schemaless null (left off
/// the wire, as [`wire::present_data_to_wire`] does).
fn plan_data(data: &SchemaAndValue, schemas: &mut SchemaCache) -> Option<DataPlan> {
    if data.schema.is_none() && matches!(data.value, Value::Null) {
        return None;
    }
    let schema = data.schema.as_ref().map(|s| schemas.encoded(s));
    let (value, value_len) = plan_value(&data.value);
    let structured_len = schema
        .as_ref()
        .map_or(0, |s| nested_len(tag::STRUCTURED_SCHEMA, s.len()))
        + nested_len(tag::STRUCTURED_VALUE, value_len);
    Some(DataPlan {
        schema,
        value,
        value_len,
        structured_len,
        len: nested_len(tag::DATA_STRUCTURED, structured_len),
    })
}

fn put_nested_header(tag: u32, len: usize, out: &mut Vec<u8>) {
    encode_key(tag, WireType::LengthDelimited, out);
    encode_varint(len as u64, out);
}

fn put_text(tag: u32, text: &[u8], out: &mut Vec<u8>) {
    put_nested_header(tag, text.len(), out);
    out.put_slice(text);
}

fn write_value(plan: &ValuePlan, value: &Value, out: &mut Vec<u8>) {
    match plan {
        ValuePlan::Null => prost::encoding::bool::encode(tag::VALUE_NULL, &true, out),
        ValuePlan::Int(v) => prost::encoding::int64::encode(tag::VALUE_INT, v, out),
        ValuePlan::Float(v) => prost::encoding::double::encode(tag::VALUE_FLOAT, v, out),
        ValuePlan::Boolean(v) => prost::encoding::bool::encode(tag::VALUE_BOOLEAN, v, out),
        ValuePlan::Text(_) => match value {
            Value::String(text) => put_text(tag::VALUE_STRING, text.as_bytes(), out),
            Value::Bytes(bytes) => put_text(tag::VALUE_BYTES, bytes, out),
            _ => {}
        },
        ValuePlan::Complex(complex) => complex.encode_raw(out),
    }
}

fn write_data(field: u32, plan: &DataPlan, data: &SchemaAndValue, out: &mut Vec<u8>) {
    put_nested_header(field, plan.len, out);
    put_nested_header(tag::DATA_STRUCTURED, plan.structured_len, out);
    if let Some(schema) = &plan.schema {
        put_text(tag::STRUCTURED_SCHEMA, schema, out);
    }
    put_nested_header(tag::STRUCTURED_VALUE, plan.value_len, out);
    write_value(&plan.value, &data.value, out);
}

fn data_field_len(field: u32, plan: &Option<DataPlan>) -> usize {
    plan.as_ref().map_or(0, |p| nested_len(field, p.len))
}

fn string_field_len(field: u32, text: &str) -> usize {
    if text.is_empty() {
        0
    } else {
        nested_len(field, text.len())
    }
}

fn put_string_field(field: u32, text: &str, out: &mut Vec<u8>) {
    if !text.is_empty() {
        put_text(field, text.as_bytes(), out);
    }
}

/// The plans of one record's key, value and headers, and its length.
struct RecordPlan {
    key: Option<DataPlan>,
    value: Option<DataPlan>,
    headers: Vec<(Option<DataPlan>, usize)>,
    len: usize,
}

fn plan_headers(
    headers: &[Header],
    schemas: &mut SchemaCache,
) -> (Vec<(Option<DataPlan>, usize)>, usize) {
    let mut total = 0;
    let plans = headers
        .iter()
        .map(|header| {
            let value = plan_data(&header.value, schemas);
            let len = string_field_len(tag::HEADER_KEY, &header.key)
                + data_field_len(tag::HEADER_VALUE, &value);
            total += nested_len(tag::SINK_HEADERS, len);
            (value, len)
        })
        .collect();
    (plans, total)
}

fn write_headers(
    field: u32,
    headers: &[Header],
    plans: &[(Option<DataPlan>, usize)],
    out: &mut Vec<u8>,
) {
    for (header, (value, len)) in headers.iter().zip(plans) {
        put_nested_header(field, *len, out);
        put_string_field(tag::HEADER_KEY, &header.key, out);
        if let Some(value) = value {
            write_data(tag::HEADER_VALUE, value, &header.value, out);
        }
    }
}

fn plan_sink_record(record: &SinkRecord, schemas: &mut SchemaCache) -> RecordPlan {
    let key = plan_data(&record.key, schemas);
    let value = plan_data(&record.value, schemas);
    let (headers, headers_len) = plan_headers(&record.headers, schemas);
    let len = string_field_len(tag::SINK_TOPIC, &record.topic)
        + if record.partition != 0 {
            prost::encoding::int32::encoded_len(tag::SINK_PARTITION, &record.partition)
        } else {
            0
        }
        + if record.offset != 0 {
            prost::encoding::int64::encoded_len(tag::SINK_OFFSET, &record.offset)
        } else {
            0
        }
        + data_field_len(tag::SINK_KEY, &key)
        + data_field_len(tag::SINK_VALUE, &value)
        + record.timestamp_ms.map_or(0, |t| {
            prost::encoding::int64::encoded_len(tag::SINK_TIMESTAMP, &t)
        })
        + headers_len;
    RecordPlan {
        key,
        value,
        headers,
        len,
    }
}

fn write_sink_record(record: &SinkRecord, plan: &RecordPlan, out: &mut Vec<u8>) {
    put_nested_header(tag::PUT_RECORDS, plan.len, out);
    put_string_field(tag::SINK_TOPIC, &record.topic, out);
    if record.partition != 0 {
        prost::encoding::int32::encode(tag::SINK_PARTITION, &record.partition, out);
    }
    if record.offset != 0 {
        prost::encoding::int64::encode(tag::SINK_OFFSET, &record.offset, out);
    }
    if let Some(key) = &plan.key {
        write_data(tag::SINK_KEY, key, &record.key, out);
    }
    if let Some(value) = &plan.value {
        write_data(tag::SINK_VALUE, value, &record.value, out);
    }
    if let Some(t) = record.timestamp_ms {
        prost::encoding::int64::encode(tag::SINK_TIMESTAMP, &t, out);
    }
    write_headers(tag::SINK_HEADERS, &record.headers, &plan.headers, out);
}

/// `SinkCommand { put: Put { id, records } }`, encoded.
pub fn encode_sink_put(id: u64, records: &[SinkRecord], schemas: &mut SchemaCache) -> Bytes {
    let plans: Vec<RecordPlan> = records
        .iter()
        .map(|record| plan_sink_record(record, schemas))
        .collect();
    let put_len = if id != 0 {
        prost::encoding::uint64::encoded_len(tag::PUT_ID, &id)
    } else {
        0
    } + plans
        .iter()
        .map(|plan| nested_len(tag::PUT_RECORDS, plan.len))
        .sum::<usize>();
    let mut out = Vec::with_capacity(nested_len(tag::SINK_COMMAND_PUT, put_len));
    put_nested_header(tag::SINK_COMMAND_PUT, put_len, &mut out);
    if id != 0 {
        prost::encoding::uint64::encode(tag::PUT_ID, &id, &mut out);
    }
    for (record, plan) in records.iter().zip(&plans) {
        write_sink_record(record, plan, &mut out);
    }
    Bytes::from(out)
}

/// The JSON texts of a source record's partition and offset, shared by the
/// consecutive records of one partition as [`wire::source_records_to_wire`]
/// does.
struct SourcePlan {
    partition_json: std::rc::Rc<str>,
    offset_json: String,
    record: RecordPlan,
}

/// `SourceEvent { batch: SourceBatch { records } }`, encoded (a batch
/// without a transaction boundary).
pub fn encode_source_batch(records: &[SourceRecord], schemas: &mut SchemaCache) -> Bytes {
    let mut last: Option<(&std::sync::Arc<JsonMap>, std::rc::Rc<str>)> = None;
    let plans: Vec<SourcePlan> = records
        .iter()
        .map(|record| {
            let partition_json = match &last {
                Some((partition, json))
                    if std::sync::Arc::ptr_eq(partition, &record.source_partition) =>
                {
                    json.clone()
                }
                _ => {
                    let json: std::rc::Rc<str> = serde_json::to_string(&*record.source_partition)
                        .unwrap_or_default()
                        .into();
                    last = Some((&record.source_partition, json.clone()));
                    json
                }
            };
            let offset_json = serde_json::to_string(&record.source_offset).unwrap_or_default();
            let key = plan_data(&record.key, schemas);
            let value = plan_data(&record.value, schemas);
            let (headers, headers_len) = plan_headers(&record.headers, schemas);
            let len = string_field_len(tag::SOURCE_PARTITION_JSON, &partition_json)
                + string_field_len(tag::SOURCE_OFFSET_JSON, &offset_json)
                + string_field_len(tag::SOURCE_TOPIC, &record.topic)
                + record.kafka_partition.map_or(0, |p| {
                    prost::encoding::int32::encoded_len(tag::SOURCE_KAFKA_PARTITION, &p)
                })
                + data_field_len(tag::SOURCE_KEY, &key)
                + data_field_len(tag::SOURCE_VALUE, &value)
                + record.timestamp_ms.map_or(0, |t| {
                    prost::encoding::int64::encoded_len(tag::SOURCE_TIMESTAMP, &t)
                })
                + headers_len;
            SourcePlan {
                partition_json,
                offset_json,
                record: RecordPlan {
                    key,
                    value,
                    headers,
                    len,
                },
            }
        })
        .collect();
    let batch_len: usize = plans
        .iter()
        .map(|plan| nested_len(tag::BATCH_RECORDS, plan.record.len))
        .sum();
    let mut out = Vec::with_capacity(nested_len(tag::SOURCE_EVENT_BATCH, batch_len));
    put_nested_header(tag::SOURCE_EVENT_BATCH, batch_len, &mut out);
    for (record, plan) in records.iter().zip(&plans) {
        put_nested_header(tag::BATCH_RECORDS, plan.record.len, &mut out);
        put_string_field(tag::SOURCE_PARTITION_JSON, &plan.partition_json, &mut out);
        put_string_field(tag::SOURCE_OFFSET_JSON, &plan.offset_json, &mut out);
        put_string_field(tag::SOURCE_TOPIC, &record.topic, &mut out);
        if let Some(p) = record.kafka_partition {
            prost::encoding::int32::encode(tag::SOURCE_KAFKA_PARTITION, &p, &mut out);
        }
        if let Some(key) = &plan.record.key {
            write_data(tag::SOURCE_KEY, key, &record.key, &mut out);
        }
        if let Some(value) = &plan.record.value {
            write_data(tag::SOURCE_VALUE, value, &record.value, &mut out);
        }
        if let Some(t) = record.timestamp_ms {
            prost::encoding::int64::encode(tag::SOURCE_TIMESTAMP, &t, &mut out);
        }
        write_headers(
            tag::SOURCE_HEADERS,
            &record.headers,
            &plan.record.headers,
            &mut out,
        );
    }
    Bytes::from(out)
}

/// A message for the wire, encoded by prost.
pub fn encoded(message: &impl Message) -> Bytes {
    Bytes::from(message.encode_to_vec())
}

/// A tonic codec that sends messages already encoded (by this module or
/// [`encoded`]) and decodes what comes back as `D` with prost.
pub struct PreEncoded<D>(PhantomData<D>);

impl<D> Default for PreEncoded<D> {
    fn default() -> Self {
        PreEncoded(PhantomData)
    }
}

impl<D: Message + Default + Send + 'static> Codec for PreEncoded<D> {
    type Encode = Bytes;
    type Decode = D;
    type Encoder = BytesEncoder;
    type Decoder = tonic_prost::ProstDecoder<D>;

    fn encoder(&mut self) -> Self::Encoder {
        BytesEncoder
    }

    fn decoder(&mut self) -> Self::Decoder {
        tonic_prost::ProstDecoder::new(BufferSettings::default())
    }
}

/// Writes encoded messages as they are.
pub struct BytesEncoder;

impl Encoder for BytesEncoder {
    type Item = Bytes;
    type Error = Status;

    fn encode(&mut self, item: Bytes, dst: &mut EncodeBuf<'_>) -> Result<(), Status> {
        dst.put(item);
        Ok(())
    }
}

/// Opens a sink task's stream that sends pre-encoded commands (see
/// [`encode_sink_put`] and [`encoded`]); what the generated
/// `SinkClient::run` does, with the [`PreEncoded`] codec.
pub async fn open_sink_stream(
    channel: tonic::transport::Channel,
    commands: impl tokio_stream::Stream<Item = Bytes> + Send + 'static,
) -> Result<tonic::Response<tonic::codec::Streaming<pb::SinkEvent>>, Status> {
    let mut grpc = tonic::client::Grpc::new(channel);
    grpc.ready()
        .await
        .map_err(|e| Status::unknown(format!("service was not ready: {e}")))?;
    let path = tonic::codegen::http::uri::PathAndQuery::from_static("/weir.connector.v2.Sink/Run");
    let mut request = tonic::Request::new(commands);
    request
        .extensions_mut()
        .insert(tonic::GrpcMethod::new("weir.connector.v2.Sink", "Run"));
    grpc.streaming(request, path, PreEncoded::<pb::SinkEvent>::default())
        .await
}

// ---- Decoding a sink's commands ----

/// A sink task's command as the SDK reads it: a `Put` decoded straight into
/// the data model, anything else as prost decodes it.
#[derive(Debug)]
pub enum SinkCommandIn {
    Put { id: u64, records: Vec<SinkRecord> },
    Other(pb::SinkCommand),
}

/// The schemas a stream received last, by their encoded bytes, so that
/// records sharing a schema decode it once. One per stream.
#[derive(Default)]
pub struct SchemaReader {
    entries: Vec<(Bytes, SchemaRef)>,
    /// The topic names received, so that records of one topic share a name.
    topics: TopicNames,
}

impl SchemaReader {
    fn topic(&mut self, bytes: &[u8]) -> Result<Topic, String> {
        let name = std::str::from_utf8(bytes).map_err(|_| "a topic is not UTF-8".to_owned())?;
        Ok(self.topics.get(name))
    }

    fn schema(&mut self, bytes: &[u8]) -> Result<SchemaRef, String> {
        if let Some((_, schema)) = self.entries.iter().find(|(known, _)| known == bytes) {
            return Ok(schema.clone());
        }
        let wire = pb::Schema::decode(bytes).map_err(|e| e.to_string())?;
        let schema = SchemaRef::new(wire::schema_from_wire(&wire).map_err(|e| e.to_string())?);
        if self.entries.len() == CACHED_SCHEMAS {
            self.entries.remove(0);
        }
        self.entries
            .push((Bytes::copy_from_slice(bytes), schema.clone()));
        Ok(schema)
    }
}

/// One field of a message: its tag and, for length-delimited fields, its
/// bytes (a zero-copy slice of the message).
enum Field<'a> {
    Varint(u32, u64),
    Fixed64(u32),
    Delimited(u32, &'a [u8]),
    Skipped,
}

/// A varint off the front of `buf`; one byte (nearly every key and
/// length) without a loop.
fn read_varint(buf: &mut &[u8]) -> Result<u64, String> {
    match buf.first() {
        Some(&byte) if byte < 0x80 => {
            *buf = &buf[1..];
            Ok(u64::from(byte))
        }
        _ => prost::encoding::decode_varint(buf).map_err(|e| e.to_string()),
    }
}

fn next_field<'a>(buf: &mut &'a [u8]) -> Result<Field<'a>, String> {
    let key = read_varint(buf)?;
    let tag = u32::try_from(key >> 3).map_err(|_| "a field tag out of range".to_owned())?;
    if tag == 0 {
        return Err("a field with tag 0".into());
    }
    let wire_type = WireType::try_from(key & 0x7).map_err(|e| e.to_string())?;
    Ok(match wire_type {
        WireType::Varint => Field::Varint(tag, read_varint(buf)?),
        WireType::SixtyFourBit => {
            let Some(rest) = buf.get(8..) else {
                return Err("a truncated 64-bit field".into());
            };
            *buf = rest;
            Field::Fixed64(tag)
        }
        WireType::LengthDelimited => {
            let len = usize::try_from(read_varint(buf)?).map_err(|e| e.to_string())?;
            if buf.len() < len {
                return Err("a truncated length-delimited field".into());
            }
            let (field, rest) = buf.split_at(len);
            *buf = rest;
            Field::Delimited(tag, field)
        }
        other => {
            prost::encoding::skip_field(other, tag, buf, prost::encoding::DecodeContext::default())
                .map_err(|e| e.to_string())?;
            Field::Skipped
        }
    })
}

/// How many fields of a message have tag `of`, to size a vector once (a
/// malformed message counts what it can; decoding reports the fault).
fn count_fields(mut buf: &[u8], of: u32) -> usize {
    let mut count = 0;
    while !buf.is_empty() {
        match next_field(&mut buf) {
            Ok(Field::Delimited(tag, _)) if tag == of => count += 1,
            Ok(_) => {}
            Err(_) => break,
        }
    }
    count
}

fn utf8(bytes: &[u8], what: &str) -> Result<String, String> {
    String::from_utf8(bytes.to_vec()).map_err(|_| format!("{what} is not UTF-8"))
}

fn wrong_type(what: &str) -> String {
    format!("{what} has the wrong wire type")
}

/// A wire value as the data model's: a lone string read straight from the
/// bytes, anything else as [`wire::value_from_wire`] reads it.
fn decode_value(bytes: &[u8], schema: Option<&Schema>) -> Result<Value, String> {
    // A string alone (nearly every text record) without prost's message.
    let mut scan = bytes;
    if let Ok(Field::Delimited(tag::VALUE_STRING, text)) = next_field(&mut scan)
        && scan.is_empty()
    {
        return utf8(text, "a string value").map(Value::String);
    }
    let wire = pb::Value::decode(bytes).map_err(|e| e.to_string())?;
    match wire.kind {
        Some(pb::value::Kind::String(text)) => Ok(Value::String(text)),
        _ => wire::value_from_wire(&wire, schema).map_err(|e| e.to_string()),
    }
}

fn decode_data(mut buf: &[u8], schemas: &mut SchemaReader) -> Result<SchemaAndValue, String> {
    let mut data = SchemaAndValue::null();
    while !buf.is_empty() {
        match next_field(&mut buf)? {
            Field::Delimited(tag::DATA_STRUCTURED, mut structured) => {
                let mut schema = None;
                let mut value = None;
                while !structured.is_empty() {
                    match next_field(&mut structured)? {
                        Field::Delimited(tag::STRUCTURED_SCHEMA, bytes) => schema = Some(bytes),
                        Field::Delimited(tag::STRUCTURED_VALUE, bytes) => value = Some(bytes),
                        Field::Skipped => {}
                        Field::Varint(tag::STRUCTURED_SCHEMA | tag::STRUCTURED_VALUE, _)
                        | Field::Fixed64(tag::STRUCTURED_SCHEMA | tag::STRUCTURED_VALUE) => {
                            return Err(wrong_type("a structured field"));
                        }
                        _ => {}
                    }
                }
                let schema = schema.map(|bytes| schemas.schema(bytes)).transpose()?;
                let value = match value {
                    Some(bytes) => decode_value(bytes, schema.as_deref())?,
                    None => Value::Null,
                };
                data = SchemaAndValue { schema, value };
            }
            Field::Delimited(2, raw) => {
                data = wire::data_from_wire(Some(&pb::Data {
                    kind: Some(pb::data::Kind::Raw(Bytes::copy_from_slice(raw))),
                }))
                .map_err(|e| e.to_string())?;
            }
            Field::Varint(1 | 2, _) | Field::Fixed64(1 | 2) => {
                return Err(wrong_type("a data field"));
            }
            _ => {}
        }
    }
    Ok(data)
}

fn decode_header(mut buf: &[u8], schemas: &mut SchemaReader) -> Result<Header, String> {
    let mut header = Header {
        key: String::new(),
        value: SchemaAndValue::null(),
    };
    while !buf.is_empty() {
        match next_field(&mut buf)? {
            Field::Delimited(tag::HEADER_KEY, key) => header.key = utf8(key, "a header key")?,
            Field::Delimited(tag::HEADER_VALUE, value) => {
                header.value = decode_data(value, schemas)?;
            }
            Field::Varint(1 | 2, _) | Field::Fixed64(1 | 2) => {
                return Err(wrong_type("a header field"));
            }
            _ => {}
        }
    }
    Ok(header)
}

#[allow(clippy::cast_possible_truncation, clippy::cast_possible_wrap)] // protobuf's int32/int64 varints
fn decode_sink_record(mut buf: &[u8], schemas: &mut SchemaReader) -> Result<SinkRecord, String> {
    let mut record = SinkRecord {
        topic: Topic::default(),
        partition: 0,
        offset: 0,
        key: SchemaAndValue::null(),
        value: SchemaAndValue::null(),
        timestamp_ms: None,
        headers: Vec::new(),
    };
    while !buf.is_empty() {
        match next_field(&mut buf)? {
            Field::Delimited(tag::SINK_TOPIC, topic) => record.topic = schemas.topic(topic)?,
            Field::Varint(tag::SINK_PARTITION, v) => record.partition = v as i32,
            Field::Varint(tag::SINK_OFFSET, v) => record.offset = v as i64,
            Field::Delimited(tag::SINK_KEY, key) => record.key = decode_data(key, schemas)?,
            Field::Delimited(tag::SINK_VALUE, value) => {
                record.value = decode_data(value, schemas)?;
            }
            Field::Varint(tag::SINK_TIMESTAMP, v) => record.timestamp_ms = Some(v as i64),
            Field::Delimited(tag::SINK_HEADERS, header) => {
                record.headers.push(decode_header(header, schemas)?);
            }
            Field::Skipped => {}
            Field::Varint(t, _) | Field::Fixed64(t) | Field::Delimited(t, _)
                if (tag::SINK_TOPIC..=tag::SINK_HEADERS).contains(&t) =>
            {
                return Err(wrong_type("a sink record field"));
            }
            _ => {}
        }
    }
    Ok(record)
}

fn decode_put(
    mut buf: &[u8],
    schemas: &mut SchemaReader,
) -> Result<(u64, Vec<SinkRecord>), String> {
    let mut id = 0;
    let mut records = Vec::with_capacity(count_fields(buf, tag::PUT_RECORDS));
    while !buf.is_empty() {
        match next_field(&mut buf)? {
            Field::Varint(tag::PUT_ID, v) => id = v,
            Field::Delimited(tag::PUT_RECORDS, record) => {
                records.push(decode_sink_record(record, schemas)?);
            }
            Field::Skipped => {}
            Field::Varint(t, _) | Field::Fixed64(t) | Field::Delimited(t, _)
                if t == tag::PUT_ID || t == tag::PUT_RECORDS =>
            {
                return Err(wrong_type("a put field"));
            }
            _ => {}
        }
    }
    Ok((id, records))
}

/// Decodes one `SinkCommand`: a message that is a `Put` (the oneof's last
/// field wins, as in prost) goes straight into the data model.
pub fn decode_sink_command(
    message: Bytes,
    schemas: &mut SchemaReader,
) -> Result<SinkCommandIn, String> {
    let mut scan = &message[..];
    let mut last_put = None;
    let mut only_puts = true;
    while !scan.is_empty() {
        match next_field(&mut scan)? {
            Field::Delimited(tag::SINK_COMMAND_PUT, put) => last_put = Some(put),
            _ => only_puts = false,
        }
    }
    match last_put {
        Some(put) if only_puts => {
            let (id, records) = decode_put(put, schemas)?;
            Ok(SinkCommandIn::Put { id, records })
        }
        _ => pb::SinkCommand::decode(message)
            .map(SinkCommandIn::Other)
            .map_err(|e| e.to_string()),
    }
}

/// A codec that encodes `E` with prost and decodes with `D` (one of this
/// module's decoders, which keep per-stream state).
pub struct ProstOut<E, D>(PhantomData<fn() -> (E, D)>);

impl<E, D> Default for ProstOut<E, D> {
    fn default() -> Self {
        ProstOut(PhantomData)
    }
}

impl<E, D> Codec for ProstOut<E, D>
where
    E: Message + Send + 'static,
    D: Decoder<Error = Status> + Default + Send + 'static,
    D::Item: Send + 'static,
{
    type Encode = E;
    type Decode = D::Item;
    type Encoder = tonic_prost::ProstEncoder<E>;
    type Decoder = D;

    fn encoder(&mut self) -> Self::Encoder {
        tonic_prost::ProstEncoder::new(BufferSettings::default())
    }

    fn decoder(&mut self) -> Self::Decoder {
        D::default()
    }
}

/// The SDK's codec for a sink task's stream: commands in through
/// [`decode_sink_command`], events out with prost.
pub type SinkServerCodec = ProstOut<pb::SinkEvent, SinkCommandDecoder>;

/// Decodes a sink stream's commands, remembering its schemas.
#[derive(Default)]
pub struct SinkCommandDecoder {
    schemas: SchemaReader,
}

impl Decoder for SinkCommandDecoder {
    type Item = SinkCommandIn;
    type Error = Status;

    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<SinkCommandIn>, Status> {
        use bytes::Buf;
        let message = src.copy_to_bytes(src.remaining());
        decode_sink_command(message, &mut self.schemas)
            .map(Some)
            .map_err(|e| Status::invalid_argument(format!("malformed sink command: {e}")))
    }
}

// ---- A source's events, both ways ----

/// A source task's event as the runner reads it: a batch decoded straight
/// into the data model, anything else as prost decodes it.
#[derive(Debug)]
pub enum SourceEventIn {
    Batch(Vec<SourceRecord>),
    Other(pb::SourceEvent),
}

/// What a source stream's decoder remembers: its schemas, and the last
/// source partition, which consecutive records (nearly always) share.
#[derive(Default)]
pub struct SourceReader {
    schemas: SchemaReader,
    partition: Option<(Bytes, std::sync::Arc<JsonMap>)>,
    /// The keys of one-number offsets seen on this stream (a connector
    /// names one or two), so that such an offset decodes without a map.
    offset_keys: Vec<&'static str>,
}

/// How many distinct one-number offset keys a stream decodes without a
/// map; past it, offsets decode as maps.
const OFFSET_KEYS: usize = 8;

impl SourceReader {
    /// A source offset from its JSON: `{"key": integer}` (what nearly every
    /// source writes, with or without spaces) without building a map.
    fn offset(&mut self, json: &[u8]) -> Result<SourceOffset, String> {
        if let Some((key, value)) = one_number_object(json) {
            if let Some(known) = self.offset_keys.iter().find(|k| k.as_bytes() == key) {
                return Ok(SourceOffset::Number(known, value));
            }
            if self.offset_keys.len() < OFFSET_KEYS
                && let Ok(key) = std::str::from_utf8(key)
            {
                let key = crate::wire::intern(key);
                self.offset_keys.push(key);
                return Ok(SourceOffset::Number(key, value));
            }
        }
        Ok(json_object(json, "a source offset")?.into())
    }
}

/// The key and value of a JSON object with one integer member and a plain
/// key (no escapes), as serde_json or Python's json module write it.
fn one_number_object(json: &[u8]) -> Option<(&[u8], i64)> {
    let rest = json.strip_prefix(b"{\"")?;
    let end = rest.iter().position(|b| *b == b'"')?;
    let (key, rest) = rest.split_at(end);
    if key.contains(&b'\\') {
        return None;
    }
    let rest = rest.strip_prefix(b"\":")?.trim_ascii_start();
    let rest = rest.strip_suffix(b"}")?.trim_ascii_end();
    let digits = rest.strip_prefix(b"-").unwrap_or(rest);
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let value = std::str::from_utf8(rest).ok()?.parse().ok()?;
    Some((key, value))
}

fn json_object(bytes: &[u8], what: &str) -> Result<JsonMap, String> {
    match serde_json::from_slice(bytes) {
        Ok(serde_json::Value::Object(map)) => Ok(map),
        _ => Err(format!(
            "{what} is not a JSON object: {}",
            String::from_utf8_lossy(bytes)
        )),
    }
}

#[allow(clippy::cast_possible_truncation, clippy::cast_possible_wrap)] // protobuf's int32/int64 varints
fn decode_source_record(mut buf: &[u8], reader: &mut SourceReader) -> Result<SourceRecord, String> {
    let mut partition_json: &[u8] = &[];
    let mut offset_json: &[u8] = &[];
    let mut record = SourceRecord {
        source_partition: std::sync::Arc::default(),
        source_offset: SourceOffset::default(),
        topic: Topic::default(),
        kafka_partition: None,
        key: SchemaAndValue::null(),
        value: SchemaAndValue::null(),
        timestamp_ms: None,
        headers: Vec::new(),
    };
    while !buf.is_empty() {
        match next_field(&mut buf)? {
            Field::Delimited(tag::SOURCE_PARTITION_JSON, json) => partition_json = json,
            Field::Delimited(tag::SOURCE_OFFSET_JSON, json) => offset_json = json,
            Field::Delimited(tag::SOURCE_TOPIC, topic) => {
                record.topic = reader.schemas.topic(topic)?
            }
            Field::Varint(tag::SOURCE_KAFKA_PARTITION, v) => {
                record.kafka_partition = Some(v as i32)
            }
            Field::Delimited(tag::SOURCE_KEY, key) => {
                record.key = decode_data(key, &mut reader.schemas)?;
            }
            Field::Delimited(tag::SOURCE_VALUE, value) => {
                record.value = decode_data(value, &mut reader.schemas)?;
            }
            Field::Varint(tag::SOURCE_TIMESTAMP, v) => record.timestamp_ms = Some(v as i64),
            Field::Delimited(tag::SOURCE_HEADERS, header) => {
                record
                    .headers
                    .push(decode_header(header, &mut reader.schemas)?);
            }
            Field::Skipped => {}
            Field::Varint(t, _) | Field::Fixed64(t) | Field::Delimited(t, _)
                if (tag::SOURCE_PARTITION_JSON..=tag::SOURCE_HEADERS).contains(&t) =>
            {
                return Err(wrong_type("a source record field"));
            }
            _ => {}
        }
    }
    record.source_partition = match &reader.partition {
        Some((json, partition)) if json == partition_json => partition.clone(),
        _ => {
            let partition = std::sync::Arc::new(json_object(partition_json, "a source partition")?);
            reader.partition = Some((Bytes::copy_from_slice(partition_json), partition.clone()));
            partition
        }
    };
    record.source_offset = reader.offset(offset_json)?;
    Ok(record)
}

/// Decodes one `SourceEvent`: a message that is a `Batch` without a
/// transaction boundary goes straight into the data model.
pub fn decode_source_event(
    message: Bytes,
    reader: &mut SourceReader,
) -> Result<SourceEventIn, String> {
    let mut scan = &message[..];
    let mut last_batch = None;
    let mut only_batches = true;
    while !scan.is_empty() {
        match next_field(&mut scan)? {
            Field::Delimited(tag::SOURCE_EVENT_BATCH, batch) => last_batch = Some(batch),
            _ => only_batches = false,
        }
    }
    if let (Some(batch), true) = (last_batch, only_batches) {
        let mut fields = batch;
        let mut records = Vec::with_capacity(count_fields(batch, tag::BATCH_RECORDS));
        let mut plain = true;
        while !fields.is_empty() {
            match next_field(&mut fields)? {
                Field::Delimited(tag::BATCH_RECORDS, record) => {
                    records.push(decode_source_record(record, reader)?);
                }
                Field::Skipped => {}
                Field::Varint(t, _) | Field::Fixed64(t) | Field::Delimited(t, _)
                    if t == tag::BATCH_RECORDS =>
                {
                    return Err(wrong_type("a batch field"));
                }
                // A transaction boundary (or anything newer): prost's form.
                _ => plain = false,
            }
        }
        if plain {
            return Ok(SourceEventIn::Batch(records));
        }
    }
    pb::SourceEvent::decode(message)
        .map(SourceEventIn::Other)
        .map_err(|e| e.to_string())
}

/// The runner's codec for a source task's stream: commands out with prost,
/// events in through [`decode_source_event`].
pub type SourceClientCodec = ProstOut<pb::SourceCommand, SourceEventDecoder>;

/// Decodes a source stream's events, remembering its schemas and partition.
#[derive(Default)]
pub struct SourceEventDecoder {
    reader: SourceReader,
}

impl Decoder for SourceEventDecoder {
    type Item = SourceEventIn;
    type Error = Status;

    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<SourceEventIn>, Status> {
        use bytes::Buf;
        let message = src.copy_to_bytes(src.remaining());
        decode_source_event(message, &mut self.reader)
            .map(Some)
            .map_err(|e| Status::internal(format!("malformed source event: {e}")))
    }
}

/// Opens a source task's stream whose events decode through
/// [`SourceClientCodec`]; what the generated `SourceClient::run` does.
pub async fn open_source_stream(
    channel: tonic::transport::Channel,
    commands: impl tokio_stream::Stream<Item = pb::SourceCommand> + Send + 'static,
) -> Result<tonic::Response<tonic::codec::Streaming<SourceEventIn>>, Status> {
    let mut grpc = tonic::client::Grpc::new(channel);
    grpc.ready()
        .await
        .map_err(|e| Status::unknown(format!("service was not ready: {e}")))?;
    let path =
        tonic::codegen::http::uri::PathAndQuery::from_static("/weir.connector.v2.Source/Run");
    let mut request = tonic::Request::new(commands);
    request
        .extensions_mut()
        .insert(tonic::GrpcMethod::new("weir.connector.v2.Source", "Run"));
    grpc.streaming(request, path, SourceClientCodec::default())
        .await
}

/// The SDK's codec for a source task's stream: events out pre-encoded
/// ([`encode_source_batch`], [`encoded`]), commands in with prost.
#[derive(Default)]
pub struct SourceServerCodec;

impl Codec for SourceServerCodec {
    type Encode = Bytes;
    type Decode = pb::SourceCommand;
    type Encoder = BytesEncoder;
    type Decoder = tonic_prost::ProstDecoder<pb::SourceCommand>;

    fn encoder(&mut self) -> Self::Encoder {
        BytesEncoder
    }

    fn decoder(&mut self) -> Self::Decoder {
        tonic_prost::ProstDecoder::new(BufferSettings::default())
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::sync::Arc;

    use super::*;

    #[test]
    fn one_number_offsets_decode_without_a_map_and_others_as_maps() {
        assert_eq!(
            one_number_object(br#"{"position":42}"#),
            Some((&b"position"[..], 42))
        );
        assert_eq!(
            one_number_object(br#"{"lsn": -7 }"#),
            Some((&b"lsn"[..], -7))
        );
        for other in [
            &br#"{"a":1,"b":2}"#[..],
            br#"{"a":1.5}"#,
            br#"{"a":"1"}"#,
            br#"{"a\"b":1}"#,
            br#"{"a":99999999999999999999}"#,
            br#"{}"#,
        ] {
            assert_eq!(
                one_number_object(other),
                None,
                "{}",
                String::from_utf8_lossy(other)
            );
        }
        let mut reader = SourceReader::default();
        let offset = reader.offset(br#"{"position": 42}"#).unwrap();
        assert!(
            matches!(offset, SourceOffset::Number("position", 42)),
            "{offset:?}"
        );
        assert_eq!(
            offset,
            SourceOffset::Map(JsonMap::from_iter([("position".into(), 42.into())]))
        );
        let map = reader.offset(br#"{"file":"a","line":3}"#).unwrap();
        assert_eq!(map.get("line"), Some(3.into()));
        assert!(reader.offset(b"[1]").is_err());
    }
    use weir_api::data::SchemaType;

    fn string(text: &str) -> SchemaAndValue {
        SchemaAndValue {
            schema: Some(Schema::new(SchemaType::String).optional().into()),
            value: Value::String(text.into()),
        }
    }

    fn samples() -> Vec<SchemaAndValue> {
        let mut point = Schema::new(SchemaType::Struct);
        point.name = Some("point".into());
        point.parameters = BTreeMap::from([("p".to_string(), "q".to_string())]);
        vec![
            SchemaAndValue::null(),
            SchemaAndValue {
                schema: Some(Schema::new(SchemaType::String).optional().into()),
                value: Value::Null,
            },
            string(""),
            string("a line of text ü"),
            string(&"x".repeat(300)),
            SchemaAndValue {
                schema: Some(Schema::new(SchemaType::Bytes).into()),
                value: Value::Bytes(vec![0, 1, 2, 255]),
            },
            SchemaAndValue {
                schema: None,
                value: Value::Int64(-5),
            },
            SchemaAndValue {
                schema: Some(Schema::new(SchemaType::Int32).into()),
                value: Value::Int32(0),
            },
            SchemaAndValue {
                schema: Some(Schema::new(SchemaType::Float64).into()),
                value: Value::Float64(2.5),
            },
            SchemaAndValue {
                schema: Some(Schema::new(SchemaType::Boolean).into()),
                value: Value::Boolean(false),
            },
            SchemaAndValue {
                schema: Some(point.into()),
                value: Value::Struct(vec![("x".into(), Value::Int32(3))]),
            },
            SchemaAndValue {
                schema: None,
                value: Value::Array(vec![Value::String("a".into()), Value::Null]),
            },
        ]
    }

    #[test]
    fn a_put_is_byte_for_byte_what_prost_writes() {
        let values = samples();
        let mut records = Vec::new();
        for (i, key) in values.iter().enumerate() {
            for (j, value) in values.iter().enumerate() {
                records.push(SinkRecord {
                    topic: if i == 0 {
                        String::new().into()
                    } else {
                        format!("t{i}").into()
                    },
                    partition: j as i32 - 1,
                    offset: (i * j) as i64,
                    key: key.clone(),
                    value: value.clone(),
                    timestamp_ms: (j % 2 == 0).then_some(j as i64 * 1000),
                    headers: if j % 3 == 0 {
                        vec![
                            Header {
                                key: "h".into(),
                                value: value.clone(),
                            },
                            Header {
                                key: String::new(),
                                value: SchemaAndValue::null(),
                            },
                        ]
                    } else {
                        Vec::new()
                    },
                });
            }
        }
        let mut schemas = SchemaCache::default();
        for id in [0, 1, 300] {
            for batch in [&records[..0], &records[..1], &records[..]] {
                let expected = pb::SinkCommand {
                    command: Some(pb::sink_command::Command::Put(pb::Put {
                        id,
                        records: batch.iter().map(wire::sink_record_to_wire).collect(),
                    })),
                };
                assert_eq!(
                    encode_sink_put(id, batch, &mut schemas),
                    expected.encode_to_vec(),
                    "a put {id} of {} records",
                    batch.len()
                );
            }
        }
    }

    #[test]
    fn a_source_batch_is_byte_for_byte_what_prost_writes() {
        let values = samples();
        let partition = Arc::new(JsonMap::from_iter([(
            "file".to_string(),
            serde_json::json!("in.txt"),
        )]));
        let mut records = Vec::new();
        for (i, value) in values.iter().enumerate() {
            records.push(SourceRecord {
                source_partition: if i % 4 == 3 {
                    Arc::new(JsonMap::new())
                } else {
                    partition.clone()
                },
                source_offset: JsonMap::from_iter([("position".to_string(), serde_json::json!(i))])
                    .into(),
                topic: if i == 1 {
                    String::new().into()
                } else {
                    "out".into()
                },
                kafka_partition: (i % 2 == 0).then_some(i as i32 - 2),
                key: values[values.len() - 1 - i].clone(),
                value: value.clone(),
                timestamp_ms: (i % 3 == 0).then_some(7),
                headers: vec![Header {
                    key: "k".into(),
                    value: value.clone(),
                }],
            });
        }
        let mut schemas = SchemaCache::default();
        for batch in [&records[..1], &records[..]] {
            let expected = pb::SourceEvent {
                event: Some(pb::source_event::Event::Batch(pb::SourceBatch {
                    records: wire::source_records_to_wire(batch),
                    boundary: None,
                })),
            };
            assert_eq!(
                encode_source_batch(batch, &mut schemas),
                expected.encode_to_vec(),
                "a batch of {} records",
                batch.len()
            );
        }
    }

    #[test]
    fn a_put_decodes_as_prost_and_the_wire_module_read_it() {
        let values = samples();
        let records: Vec<SinkRecord> = values
            .iter()
            .enumerate()
            .map(|(i, value)| SinkRecord {
                topic: format!("t{}", i % 2).into(),
                partition: i as i32 - 3,
                offset: -(i as i64),
                key: values[values.len() - 1 - i].clone(),
                value: value.clone(),
                timestamp_ms: (i % 2 == 0).then_some(-1),
                headers: vec![Header {
                    key: "k".into(),
                    value: value.clone(),
                }],
            })
            .collect();
        let put = pb::SinkCommand {
            command: Some(pb::sink_command::Command::Put(pb::Put {
                id: 9,
                records: records.iter().map(wire::sink_record_to_wire).collect(),
            })),
        };
        let expected: Vec<SinkRecord> = records
            .iter()
            .map(|r| wire::sink_record_from_wire(&wire::sink_record_to_wire(r)).unwrap())
            .collect();
        let mut schemas = SchemaReader::default();
        for _ in 0..2 {
            match decode_sink_command(put.encode_to_vec().into(), &mut schemas).unwrap() {
                SinkCommandIn::Put { id, records } => {
                    assert_eq!(id, 9);
                    assert_eq!(records, expected);
                }
                other => panic!("{other:?}"),
            }
        }
        let flush = pb::SinkCommand {
            command: Some(pb::sink_command::Command::Flush(pb::Flush {
                id: 3,
                offsets: Vec::new(),
            })),
        };
        match decode_sink_command(flush.encode_to_vec().into(), &mut schemas).unwrap() {
            SinkCommandIn::Other(command) => assert_eq!(command, flush),
            other => panic!("{other:?}"),
        }
        // Raw bytes read as wire::data_from_wire reads them.
        let raw = pb::SinkCommand {
            command: Some(pb::sink_command::Command::Put(pb::Put {
                id: 1,
                records: vec![pb::SinkRecord {
                    value: Some(pb::Data {
                        kind: Some(pb::data::Kind::Raw(Bytes::from_static(b"raw"))),
                    }),
                    ..Default::default()
                }],
            })),
        };
        let SinkCommandIn::Put { records, .. } =
            decode_sink_command(raw.encode_to_vec().into(), &mut schemas).unwrap()
        else {
            panic!("not a put");
        };
        let pb::sink_command::Command::Put(wire_put) = raw.command.unwrap() else {
            unreachable!()
        };
        assert_eq!(
            records[0],
            wire::sink_record_from_wire(&wire_put.records[0]).unwrap()
        );
    }

    #[test]
    fn a_malformed_put_is_an_error_not_a_panic() {
        let mut schemas = SchemaReader::default();
        let put = encode_sink_put(
            1,
            &[SinkRecord {
                topic: "t".into(),
                partition: 1,
                offset: 2,
                key: SchemaAndValue::null(),
                value: string("v"),
                timestamp_ms: None,
                headers: Vec::new(),
            }],
            &mut SchemaCache::default(),
        );
        for cut in 1..put.len() {
            let _ = decode_sink_command(put.slice(..cut), &mut schemas);
        }
        assert!(
            decode_sink_command(Bytes::from_static(&[0x22, 0x05, 0x08]), &mut schemas).is_err()
        );
    }

    #[test]
    fn a_source_batch_decodes_as_the_wire_module_read_it() {
        let values = samples();
        let partition = Arc::new(JsonMap::from_iter([(
            "file".to_string(),
            serde_json::json!("in.txt"),
        )]));
        let records: Vec<SourceRecord> = values
            .iter()
            .enumerate()
            .map(|(i, value)| SourceRecord {
                source_partition: if i % 3 == 2 {
                    Arc::new(JsonMap::new())
                } else {
                    partition.clone()
                },
                source_offset: JsonMap::from_iter([("n".to_string(), serde_json::json!(i))]).into(),
                topic: format!("t{i}").into(),
                kafka_partition: (i % 2 == 0).then_some(-(i as i32)),
                key: values[values.len() - 1 - i].clone(),
                value: value.clone(),
                timestamp_ms: (i % 2 == 1).then_some(i as i64),
                headers: vec![Header {
                    key: "k".into(),
                    value: value.clone(),
                }],
            })
            .collect();
        let expected =
            wire::source_records_from_wire(wire::source_records_to_wire(&records)).unwrap();
        let mut reader = SourceReader::default();
        for _ in 0..2 {
            let bytes = encode_source_batch(&records, &mut SchemaCache::default());
            match decode_source_event(bytes, &mut reader).unwrap() {
                SourceEventIn::Batch(decoded) => {
                    assert_eq!(decoded, expected);
                    assert!(Arc::ptr_eq(
                        &decoded[0].source_partition,
                        &decoded[1].source_partition
                    ));
                }
                other => panic!("{other:?}"),
            }
        }
        // A batch with a transaction boundary, and other events, read as prost reads them.
        for event in [
            pb::SourceEvent {
                event: Some(pb::source_event::Event::Batch(pb::SourceBatch {
                    records: wire::source_records_to_wire(&records[..1]),
                    boundary: Some(pb::TransactionBoundary { action: 1 }),
                })),
            },
            pb::SourceEvent {
                event: Some(pb::source_event::Event::Opened(pb::Opened {})),
            },
        ] {
            match decode_source_event(event.encode_to_vec().into(), &mut reader).unwrap() {
                SourceEventIn::Other(decoded) => assert_eq!(decoded, event),
                other => panic!("{other:?}"),
            }
        }
        let bytes = encode_source_batch(&records, &mut SchemaCache::default());
        for cut in 1..bytes.len() {
            let _ = decode_source_event(bytes.slice(..cut), &mut reader);
        }
    }

    #[test]
    fn the_schema_cache_keeps_the_latest_schemas() {
        let mut schemas = SchemaCache::default();
        for version in 0..20 {
            let mut schema = Schema::new(SchemaType::String);
            schema.version = Some(version);
            let schema = SchemaRef::new(schema);
            let bytes = schemas.encoded(&schema);
            assert_eq!(bytes, wire::schema_to_wire(&schema).encode_to_vec());
            assert_eq!(schemas.encoded(&schema), bytes);
        }
        assert_eq!(schemas.entries.len(), CACHED_SCHEMAS);
    }
}
