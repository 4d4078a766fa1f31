//! DataFrames from local data: `serde::Serialize` values, tuples with column names, Arrow
//! batches. Small data travels inline in the plan (a `LocalRelation`); data at or above the
//! server's `spark.sql.session.localRelationCacheThreshold` is uploaded first as cached
//! artifacts (`cache/<sha256>`) and referenced by a `ChunkedCachedLocalRelation`, as PySpark
//! does, so it is not capped by the message size.

use std::future::{Future, IntoFuture};
use std::marker::PhantomData;
use std::ops::Range;
use std::pin::Pin;
use std::sync::Arc;

use arrow_array::RecordBatch;
use arrow_schema::{DataType, Field, FieldRef, Fields, Schema, SchemaRef, TimeUnit};
use bytes::Bytes;
use sc_proto::spark::connect as pb;
use serde::Serialize;
use serde_arrow::schema::{SchemaLike, TracingOptions};
use sha2::{Digest, Sha256};

use crate::dataframe::DataFrame;
use crate::error::{Error, Result};
use crate::row::serde_error;
use crate::session::SparkSession;
use crate::types::StructType;

/// The most bytes of cached chunks this client uploads in one AddArtifacts call (PySpark uploads
/// up to `spark.sql.session.localRelationBatchOfChunksSizeBytes`, 1 GiB by default, at once;
/// this client holds no more than this much encoded data in memory).
const MAX_UPLOAD_BATCH: usize = 128 << 20;

/// The rows converted to Arrow at a time, as PySpark's chunking does (or fewer, when
/// `spark.sql.session.localRelationChunkSizeRows` is smaller).
const ROWS_PER_BATCH: usize = 1024;

// === LocalSchema ===

/// An explicit schema for local data: a typed [`StructType`], an Arrow schema, or a DDL string
/// (`"name string, n int"`, parsed by the server).
#[derive(Debug, Clone, PartialEq)]
pub enum LocalSchema {
    /// A typed Spark schema, sent as its JSON (as PySpark sends a `StructType`).
    Struct(StructType),
    /// An Arrow schema. Its types are sent as Spark's (for example a timestamp in any unit and
    /// time zone becomes a `timestamp`, microseconds in UTC).
    Arrow(SchemaRef),
    /// A DDL string such as `"name string, n int, tags array<string>"`.
    Ddl(String),
}

impl From<StructType> for LocalSchema {
    fn from(s: StructType) -> Self {
        LocalSchema::Struct(s)
    }
}
impl From<&StructType> for LocalSchema {
    fn from(s: &StructType) -> Self {
        LocalSchema::Struct(s.clone())
    }
}

impl From<&str> for LocalSchema {
    fn from(s: &str) -> Self {
        LocalSchema::Ddl(s.to_string())
    }
}
impl From<String> for LocalSchema {
    fn from(s: String) -> Self {
        LocalSchema::Ddl(s)
    }
}
impl From<Schema> for LocalSchema {
    fn from(s: Schema) -> Self {
        LocalSchema::Arrow(Arc::new(s))
    }
}
impl From<SchemaRef> for LocalSchema {
    fn from(s: SchemaRef) -> Self {
        LocalSchema::Arrow(s)
    }
}
impl From<&Schema> for LocalSchema {
    fn from(s: &Schema) -> Self {
        LocalSchema::Arrow(Arc::new(s.clone()))
    }
}

// === sources ===

/// Serde values of one Rust type, behind a type-erased interface.
trait SerdeSource: Send + Sync {
    fn len(&self) -> usize;
    fn trace(&self) -> Result<Vec<FieldRef>>;
    fn to_batch(&self, fields: &[FieldRef], range: Range<usize>) -> Result<RecordBatch>;
}

struct SerdeItems<D, T> {
    data: D,
    _item: PhantomData<fn() -> T>,
}

impl<D: AsRef<[T]> + Send + Sync, T: Serialize> SerdeSource for SerdeItems<D, T> {
    fn len(&self) -> usize {
        self.data.as_ref().len()
    }

    fn trace(&self) -> Result<Vec<FieldRef>> {
        let options = TracingOptions::default()
            .allow_null_fields(true)
            .map_as_struct(false)
            .sequence_as_large_list(false)
            .strings_as_large_utf8(false)
            .bytes_as_large_binary(false)
            .enums_without_data_as_strings(true);
        Vec::<FieldRef>::from_samples(self.data.as_ref(), options).map_err(serde_error)
    }

    fn to_batch(&self, fields: &[FieldRef], range: Range<usize>) -> Result<RecordBatch> {
        let items = self.data.as_ref().get(range).unwrap_or_default();
        serde_arrow::to_record_batch(fields, &items).map_err(serde_error)
    }
}

enum Source<'a> {
    Serde(Box<dyn SerdeSource + 'a>),
    Arrow(Vec<RecordBatch>),
}

impl Source<'_> {
    fn num_rows(&self) -> usize {
        match self {
            Source::Serde(s) => s.len(),
            Source::Arrow(b) => b.iter().map(RecordBatch::num_rows).sum(),
        }
    }
}

/// What local data becomes: the Arrow schema it is converted to, the Spark schema sent with it
/// (JSON, as PySpark sends), and the column names a `ToDF` applies afterwards.
struct Target {
    schema: SchemaRef,
    spark_schema: Option<String>,
    to_df: Option<Vec<String>>,
}

// === CreateDataFrame ===

/// A DataFrame of local data, being built: await it (it asks the server for its local-relation
/// settings and uploads large data first), or call [`build_inline`](Self::build_inline).
///
/// Made by [`SparkSession::create_dataframe_from`],
/// [`create_dataframe_from_rows`](SparkSession::create_dataframe_from_rows) and
/// [`create_dataframe_from_batches`](SparkSession::create_dataframe_from_batches).
#[must_use = "a CreateDataFrame does nothing until it is awaited or built"]
pub struct CreateDataFrame<'a> {
    session: SparkSession,
    source: Source<'a>,
    schema: Option<LocalSchema>,
    names: Option<Vec<String>>,
}

impl std::fmt::Debug for CreateDataFrame<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CreateDataFrame")
            .field("rows", &self.source.num_rows())
            .field("schema", &self.schema)
            .field("names", &self.names)
            .finish_non_exhaustive()
    }
}

impl<'a> CreateDataFrame<'a> {
    /// Uses this schema instead of inferring one: column names and Spark types, as a
    /// [`StructType`], an Arrow schema or a DDL string. Values are converted to it (for example `chrono` dates, which
    /// serialize as text, into a `date` column; decimal strings into a `decimal(p,s)`). Struct
    /// fields are matched to columns by name, tuple elements by position.
    pub fn schema(mut self, schema: impl Into<LocalSchema>) -> Self {
        self.schema = Some(schema.into());
        self
    }

    /// Builds the DataFrame with the data inline in the plan (a `LocalRelation`), without
    /// asking the server anything. The plan must then fit in one message
    /// ([`max_message_size`](crate::SparkSessionBuilder::max_message_size)); awaiting the
    /// builder instead uploads large data as cached artifacts. A DDL schema needs the server
    /// to parse it, so it is refused here.
    pub fn build_inline(self) -> Result<DataFrame> {
        let explicit = match &self.schema {
            Some(LocalSchema::Ddl(_)) => {
                return Err(Error::InvalidArgument(
                    "a DDL schema is parsed by the server: await the builder, or give a StructType or an Arrow schema to build_inline".into(),
                ));
            }
            Some(LocalSchema::Struct(s)) => Some(Explicit::from_struct(s)),
            Some(LocalSchema::Arrow(s)) => Some(Explicit::from_arrow(s.clone())),
            None => None,
        };
        let target = self.target(explicit)?;
        if self.source.num_rows() == 0
            && let Some(df) = self.empty(&target)
        {
            return Ok(df);
        }
        let batches = self
            .batches(&target, usize::MAX)
            .collect::<Result<Vec<_>>>()?;
        let rel = inline_relation(&target, &batches)?;
        Ok(self.finish(rel, &target))
    }

    /// Builds the DataFrame: converts the data to Arrow, then sends it inline or, at or above
    /// the server's `spark.sql.session.localRelationCacheThreshold`, uploads it in chunks
    /// (`spark.sql.session.localRelationChunkSizeBytes` each) as cached artifacts, checking
    /// `spark.sql.session.localRelationSizeLimit`. Same as awaiting the builder.
    ///
    /// The values are converted 1,024 rows at a time and chunks are uploaded in calls of at
    /// most 128 MiB: besides the values themselves, the client holds the converted data up to
    /// the threshold, one chunk and one call's chunks at a time, however large the data.
    /// Chunks the session already has (by hash) are not sent again.
    pub async fn build(self) -> Result<DataFrame> {
        let explicit = match &self.schema {
            Some(LocalSchema::Ddl(ddl)) => Some(parse_ddl(&self.session, ddl).await?),
            Some(LocalSchema::Struct(s)) => Some(Explicit::from_struct(s)),
            Some(LocalSchema::Arrow(s)) => Some(Explicit::from_arrow(s.clone())),
            None => None,
        };
        let target = self.target(explicit)?;
        if self.source.num_rows() == 0
            && let Some(df) = self.empty(&target)
        {
            return Ok(df);
        }
        let settings = CacheSettings::fetch(&self.session).await?;
        let rows = ROWS_PER_BATCH.min(settings.chunk_rows).max(1);
        let mut pending = Vec::new();
        let mut pending_bytes = 0u64;
        let mut uploader: Option<ChunkUploader<'_>> = None;
        for batch in self.batches(&target, rows) {
            let batch = batch?;
            let size = batch_bytes(&batch)?;
            match uploader.as_mut() {
                Some(up) => up.push(batch, size).await?,
                None => {
                    pending_bytes += size as u64;
                    pending.push((batch, size));
                    if settings.threshold.is_some_and(|t| pending_bytes >= t) {
                        tracing::debug!(
                            bytes = pending_bytes,
                            threshold = settings.threshold,
                            "local data at the cache threshold: uploading it as cached artifacts"
                        );
                        let mut up = ChunkUploader::new(&self.session, &target, &settings)?;
                        for (b, s) in pending.drain(..) {
                            up.push(b, s).await?;
                        }
                        uploader = Some(up);
                    }
                }
            }
        }
        let rel = match uploader {
            Some(up) => up.finish().await?,
            None => {
                let batches: Vec<RecordBatch> = pending.into_iter().map(|(b, _)| b).collect();
                inline_relation(&target, &batches)?
            }
        };
        Ok(self.finish(rel, &target))
    }

    /// The DataFrame of no rows: a schema-only `LocalRelation` (when there is a schema to send).
    fn empty(&self, target: &Target) -> Option<DataFrame> {
        let schema = target.spark_schema.clone()?;
        let rel = pb::relation::RelType::LocalRelation(pb::LocalRelation {
            data: None,
            schema: Some(schema),
        });
        Some(self.finish(rel, target))
    }

    fn finish(&self, rel: pb::relation::RelType, target: &Target) -> DataFrame {
        let df = DataFrame::new(self.session.clone(), self.session.relation(rel));
        match &target.to_df {
            Some(names) => df.to_df(names.iter().map(String::as_str)),
            None => df,
        }
    }

    /// Decides the Arrow and Spark schemas of the data.
    fn target(&self, explicit: Option<Explicit>) -> Result<Target> {
        match (&self.source, explicit) {
            // An explicit schema is sent as Spark's JSON, as PySpark sends a StructType.
            (_, Some(explicit)) => {
                let fields = spark_fields(explicit.arrow.fields(), false)?;
                let json = match explicit.json {
                    Some(json) => json,
                    None => spark_schema_json(&fields)?,
                };
                Ok(Target {
                    spark_schema: Some(json),
                    schema: Arc::new(Schema::new(fields)),
                    to_df: self.names.clone(),
                })
            }
            (Source::Serde(source), None) => {
                if source.len() == 0 {
                    return Err(Error::InvalidArgument(
                        "cannot infer a schema from no rows: give one with .schema(...)".into(),
                    ));
                }
                let traced = source.trace()?;
                let mut fields: Vec<Field> = Vec::with_capacity(traced.len());
                for f in &traced {
                    if f.data_type() == &DataType::Null {
                        return Err(Error::Conversion(format!(
                            "cannot determine the type of column '{}': every value is None; give a schema with .schema(...)",
                            f.name()
                        )));
                    }
                    fields.push(spark_field(f, true)?);
                }
                let mut fields = tuple_names(fields);
                let to_df = match &self.names {
                    Some(names) => {
                        let names = complete_names(names, fields.len())?;
                        for (f, n) in fields.iter_mut().zip(&names) {
                            *f = f.clone().with_name(n);
                        }
                        Some(names)
                    }
                    None => None,
                };
                Ok(Target {
                    spark_schema: Some(spark_schema_json(&fields)?),
                    schema: Arc::new(Schema::new(fields)),
                    to_df,
                })
            }
            (Source::Arrow(batches), None) => {
                let first = batches.first().ok_or_else(|| {
                    Error::InvalidArgument(
                        "cannot infer a schema from no batches: give one with .schema(...)".into(),
                    )
                })?;
                let fields = spark_fields(first.schema_ref().fields(), false)?;
                let names = match &self.names {
                    Some(names) => complete_names(names, fields.len())?,
                    None => fields.iter().map(|f| f.name().clone()).collect(),
                };
                // As PySpark with an Arrow table: no Spark schema, the column names by a ToDF.
                Ok(Target {
                    spark_schema: None,
                    schema: Arc::new(Schema::new(fields)),
                    to_df: Some(names),
                })
            }
        }
    }

    /// The data as Arrow batches of the target schema, at most `rows` rows each.
    fn batches<'s>(
        &'s self,
        target: &'s Target,
        rows: usize,
    ) -> Box<dyn Iterator<Item = Result<RecordBatch>> + Send + 's> {
        let rows = rows.max(1);
        match &self.source {
            Source::Serde(source) => {
                let len = source.len();
                Box::new((0..len).step_by(rows).map(move |start| {
                    let range = start..start.saturating_add(rows).min(len);
                    source.to_batch(target.schema.fields(), range)
                }))
            }
            Source::Arrow(batches) => Box::new(batches.iter().flat_map(move |b| {
                (0..b.num_rows()).step_by(rows).map(move |start| {
                    let n = rows.min(b.num_rows() - start);
                    cast_batch(&b.slice(start, n), &target.schema)
                })
            })),
        }
    }
}

impl<'a> IntoFuture for CreateDataFrame<'a> {
    type Output = Result<DataFrame>;
    type IntoFuture = Pin<Box<dyn Future<Output = Result<DataFrame>> + Send + 'a>>;

    fn into_future(self) -> Self::IntoFuture {
        Box::pin(self.build())
    }
}

/// `names` for `n` columns: too few are completed with `_<i>` (as PySpark does), too many are
/// an error.
fn complete_names(names: &[String], n: usize) -> Result<Vec<String>> {
    if names.len() > n {
        return Err(Error::InvalidArgument(format!(
            "{} column names were given for {n} columns",
            names.len()
        )));
    }
    let mut out = names.to_vec();
    out.extend((names.len() + 1..=n).map(|i| format!("_{i}")));
    Ok(out)
}

/// Tuples trace as fields named `0`, `1`, ...; PySpark names them `_1`, `_2`, ...
fn tuple_names(fields: Vec<Field>) -> Vec<Field> {
    let is_tuple = !fields.is_empty()
        && fields
            .iter()
            .enumerate()
            .all(|(i, f)| f.name() == &i.to_string());
    let rename = |f: Field, i: usize| -> Field {
        if is_tuple {
            f.with_name(format!("_{}", i + 1))
        } else {
            f
        }
    };
    fields
        .into_iter()
        .enumerate()
        .map(|(i, f)| {
            let t = match f.data_type() {
                DataType::Struct(children) => Some(DataType::Struct(Fields::from(tuple_names(
                    children.iter().map(|c| c.as_ref().clone()).collect(),
                )))),
                DataType::List(child) => Some(DataType::List(Arc::new(
                    tuple_names(vec![child.as_ref().clone()])
                        .into_iter()
                        .next()
                        .unwrap_or_else(|| child.as_ref().clone()),
                ))),
                _ => None,
            };
            let f = match t {
                Some(t) => f.with_data_type(t),
                None => f,
            };
            rename(f, i)
        })
        .collect()
}

/// `batch` with the target schema (columns cast where their types differ, renamed).
fn cast_batch(batch: &RecordBatch, schema: &SchemaRef) -> Result<RecordBatch> {
    if batch.num_columns() != schema.fields().len() {
        return Err(Error::InvalidArgument(format!(
            "the data has {} columns but the schema {}",
            batch.num_columns(),
            schema.fields().len()
        )));
    }
    let columns = batch
        .columns()
        .iter()
        .zip(schema.fields())
        .map(|(c, f)| {
            if c.data_type() == f.data_type() {
                Ok(c.clone())
            } else {
                arrow_cast::cast(c, f.data_type()).map_err(Error::from)
            }
        })
        .collect::<Result<Vec<_>>>()?;
    let options = arrow_array::RecordBatchOptions::new().with_row_count(Some(batch.num_rows()));
    Ok(RecordBatch::try_new_with_options(
        schema.clone(),
        columns,
        &options,
    )?)
}

// === Spark types ===

/// `f` with the Arrow type Spark reads for it, without metadata. Inferred fields are all
/// nullable, as PySpark infers them.
fn spark_field(f: &Field, inferred: bool) -> Result<Field> {
    let t = spark_type(f.data_type(), inferred).map_err(|e| match e {
        Error::Conversion(m) => Error::Conversion(format!("column '{}': {m}", f.name())),
        other => other,
    })?;
    Ok(Field::new(f.name(), t, inferred || f.is_nullable()))
}

fn spark_fields(fields: &Fields, inferred: bool) -> Result<Vec<Field>> {
    fields.iter().map(|f| spark_field(f, inferred)).collect()
}

/// The Arrow type Spark reads (as PySpark's `to_arrow_type` writes it) for an Arrow type.
fn spark_type(dt: &DataType, inferred: bool) -> Result<DataType> {
    use DataType as T;
    Ok(match dt {
        T::Null | T::Boolean | T::Int8 | T::Int16 | T::Int32 | T::Int64 => dt.clone(),
        T::Float32 | T::Float64 | T::Decimal128(_, _) => dt.clone(),
        // Spark has no unsigned integers: the next wider signed type (a u64 above i64::MAX
        // fails to convert).
        T::UInt8 => T::Int16,
        T::UInt16 => T::Int32,
        T::UInt32 | T::UInt64 => T::Int64,
        T::Float16 => T::Float32,
        T::Decimal32(p, s) | T::Decimal64(p, s) => T::Decimal128(*p, *s),
        T::Decimal256(p, s) if *p <= 38 => T::Decimal128(*p, *s),
        T::Utf8 | T::LargeUtf8 | T::Utf8View => T::Utf8,
        T::Dictionary(_, v) if matches!(v.as_ref(), T::Utf8 | T::LargeUtf8 | T::Utf8View) => {
            T::Utf8
        }
        T::Binary | T::LargeBinary | T::BinaryView | T::FixedSizeBinary(_) => T::Binary,
        T::Date32 | T::Date64 => T::Date32,
        T::Timestamp(_, tz) => {
            T::Timestamp(TimeUnit::Microsecond, tz.as_ref().map(|_| "UTC".into()))
        }
        T::Time32(_) | T::Time64(_) => T::Time64(TimeUnit::Nanosecond),
        T::Duration(_) => T::Duration(TimeUnit::Microsecond),
        T::List(child) | T::LargeList(child) | T::FixedSizeList(child, _) => {
            let element = spark_type(child.data_type(), inferred)?;
            T::List(Arc::new(Field::new(
                "element",
                element,
                inferred || child.is_nullable(),
            )))
        }
        T::Struct(fields) => T::Struct(Fields::from(spark_fields(fields, inferred)?)),
        T::Map(entries, _) => {
            let T::Struct(kv) = entries.data_type() else {
                return Err(Error::Conversion(format!("malformed map type {dt}")));
            };
            let (Some(k), Some(v)) = (kv.first(), kv.get(1)) else {
                return Err(Error::Conversion(format!("malformed map type {dt}")));
            };
            let key = Field::new("key", spark_type(k.data_type(), inferred)?, false);
            let value = Field::new(
                "value",
                spark_type(v.data_type(), inferred)?,
                inferred || v.is_nullable(),
            );
            T::Map(
                Arc::new(Field::new(
                    "entries",
                    T::Struct(Fields::from(vec![key, value])),
                    false,
                )),
                false,
            )
        }
        T::Union(_, _) => {
            return Err(Error::Conversion(
                "Rust enums with data have no Spark type: use enums without data (sent as strings), structs or Options".into(),
            ));
        }
        other => {
            return Err(Error::Conversion(format!(
                "the Arrow type {other} has no Spark equivalent"
            )));
        }
    })
}

/// Spark's JSON for a data type (as PySpark's `DataType.json()`, keys sorted).
fn spark_type_json(dt: &DataType) -> Result<serde_json::Value> {
    use DataType as T;
    use serde_json::{Value, json};
    let simple = |s: &str| Ok(Value::String(s.to_string()));
    match dt {
        T::Null => simple("void"),
        T::Boolean => simple("boolean"),
        T::Int8 => simple("byte"),
        T::Int16 => simple("short"),
        T::Int32 => simple("integer"),
        T::Int64 => simple("long"),
        T::Float32 => simple("float"),
        T::Float64 => simple("double"),
        T::Decimal128(p, s) => simple(&format!("decimal({p},{s})")),
        T::Utf8 => simple("string"),
        T::Binary => simple("binary"),
        T::Date32 => simple("date"),
        T::Timestamp(_, Some(_)) => simple("timestamp"),
        T::Timestamp(_, None) => simple("timestamp_ntz"),
        T::Time64(_) => simple("time(6)"),
        T::Duration(_) => simple("interval day to second"),
        T::List(child) => Ok(json!({
            "containsNull": child.is_nullable(),
            "elementType": spark_type_json(child.data_type())?,
            "type": "array",
        })),
        T::Map(entries, _) => {
            let T::Struct(kv) = entries.data_type() else {
                return Err(Error::Conversion(format!("malformed map type {dt}")));
            };
            let (Some(k), Some(v)) = (kv.first(), kv.get(1)) else {
                return Err(Error::Conversion(format!("malformed map type {dt}")));
            };
            Ok(json!({
                "keyType": spark_type_json(k.data_type())?,
                "type": "map",
                "valueContainsNull": v.is_nullable(),
                "valueType": spark_type_json(v.data_type())?,
            }))
        }
        T::Struct(fields) => struct_json(fields.iter().map(|f| f.as_ref())),
        other => Err(Error::Conversion(format!(
            "the Arrow type {other} has no Spark equivalent"
        ))),
    }
}

fn struct_json<'f>(fields: impl Iterator<Item = &'f Field>) -> Result<serde_json::Value> {
    let fields = fields
        .map(|f| {
            Ok(serde_json::json!({
                "metadata": {},
                "name": f.name(),
                "nullable": f.is_nullable(),
                "type": spark_type_json(f.data_type())?,
            }))
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(serde_json::json!({ "fields": fields, "type": "struct" }))
}

/// Spark's JSON for a schema, as PySpark sends it in a `LocalRelation`.
fn spark_schema_json(fields: &[Field]) -> Result<String> {
    Ok(struct_json(fields.iter())?.to_string())
}

/// An explicit schema: the Arrow schema the values are converted to, and the Spark JSON sent
/// with them when it is known exactly (else it is written from the Arrow schema).
struct Explicit {
    arrow: SchemaRef,
    json: Option<String>,
}

impl Explicit {
    fn from_arrow(arrow: SchemaRef) -> Self {
        Self { arrow, json: None }
    }

    fn from_struct(s: &StructType) -> Self {
        Self {
            arrow: Arc::new(crate::types::to_arrow_schema(&s.to_proto(), "UTC")),
            json: Some(s.json()),
        }
    }
}

/// Parses a DDL schema on the server (AnalyzePlan DDLParse), as PySpark does, which then sends
/// the parsed struct's JSON.
async fn parse_ddl(session: &SparkSession, ddl: &str) -> Result<Explicit> {
    use pb::analyze_plan_request as req;
    match session
        .client
        .analyze(req::Analyze::DdlParse(req::DdlParse {
            ddl_string: ddl.to_string(),
        }))
        .await?
    {
        pb::analyze_plan_response::Result::DdlParse(p) => {
            let dt = p
                .parsed
                .ok_or_else(|| Error::Protocol("DDLParse returned no type".into()))?;
            match StructType::from_proto(&dt) {
                Ok(s) => Ok(Explicit::from_struct(&s)),
                // A single type (`"int"`): one column named `value`, as PySpark makes it.
                Err(_) => Ok(Explicit::from_arrow(Arc::new(
                    crate::types::to_arrow_schema(&dt, "UTC"),
                ))),
            }
        }
        other => Err(Error::Protocol(format!(
            "expected a parsed DDL type, got {other:?}"
        ))),
    }
}

// === inline and cached relations ===

/// The bytes of a batch's buffers (what PySpark compares with the cache threshold).
fn batch_bytes(batch: &RecordBatch) -> Result<usize> {
    batch
        .columns()
        .iter()
        .map(|c| c.to_data().get_slice_memory_size().map_err(Error::from))
        .sum()
}

/// An Arrow IPC stream of `batches`.
fn ipc_stream(schema: &SchemaRef, batches: &[RecordBatch]) -> Result<Bytes> {
    let mut buf = Vec::new();
    let mut w = arrow_ipc::writer::StreamWriter::try_new(&mut buf, schema)?;
    for b in batches {
        w.write(b)?;
    }
    w.finish()?;
    drop(w);
    Ok(Bytes::from(buf))
}

fn inline_relation(target: &Target, batches: &[RecordBatch]) -> Result<pb::relation::RelType> {
    Ok(pb::relation::RelType::LocalRelation(pb::LocalRelation {
        data: Some(ipc_stream(&target.schema, batches)?),
        schema: target.spark_schema.clone(),
    }))
}

/// The server's settings for local relations (one Config call, as PySpark makes).
struct CacheSettings {
    /// `None` when the server has no cached local relations (before Spark 4.1): always inline.
    threshold: Option<u64>,
    size_limit: u64,
    chunk_rows: usize,
    chunk_bytes: usize,
    batch_bytes: usize,
}

impl CacheSettings {
    const KEYS: [&'static str; 5] = [
        "spark.sql.session.localRelationCacheThreshold",
        "spark.sql.session.localRelationSizeLimit",
        "spark.sql.session.localRelationChunkSizeRows",
        "spark.sql.session.localRelationChunkSizeBytes",
        "spark.sql.session.localRelationBatchOfChunksSizeBytes",
    ];

    async fn fetch(session: &SparkSession) -> Result<Self> {
        use pb::config_request as cr;
        let resp = session
            .client
            .config(cr::operation::OpType::GetOption(cr::GetOption {
                keys: Self::KEYS.iter().map(|k| k.to_string()).collect(),
            }))
            .await?;
        let value = |key: &str| -> Result<Option<u64>> {
            resp.pairs
                .iter()
                .find(|kv| kv.key == key)
                .and_then(|kv| kv.value.as_deref())
                .map(|v| {
                    parse_bytes(v).ok_or_else(|| {
                        Error::Protocol(format!("the server's {key} is not a size: '{v}'"))
                    })
                })
                .transpose()
        };
        let [threshold, limit, rows, chunk, batch] = Self::KEYS;
        let chunked = value(rows)?.zip(value(chunk)?).zip(value(batch)?);
        let Some(((chunk_rows, chunk_bytes), batch_bytes)) = chunked else {
            return Ok(Self {
                threshold: None,
                size_limit: u64::MAX,
                chunk_rows: usize::MAX,
                chunk_bytes: usize::MAX,
                batch_bytes: usize::MAX,
            });
        };
        let size = |v: u64| usize::try_from(v).unwrap_or(usize::MAX);
        Ok(Self {
            threshold: value(threshold)?,
            size_limit: value(limit)?.unwrap_or(u64::MAX),
            chunk_rows: size(chunk_rows),
            chunk_bytes: size(chunk_bytes),
            batch_bytes: size(batch_bytes),
        })
    }
}

/// A size as Spark prints it: `1048576`, `134217728b`, `64m`, `1g`.
fn parse_bytes(v: &str) -> Option<u64> {
    let v = v.trim().to_ascii_lowercase();
    let digits = v.trim_end_matches(|c: char| c.is_ascii_alphabetic());
    let n: u64 = digits.parse().ok()?;
    let shift = match &v[digits.len()..] {
        "" | "b" => 0,
        "k" | "kb" => 10,
        "m" | "mb" => 20,
        "g" | "gb" => 30,
        "t" | "tb" => 40,
        _ => return None,
    };
    n.checked_mul(1u64 << shift)
}

/// Encodes batches into chunks (each an Arrow IPC stream) and uploads them in batches as
/// `cache/<sha256>` artifacts, as PySpark's `_cache_local_relation` does.
struct ChunkUploader<'s> {
    session: &'s SparkSession,
    schema: SchemaRef,
    has_schema: bool,
    schema_ipc_bytes: usize,
    chunk_limit: usize,
    upload_limit: usize,
    size_limit: u64,
    /// Batches of the chunk being filled, and its estimated size.
    current: Vec<RecordBatch>,
    current_bytes: usize,
    /// Encoded chunks waiting to be uploaded, and their size.
    blobs: Vec<Bytes>,
    blobs_bytes: usize,
    /// Hashes of the uploaded blobs, in order (the schema's first, when there is one).
    hashes: Vec<String>,
    total: u64,
}

impl<'s> ChunkUploader<'s> {
    fn new(session: &'s SparkSession, target: &Target, settings: &CacheSettings) -> Result<Self> {
        let schema_ipc_bytes = ipc_stream(&target.schema, &[])?.len();
        let mut up = Self {
            session,
            schema: target.schema.clone(),
            has_schema: target.spark_schema.is_some(),
            schema_ipc_bytes,
            chunk_limit: settings.chunk_bytes.min(settings.batch_bytes),
            upload_limit: settings.batch_bytes.min(MAX_UPLOAD_BATCH),
            size_limit: settings.size_limit,
            current: Vec::new(),
            current_bytes: schema_ipc_bytes,
            blobs: Vec::new(),
            blobs_bytes: 0,
            hashes: Vec::new(),
            total: 0,
        };
        if let Some(schema) = &target.spark_schema {
            let blob = Bytes::from(schema.clone().into_bytes());
            up.total += blob.len() as u64;
            up.blobs_bytes += blob.len();
            up.blobs.push(blob);
        }
        Ok(up)
    }

    async fn push(&mut self, batch: RecordBatch, size: usize) -> Result<()> {
        if !self.current.is_empty() && self.current_bytes + size > self.chunk_limit {
            self.flush_chunk().await?;
        }
        self.current.push(batch);
        self.current_bytes += size;
        Ok(())
    }

    async fn flush_chunk(&mut self) -> Result<()> {
        let chunk = ipc_stream(&self.schema, &self.current)?;
        self.current.clear();
        self.current_bytes = self.schema_ipc_bytes;
        self.total += chunk.len() as u64;
        if self.total > self.size_limit {
            return Err(Error::InvalidArgument(format!(
                "the local data is over {} bytes, more than the server's spark.sql.session.localRelationSizeLimit of {} bytes (raise it, or write the data to storage and read it from there)",
                self.total, self.size_limit
            )));
        }
        if !self.blobs.is_empty() && self.blobs_bytes + chunk.len() > self.upload_limit {
            self.upload().await?;
        }
        self.blobs_bytes += chunk.len();
        self.blobs.push(chunk);
        Ok(())
    }

    /// Uploads the waiting blobs the server does not have yet (ArtifactStatus, then
    /// AddArtifacts), and records their hashes.
    async fn upload(&mut self) -> Result<()> {
        let blobs = std::mem::take(&mut self.blobs);
        self.blobs_bytes = 0;
        if blobs.is_empty() {
            return Ok(());
        }
        let hashes: Vec<String> = blobs
            .iter()
            .map(|b| hex::encode(Sha256::digest(b)))
            .collect();
        let mut names: Vec<String> = hashes.iter().map(|h| format!("cache/{h}")).collect();
        names.sort();
        names.dedup();
        let cached = self.session.client.artifact_status(names).await?;
        let mut seen = std::collections::HashSet::new();
        let mut artifacts = Vec::new();
        for (blob, hash) in blobs.into_iter().zip(&hashes) {
            let name = format!("cache/{hash}");
            if cached.get(&name).copied().unwrap_or(false) || !seen.insert(name.clone()) {
                continue;
            }
            artifacts.push((name, blob));
        }
        let count = artifacts.len();
        let bytes: usize = artifacts.iter().map(|(_, b)| b.len()).sum();
        if count > 0 {
            let results = self.session.add_artifacts(artifacts).await?;
            if let Some((name, _)) = results.iter().find(|(_, ok)| !ok) {
                return Err(Error::Protocol(format!(
                    "the server reported a CRC mismatch for the uploaded artifact {name}"
                )));
            }
        }
        tracing::debug!(
            artifacts = count,
            bytes,
            "uploaded local data as cached artifacts"
        );
        self.hashes.extend(hashes);
        Ok(())
    }

    async fn finish(mut self) -> Result<pb::relation::RelType> {
        if !self.current.is_empty() {
            self.flush_chunk().await?;
        }
        self.upload().await?;
        let mut hashes = self.hashes.into_iter();
        let schema_hash = if self.has_schema { hashes.next() } else { None };
        Ok(pb::relation::RelType::ChunkedCachedLocalRelation(
            pb::ChunkedCachedLocalRelation {
                data_hashes: hashes.collect(),
                schema_hash,
            },
        ))
    }
}

// === impl SparkSession: local data ===

impl SparkSession {
    /// A DataFrame of `serde::Serialize` values (PySpark's `createDataFrame` of a list): each
    /// value is a row, a struct's fields are the columns. Await the result, or call
    /// [`CreateDataFrame::build_inline`] to build the plan without a server.
    ///
    /// Without [`schema`](CreateDataFrame::schema), the schema is inferred from the values
    /// (through `serde_arrow`): `i32` is an `int`, `i64` a `bigint`, `String` a `string`,
    /// `Vec<T>` an `array`, `HashMap` a `map`, nested structs `struct`s, unsigned integers the
    /// next wider signed type, enums without data `string`s; every column is nullable, as in
    /// PySpark. Dates, timestamps and decimals serialize as text in serde, so they need the
    /// explicit schema to become `date`, `timestamp` or `decimal` columns.
    ///
    /// Large data is uploaded as cached artifacts rather than sent inline (see
    /// [`CreateDataFrame::build`]).
    ///
    /// ```no_run
    /// # async fn run(spark: sc_client::SparkSession) -> sc_client::Result<()> {
    /// #[derive(serde::Serialize)]
    /// struct Sale { region: String, day: chrono::NaiveDate, amount: f64 }
    /// let sales = vec![
    ///     Sale { region: "eu".into(), day: chrono::NaiveDate::MIN, amount: 1.5 },
    /// ];
    /// let inferred = spark.create_dataframe_from(&sales).await?; // day is a string
    /// let typed = spark
    ///     .create_dataframe_from(&sales)
    ///     .schema("region string, day date, amount double")
    ///     .await?;
    /// # Ok(()) }
    /// ```
    pub fn create_dataframe_from<'a, T, D>(&self, items: D) -> CreateDataFrame<'a>
    where
        D: AsRef<[T]> + Send + Sync + 'a,
        T: Serialize + 'a,
    {
        CreateDataFrame {
            session: self.clone(),
            source: Source::Serde(Box::new(SerdeItems {
                data: items,
                _item: PhantomData,
            })),
            schema: None,
            names: None,
        }
    }

    /// A DataFrame of rows given as tuples (or any `serde::Serialize` values) and the names of
    /// their columns, as PySpark's `createDataFrame(rows, ["name", "n"])` (the plan renames
    /// the columns with a `ToDF`). Fewer names than columns are completed with `_<i>`.
    ///
    /// ```no_run
    /// # async fn run(spark: sc_client::SparkSession) -> sc_client::Result<()> {
    /// let df = spark
    ///     .create_dataframe_from_rows(vec![("alice", 3i64), ("bob", 5)], ["name", "n"])
    ///     .await?;
    /// # Ok(()) }
    /// ```
    pub fn create_dataframe_from_rows<'a, T, D>(
        &self,
        rows: D,
        names: impl IntoIterator<Item = impl Into<String>>,
    ) -> CreateDataFrame<'a>
    where
        D: AsRef<[T]> + Send + Sync + 'a,
        T: Serialize + 'a,
    {
        let mut builder = self.create_dataframe_from(rows);
        builder.names = Some(names.into_iter().map(Into::into).collect());
        builder
    }

    /// A DataFrame of local Arrow batches (PySpark's `createDataFrame` of an Arrow table):
    /// inline, or uploaded as cached artifacts when large, unlike
    /// [`create_dataframe`](Self::create_dataframe), which always sends them inline. Column
    /// types Spark lacks are converted (for example `LargeUtf8` to `Utf8`).
    pub fn create_dataframe_from_batches(
        &self,
        batches: &[RecordBatch],
    ) -> CreateDataFrame<'static> {
        CreateDataFrame {
            session: self.clone(),
            source: Source::Arrow(batches.to_vec()),
            schema: None,
            names: None,
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use std::collections::HashMap;

    async fn offline() -> SparkSession {
        SparkSession::builder()
            .remote("sc://127.0.0.1:1")
            .build()
            .await
            .unwrap()
    }

    fn local_relation(df: &DataFrame) -> (Vec<RecordBatch>, Option<String>) {
        let mut rel = df.relation().clone();
        loop {
            match rel.rel_type {
                Some(pb::relation::RelType::ToDf(t)) => rel = *t.input.unwrap(),
                Some(pb::relation::RelType::LocalRelation(l)) => {
                    let reader = arrow_ipc::reader::StreamReader::try_new(
                        std::io::Cursor::new(l.data.unwrap()),
                        None,
                    )
                    .unwrap();
                    return (reader.map(|b| b.unwrap()).collect(), l.schema);
                }
                other => panic!("unexpected relation {other:?}"),
            }
        }
    }

    #[derive(Serialize)]
    struct Inner {
        x: i32,
    }

    #[derive(Serialize)]
    struct Rec {
        name: String,
        n: Option<u8>,
        tags: Vec<String>,
        m: HashMap<String, f64>,
        inner: Inner,
        pair: (i64, bool),
    }

    #[tokio::test]
    async fn infers_spark_types_from_serde_values() {
        let spark = offline().await;
        let recs = vec![Rec {
            name: "a".into(),
            n: Some(7),
            tags: vec!["t".into()],
            m: HashMap::from([("k".into(), 1.5)]),
            inner: Inner { x: 1 },
            pair: (2, true),
        }];
        let df = spark.create_dataframe_from(&recs).build_inline().unwrap();
        let (batches, schema) = local_relation(&df);
        let s = batches[0].schema();
        assert_eq!(s.field(0).data_type(), &DataType::Utf8);
        assert_eq!(
            s.field(1).data_type(),
            &DataType::Int16,
            "u8 widens to short"
        );
        assert!(s.fields().iter().all(|f| f.is_nullable()));
        assert_eq!(
            schema.unwrap(),
            concat!(
                r#"{"fields":[{"metadata":{},"name":"name","nullable":true,"type":"string"},"#,
                r#"{"metadata":{},"name":"n","nullable":true,"type":"short"},"#,
                r#"{"metadata":{},"name":"tags","nullable":true,"type":{"containsNull":true,"elementType":"string","type":"array"}},"#,
                r#"{"metadata":{},"name":"m","nullable":true,"type":{"keyType":"string","type":"map","valueContainsNull":true,"valueType":"double"}},"#,
                r#"{"metadata":{},"name":"inner","nullable":true,"type":{"fields":[{"metadata":{},"name":"x","nullable":true,"type":"integer"}],"type":"struct"}},"#,
                r#"{"metadata":{},"name":"pair","nullable":true,"type":{"fields":[{"metadata":{},"name":"_1","nullable":true,"type":"long"},{"metadata":{},"name":"_2","nullable":true,"type":"boolean"}],"type":"struct"}}],"type":"struct"}"#
            )
        );
    }

    #[tokio::test]
    async fn tuples_with_names_and_errors() {
        let spark = offline().await;
        let df = spark
            .create_dataframe_from_rows(vec![("a", 1i64, 2.5), ("b", 2, 3.5)], ["name", "n"])
            .build_inline()
            .unwrap();
        let Some(pb::relation::RelType::ToDf(t)) = &df.relation().rel_type else {
            panic!("expected a ToDF");
        };
        assert_eq!(t.column_names, vec!["name", "n", "_3"]);
        let (batches, _) = local_relation(&df);
        assert_eq!(batches[0].num_rows(), 2);
        assert_eq!(batches[0].schema().field(2).name(), "_3");

        let too_many = spark
            .create_dataframe_from_rows(vec![(1i32,)], ["a", "b"])
            .build_inline();
        assert!(matches!(too_many, Err(Error::InvalidArgument(_))));
        let nulls = spark
            .create_dataframe_from(vec![(None::<i32>,)])
            .build_inline()
            .unwrap_err();
        assert!(nulls.to_string().contains("every value is None"), "{nulls}");
        let empty = spark
            .create_dataframe_from(Vec::<(i32,)>::new())
            .build_inline()
            .unwrap_err();
        assert!(
            empty.to_string().contains("give one with .schema"),
            "{empty}"
        );
        let ddl = spark
            .create_dataframe_from(vec![(1i32,)])
            .schema("a int")
            .build_inline();
        assert!(matches!(ddl, Err(Error::InvalidArgument(_))));
    }

    #[tokio::test]
    async fn explicit_schema_converts_text_to_dates_and_decimals() {
        let spark = offline().await;
        let schema = Schema::new(vec![
            Field::new("d", DataType::Date32, true),
            Field::new(
                "ts",
                DataType::Timestamp(TimeUnit::Millisecond, Some("Europe/Paris".into())),
                true,
            ),
            Field::new("amount", DataType::Decimal128(10, 2), false),
        ]);
        let rows = vec![(
            chrono::NaiveDate::from_ymd_opt(2024, 2, 29).unwrap(),
            chrono::DateTime::from_timestamp_micros(1_700_000_000_000_001).unwrap(),
            "12.30",
        )];
        let df = spark
            .create_dataframe_from(&rows)
            .schema(schema)
            .build_inline()
            .unwrap();
        let (batches, json) = local_relation(&df);
        let s = batches[0].schema();
        assert_eq!(
            s.field(1).data_type(),
            &DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()))
        );
        let json = json.unwrap();
        assert!(json.contains(r#""type":"date""#), "{json}");
        assert!(json.contains(r#""type":"timestamp""#), "{json}");
        assert!(
            json.contains(r#""nullable":false,"type":"decimal(10,2)""#),
            "{json}"
        );
        let row = &crate::Row::from_batch(batches[0].clone())[0];
        assert_eq!(
            row.get::<chrono::DateTime<chrono::Utc>>("ts")
                .unwrap()
                .timestamp_micros(),
            1_700_000_000_000_001
        );
        assert_eq!(row.get::<crate::Decimal>("amount").unwrap().value, "12.30");
    }

    #[test]
    fn sizes_as_spark_prints_them() {
        assert_eq!(parse_bytes("1048576"), Some(1 << 20));
        assert_eq!(parse_bytes("134217728b"), Some(128 << 20));
        assert_eq!(parse_bytes("64m"), Some(64 << 20));
        assert_eq!(parse_bytes("3g"), Some(3 << 30));
        assert_eq!(parse_bytes("x"), None);
        assert_eq!(parse_bytes("1q"), None);
    }
}
