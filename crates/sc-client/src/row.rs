//! [`Row`]: one row of a result with typed getters, row streams with bounded memory, and results
//! as any `serde::Deserialize` type (through `serde_arrow`).

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::fmt;
use std::hash::{BuildHasher, Hash};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use arrow_array::cast::AsArray;
use arrow_array::types::{
    Date32Type, Date64Type, Decimal128Type, Decimal256Type, DecimalType, DurationMicrosecondType,
    DurationMillisecondType, DurationNanosecondType, DurationSecondType, Float32Type, Float64Type,
    Int8Type, Int16Type, Int32Type, Int64Type, Time32MillisecondType, Time32SecondType,
    Time64MicrosecondType, Time64NanosecondType, TimestampMicrosecondType,
    TimestampMillisecondType, TimestampNanosecondType, TimestampSecondType,
};
use arrow_array::{Array, ArrayRef, RecordBatch, StructArray};
use arrow_schema::{DataType, Field, FieldRef, Fields, SchemaRef, TimeUnit};
use futures_core::Stream;
use futures_util::StreamExt;
use serde::de::DeserializeOwned;

use crate::column::{Date, Decimal, Timestamp, TimestampNtz};
use crate::dataframe::{BatchStream, DataFrame};
use crate::error::{Error, Result};

// === Row ===

/// One row of a result, as PySpark's `Row`: values by position or by column name, read as Rust
/// types with [`get`](Self::get).
///
/// A row is a view into the Arrow batch it came from (cloning it is cheap); it keeps that batch
/// alive while it exists.
///
/// ```no_run
/// # async fn run(spark: sc_client::SparkSession) -> sc_client::Result<()> {
/// let df = spark.sql("select 'alice' as name, 3 as n, array(1, 2) as xs").await?;
/// let row = df.first_row().await?.expect("one row");
/// let name: String = row.get("name")?;
/// let n: i32 = row.get(1)?;
/// let xs: Vec<i32> = row.get("xs")?;
/// let missing: Option<String> = row.get("name")?;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Row {
    batch: Arc<RecordBatch>,
    index: usize,
}

impl Row {
    /// The rows of an Arrow batch, in order.
    pub fn from_batch(batch: RecordBatch) -> Vec<Row> {
        let batch = Arc::new(batch);
        (0..batch.num_rows())
            .map(|index| Row {
                batch: batch.clone(),
                index,
            })
            .collect()
    }

    /// The struct value at `index` (not null) as a row. Only that value is kept: elsewhere a
    /// non-nullable child may hold nulls under null structs, which a batch would refuse.
    fn from_struct(array: &StructArray, index: usize) -> Result<Row> {
        let (fields, columns, _nulls) = array.slice(index, 1).into_parts();
        let schema = Arc::new(arrow_schema::Schema::new(fields));
        let options = arrow_array::RecordBatchOptions::new().with_row_count(Some(1));
        let batch = RecordBatch::try_new_with_options(schema, columns, &options)?;
        Ok(Row {
            batch: Arc::new(batch),
            index: 0,
        })
    }

    /// The number of values.
    pub fn len(&self) -> usize {
        self.batch.num_columns()
    }

    /// Whether the row has no values (no columns).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The schema of the row (its column names and Arrow types).
    pub fn schema(&self) -> SchemaRef {
        self.batch.schema()
    }

    /// The column names, in order (PySpark's `Row.__fields__`).
    pub fn field_names(&self) -> Vec<&str> {
        self.batch
            .schema_ref()
            .fields()
            .iter()
            .map(|f| f.name().as_str())
            .collect()
    }

    /// The position of the column `name`.
    pub fn index_of(&self, name: &str) -> Result<usize> {
        name.position(self)
    }

    /// The value of a column, by position (`usize`) or name (`&str`), as a Rust type: `bool`,
    /// `i8`..`i64`, `f32`, `f64`, `String`, `Vec<u8>` (binary), [`Decimal`], dates, timestamps
    /// and durations (as `chrono` types or this crate's [`Date`], [`Timestamp`],
    /// [`TimestampNtz`]), `Vec<T>` for arrays, `HashMap`/`BTreeMap` for maps, [`Row`] for
    /// structs, and `Option<T>` of any of them for values that may be null.
    ///
    /// Integers widen (an `int` column reads as `i64`) but never narrow; a null read as a
    /// non-`Option` type is an error, as is a missing column or a type that does not fit.
    pub fn get<T: FromValue>(&self, column: impl RowIndex) -> Result<T> {
        let i = column.position(self)?;
        let array = self.batch.column(i);
        T::from_value(array.as_ref(), self.index).map_err(|e| self.in_column(i, e))
    }

    /// Whether the value of a column is null.
    pub fn is_null(&self, column: impl RowIndex) -> Result<bool> {
        let i = column.position(self)?;
        Ok(is_null(self.batch.column(i).as_ref(), self.index))
    }

    /// The value of a column deserialized into any `serde` type (through `serde_arrow`): for
    /// example a struct column into your own `#[derive(Deserialize)]` struct.
    pub fn get_as<T: DeserializeOwned>(&self, column: impl RowIndex) -> Result<T> {
        let i = column.position(self)?;
        let field = self.batch.schema_ref().field(i).clone().with_name("item");
        let single = RecordBatch::try_new(
            Arc::new(arrow_schema::Schema::new(vec![field])),
            vec![self.batch.column(i).slice(self.index, 1)],
        )?;
        let items: Vec<serde_arrow::utils::Item<T>> =
            deserialize_batch(&single).map_err(|e| self.in_column(i, e))?;
        items
            .into_iter()
            .next()
            .map(|item| item.0)
            .ok_or_else(|| Error::Conversion("no value was deserialized".into()))
    }

    /// The whole row deserialized into any `serde` type (through `serde_arrow`): a struct whose
    /// fields are named as the columns, a tuple, or a map.
    pub fn deserialize<T: DeserializeOwned>(&self) -> Result<T> {
        let mut items: Vec<T> = deserialize_batch(&self.to_batch())?;
        items
            .pop()
            .ok_or_else(|| Error::Conversion("no value was deserialized".into()))
    }

    /// The row as a one-row Arrow batch.
    pub fn to_batch(&self) -> RecordBatch {
        self.batch.slice(self.index, 1)
    }

    fn in_column(&self, i: usize, e: Error) -> Error {
        match e {
            Error::Conversion(m) => {
                let name = self
                    .batch
                    .schema_ref()
                    .fields()
                    .get(i)
                    .map(|f| f.name().clone())
                    .unwrap_or_default();
                Error::Conversion(format!("column '{name}' (#{i}): {m}"))
            }
            other => other,
        }
    }
}

impl PartialEq for Row {
    /// Rows are equal when their column names, types and values are.
    fn eq(&self, other: &Self) -> bool {
        self.batch.schema_ref().fields() == other.batch.schema_ref().fields()
            && self
                .batch
                .columns()
                .iter()
                .zip(other.batch.columns())
                .all(|(a, b)| a.slice(self.index, 1).to_data() == b.slice(other.index, 1).to_data())
    }
}

impl fmt::Display for Row {
    /// `Row(name='alice', n=3)`, as PySpark prints a row.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let options = arrow_cast::display::FormatOptions::default().with_null("None");
        f.write_str("Row(")?;
        for (i, (field, column)) in self
            .batch
            .schema_ref()
            .fields()
            .iter()
            .zip(self.batch.columns())
            .enumerate()
        {
            if i > 0 {
                f.write_str(", ")?;
            }
            write!(f, "{}=", field.name())?;
            let quoted = !is_null(column.as_ref(), self.index)
                && matches!(
                    column.data_type(),
                    DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View
                );
            match arrow_cast::display::ArrayFormatter::try_new(column.as_ref(), &options) {
                Ok(fmt) if quoted => write!(f, "'{}'", fmt.value(self.index))?,
                Ok(fmt) => write!(f, "{}", fmt.value(self.index))?,
                Err(_) => write!(f, "<{}>", column.data_type())?,
            }
        }
        f.write_str(")")
    }
}

impl fmt::Debug for Row {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

// === RowIndex ===

mod sealed {
    pub trait Sealed {}
    impl Sealed for usize {}
    impl Sealed for &str {}
    impl Sealed for String {}
    impl Sealed for &String {}
}

/// What selects a value of a [`Row`]: a position (`usize`) or a column name (`&str`, `String`).
pub trait RowIndex: sealed::Sealed {
    /// The position this index selects in `row`, or an error naming the missing column.
    fn position(&self, row: &Row) -> Result<usize>;
}

impl RowIndex for usize {
    fn position(&self, row: &Row) -> Result<usize> {
        if *self < row.len() {
            Ok(*self)
        } else {
            Err(Error::InvalidArgument(format!(
                "column index {self} is out of range: the row has {} columns",
                row.len()
            )))
        }
    }
}

impl RowIndex for &str {
    fn position(&self, row: &Row) -> Result<usize> {
        row.batch
            .schema_ref()
            .fields()
            .iter()
            .position(|f| f.name() == self)
            .ok_or_else(|| {
                Error::InvalidArgument(format!(
                    "the row has no column '{self}' (columns: {})",
                    row.field_names().join(", ")
                ))
            })
    }
}

impl RowIndex for String {
    fn position(&self, row: &Row) -> Result<usize> {
        self.as_str().position(row)
    }
}

impl RowIndex for &String {
    fn position(&self, row: &Row) -> Result<usize> {
        self.as_str().position(row)
    }
}

// === FromValue ===

/// A Rust type that a value of a Spark result can be read as (see [`Row::get`]).
///
/// Implement it to read your own types from rows; `array` is one column of a result and
/// `index` a row of it (within bounds, possibly null).
pub trait FromValue: Sized {
    /// Reads the value at `index` of `array`. A type mismatch or an unexpected null is an
    /// [`Error::Conversion`].
    fn from_value(array: &dyn Array, index: usize) -> Result<Self>;
}

fn is_null(array: &dyn Array, index: usize) -> bool {
    array.is_null(index) || matches!(array.data_type(), DataType::Null)
}

fn mismatch<T>(array: &dyn Array) -> Error {
    Error::Conversion(format!(
        "a value of Arrow type {} cannot be read as {}",
        array.data_type(),
        std::any::type_name::<T>()
    ))
}

/// Fails on a null value: only `Option<T>` reads nulls.
fn non_null<T>(array: &dyn Array, index: usize) -> Result<()> {
    if is_null(array, index) {
        Err(Error::Conversion(format!(
            "the value is null; read it as Option<{}>",
            std::any::type_name::<T>()
        )))
    } else {
        Ok(())
    }
}

impl<T: FromValue> FromValue for Option<T> {
    fn from_value(array: &dyn Array, index: usize) -> Result<Self> {
        if is_null(array, index) {
            Ok(None)
        } else {
            T::from_value(array, index).map(Some)
        }
    }
}

impl FromValue for bool {
    fn from_value(array: &dyn Array, index: usize) -> Result<Self> {
        non_null::<Self>(array, index)?;
        array
            .as_boolean_opt()
            .map(|a| a.value(index))
            .ok_or_else(|| mismatch::<Self>(array))
    }
}

/// Integers read from their own Arrow type and every narrower one.
macro_rules! integer_from_value {
    ($t:ty => $($arrow:ty),+) => {
        impl FromValue for $t {
            fn from_value(array: &dyn Array, index: usize) -> Result<Self> {
                non_null::<Self>(array, index)?;
                $(
                    if let Some(a) = array.as_primitive_opt::<$arrow>() {
                        return Ok(<$t>::from(a.value(index)));
                    }
                )+
                Err(mismatch::<Self>(array))
            }
        }
    };
}

integer_from_value!(i8 => Int8Type);
integer_from_value!(i16 => Int16Type, Int8Type);
integer_from_value!(i32 => Int32Type, Int16Type, Int8Type);
integer_from_value!(i64 => Int64Type, Int32Type, Int16Type, Int8Type);
integer_from_value!(f32 => Float32Type);
integer_from_value!(f64 => Float64Type, Float32Type);

impl FromValue for String {
    fn from_value(array: &dyn Array, index: usize) -> Result<Self> {
        non_null::<Self>(array, index)?;
        if let Some(a) = array.as_string_opt::<i32>() {
            return Ok(a.value(index).to_string());
        }
        if let Some(a) = array.as_string_opt::<i64>() {
            return Ok(a.value(index).to_string());
        }
        if let Some(a) = array.as_string_view_opt() {
            return Ok(a.value(index).to_string());
        }
        Err(mismatch::<Self>(array))
    }
}

/// Binary values (`Vec<T>` of another type reads an array column).
impl FromValue for Vec<u8> {
    fn from_value(array: &dyn Array, index: usize) -> Result<Self> {
        non_null::<Self>(array, index)?;
        if let Some(a) = array.as_binary_opt::<i32>() {
            return Ok(a.value(index).to_vec());
        }
        if let Some(a) = array.as_binary_opt::<i64>() {
            return Ok(a.value(index).to_vec());
        }
        if let Some(a) = array.as_binary_view_opt() {
            return Ok(a.value(index).to_vec());
        }
        if let Some(a) = array.as_fixed_size_binary_opt() {
            return Ok(a.value(index).to_vec());
        }
        Err(mismatch::<Self>(array))
    }
}

/// The elements of one array value, as an array of their own.
fn list_elements(array: &dyn Array, index: usize) -> Option<ArrayRef> {
    if let Some(a) = array.as_list_opt::<i32>() {
        return Some(a.value(index));
    }
    if let Some(a) = array.as_list_opt::<i64>() {
        return Some(a.value(index));
    }
    if let Some(a) = array.as_fixed_size_list_opt() {
        return Some(a.value(index));
    }
    None
}

/// Array values (`Vec<u8>` reads binary values instead).
impl<T: FromValue> FromValue for Vec<T> {
    fn from_value(array: &dyn Array, index: usize) -> Result<Self> {
        non_null::<Self>(array, index)?;
        let values = list_elements(array, index).ok_or_else(|| mismatch::<Self>(array))?;
        (0..values.len())
            .map(|i| {
                T::from_value(values.as_ref(), i).map_err(|e| match e {
                    Error::Conversion(m) => Error::Conversion(format!("element {i}: {m}")),
                    other => other,
                })
            })
            .collect()
    }
}

/// The key and value arrays of one map value.
fn map_entries(array: &dyn Array, index: usize) -> Option<(ArrayRef, ArrayRef)> {
    let map = array.as_map_opt()?;
    let entries = map.value(index);
    Some((entries.column(0).clone(), entries.column(1).clone()))
}

fn read_map<K: FromValue, V: FromValue, M: FromIterator<(K, V)>>(
    array: &dyn Array,
    index: usize,
) -> Result<M> {
    non_null::<M>(array, index)?;
    let (keys, values) = map_entries(array, index).ok_or_else(|| mismatch::<M>(array))?;
    (0..keys.len())
        .map(|i| {
            Ok((
                K::from_value(keys.as_ref(), i)?,
                V::from_value(values.as_ref(), i)?,
            ))
        })
        .collect()
}

impl<K: FromValue + Eq + Hash, V: FromValue, S: BuildHasher + Default> FromValue
    for HashMap<K, V, S>
{
    fn from_value(array: &dyn Array, index: usize) -> Result<Self> {
        read_map(array, index)
    }
}

impl<K: FromValue + Ord, V: FromValue> FromValue for BTreeMap<K, V> {
    fn from_value(array: &dyn Array, index: usize) -> Result<Self> {
        read_map(array, index)
    }
}

/// Struct values.
impl FromValue for Row {
    fn from_value(array: &dyn Array, index: usize) -> Result<Self> {
        non_null::<Self>(array, index)?;
        let s = array
            .as_struct_opt()
            .ok_or_else(|| mismatch::<Self>(array))?;
        Row::from_struct(s, index)
    }
}

/// The days since 1970-01-01 of a date value.
fn epoch_days(array: &dyn Array, index: usize) -> Option<i32> {
    if let Some(a) = array.as_primitive_opt::<Date32Type>() {
        return Some(a.value(index));
    }
    array
        .as_primitive_opt::<Date64Type>()
        .map(|a| a.value(index).div_euclid(86_400_000) as i32)
}

impl FromValue for Date {
    fn from_value(array: &dyn Array, index: usize) -> Result<Self> {
        non_null::<Self>(array, index)?;
        epoch_days(array, index)
            .map(Date)
            .ok_or_else(|| mismatch::<Self>(array))
    }
}

impl FromValue for chrono::NaiveDate {
    fn from_value(array: &dyn Array, index: usize) -> Result<Self> {
        non_null::<Self>(array, index)?;
        let days = epoch_days(array, index).ok_or_else(|| mismatch::<Self>(array))?;
        chrono::NaiveDate::from_epoch_days(days)
            .ok_or_else(|| Error::Conversion(format!("day {days} is out of chrono's range")))
    }
}

/// A timestamp value in microseconds since the epoch, and whether its type has a time zone.
fn epoch_micros(array: &dyn Array, index: usize) -> Option<(i64, bool)> {
    let DataType::Timestamp(unit, tz) = array.data_type() else {
        return None;
    };
    let micros = match unit {
        TimeUnit::Second => array
            .as_primitive_opt::<TimestampSecondType>()?
            .value(index)
            .saturating_mul(1_000_000),
        TimeUnit::Millisecond => array
            .as_primitive_opt::<TimestampMillisecondType>()?
            .value(index)
            .saturating_mul(1_000),
        TimeUnit::Microsecond => array
            .as_primitive_opt::<TimestampMicrosecondType>()?
            .value(index),
        TimeUnit::Nanosecond => array
            .as_primitive_opt::<TimestampNanosecondType>()?
            .value(index)
            .div_euclid(1_000),
    };
    Some((micros, tz.is_some()))
}

fn micros_to_datetime(micros: i64) -> Result<chrono::DateTime<chrono::Utc>> {
    chrono::DateTime::from_timestamp_micros(micros)
        .ok_or_else(|| Error::Conversion(format!("timestamp {micros} µs is out of chrono's range")))
}

/// A `timestamp` (with the session time zone) value. A `timestamp_ntz` is read as
/// [`chrono::NaiveDateTime`] or [`TimestampNtz`] instead.
impl FromValue for chrono::DateTime<chrono::Utc> {
    fn from_value(array: &dyn Array, index: usize) -> Result<Self> {
        non_null::<Self>(array, index)?;
        match epoch_micros(array, index) {
            Some((micros, true)) => micros_to_datetime(micros),
            _ => Err(mismatch::<Self>(array)),
        }
    }
}

/// A `timestamp_ntz` value, or a `timestamp` value as its UTC date and time.
impl FromValue for chrono::NaiveDateTime {
    fn from_value(array: &dyn Array, index: usize) -> Result<Self> {
        non_null::<Self>(array, index)?;
        let (micros, _) = epoch_micros(array, index).ok_or_else(|| mismatch::<Self>(array))?;
        micros_to_datetime(micros).map(|t| t.naive_utc())
    }
}

impl FromValue for Timestamp {
    fn from_value(array: &dyn Array, index: usize) -> Result<Self> {
        non_null::<Self>(array, index)?;
        match epoch_micros(array, index) {
            Some((micros, true)) => Ok(Timestamp(micros)),
            _ => Err(mismatch::<Self>(array)),
        }
    }
}

impl FromValue for TimestampNtz {
    fn from_value(array: &dyn Array, index: usize) -> Result<Self> {
        non_null::<Self>(array, index)?;
        match epoch_micros(array, index) {
            Some((micros, false)) => Ok(TimestampNtz(micros)),
            _ => Err(mismatch::<Self>(array)),
        }
    }
}

/// A `time` value.
impl FromValue for chrono::NaiveTime {
    fn from_value(array: &dyn Array, index: usize) -> Result<Self> {
        non_null::<Self>(array, index)?;
        let nanos: i64 = if let Some(a) = array.as_primitive_opt::<Time64NanosecondType>() {
            a.value(index)
        } else if let Some(a) = array.as_primitive_opt::<Time64MicrosecondType>() {
            a.value(index).saturating_mul(1_000)
        } else if let Some(a) = array.as_primitive_opt::<Time32MillisecondType>() {
            i64::from(a.value(index)) * 1_000_000
        } else if let Some(a) = array.as_primitive_opt::<Time32SecondType>() {
            i64::from(a.value(index)) * 1_000_000_000
        } else {
            return Err(mismatch::<Self>(array));
        };
        let secs = u32::try_from(nanos.div_euclid(1_000_000_000)).ok();
        let frac = nanos.rem_euclid(1_000_000_000) as u32;
        secs.and_then(|s| chrono::NaiveTime::from_num_seconds_from_midnight_opt(s, frac))
            .ok_or_else(|| Error::Conversion(format!("{nanos} ns is not a time of day")))
    }
}

/// A day-time interval value.
impl FromValue for chrono::TimeDelta {
    fn from_value(array: &dyn Array, index: usize) -> Result<Self> {
        non_null::<Self>(array, index)?;
        let delta = if let Some(a) = array.as_primitive_opt::<DurationMicrosecondType>() {
            Some(chrono::TimeDelta::microseconds(a.value(index)))
        } else if let Some(a) = array.as_primitive_opt::<DurationNanosecondType>() {
            Some(chrono::TimeDelta::nanoseconds(a.value(index)))
        } else if let Some(a) = array.as_primitive_opt::<DurationMillisecondType>() {
            chrono::TimeDelta::try_milliseconds(a.value(index))
        } else if let Some(a) = array.as_primitive_opt::<DurationSecondType>() {
            chrono::TimeDelta::try_seconds(a.value(index))
        } else {
            return Err(mismatch::<Self>(array));
        };
        delta.ok_or_else(|| Error::Conversion("the duration is out of chrono's range".into()))
    }
}

/// A decimal value, exactly (its digits as text with Spark's precision and scale).
impl FromValue for Decimal {
    fn from_value(array: &dyn Array, index: usize) -> Result<Self> {
        non_null::<Self>(array, index)?;
        match array.data_type() {
            DataType::Decimal128(p, s) => {
                let a = array
                    .as_primitive_opt::<Decimal128Type>()
                    .ok_or_else(|| mismatch::<Self>(array))?;
                Ok(Decimal {
                    value: Decimal128Type::format_decimal(a.value(index), *p, *s),
                    precision: i32::from(*p),
                    scale: i32::from(*s),
                })
            }
            DataType::Decimal256(p, s) => {
                let a = array
                    .as_primitive_opt::<Decimal256Type>()
                    .ok_or_else(|| mismatch::<Self>(array))?;
                Ok(Decimal {
                    value: Decimal256Type::format_decimal(a.value(index), *p, *s),
                    precision: i32::from(*p),
                    scale: i32::from(*s),
                })
            }
            _ => Err(mismatch::<Self>(array)),
        }
    }
}

// === serde ===

/// The Arrow type `serde_arrow` can deserialize for `dt`: timestamps in a named time zone
/// (Spark sends the session's, such as `Etc/UTC` or `Europe/Paris`) become UTC timestamps of
/// the same instants.
fn serde_type(dt: &DataType) -> DataType {
    let field = |f: &FieldRef| -> FieldRef {
        Arc::new(f.as_ref().clone().with_data_type(serde_type(f.data_type())))
    };
    match dt {
        DataType::Timestamp(unit, Some(tz)) if tz.as_ref() != "UTC" => {
            DataType::Timestamp(*unit, Some("UTC".into()))
        }
        DataType::List(f) => DataType::List(field(f)),
        DataType::LargeList(f) => DataType::LargeList(field(f)),
        DataType::FixedSizeList(f, n) => DataType::FixedSizeList(field(f), *n),
        DataType::Map(f, sorted) => DataType::Map(field(f), *sorted),
        DataType::Struct(fs) => DataType::Struct(fs.iter().map(field).collect::<Fields>()),
        other => other.clone(),
    }
}

/// `batch` with the types `serde_arrow` can deserialize (see [`serde_type`]); a cheap clone
/// when nothing changes.
fn serde_batch(batch: &RecordBatch) -> Result<RecordBatch> {
    let schema = batch.schema_ref();
    if schema
        .fields()
        .iter()
        .all(|f| &serde_type(f.data_type()) == f.data_type())
    {
        return Ok(batch.clone());
    }
    let mut fields = Vec::with_capacity(schema.fields().len());
    let mut columns = Vec::with_capacity(schema.fields().len());
    for (f, c) in schema.fields().iter().zip(batch.columns()) {
        let t = serde_type(f.data_type());
        if &t == f.data_type() {
            columns.push(c.clone());
        } else {
            columns.push(arrow_cast::cast(c, &t)?);
        }
        fields.push(Field::new(f.name(), t, f.is_nullable()).with_metadata(f.metadata().clone()));
    }
    let options = arrow_array::RecordBatchOptions::new().with_row_count(Some(batch.num_rows()));
    Ok(RecordBatch::try_new_with_options(
        Arc::new(arrow_schema::Schema::new(fields)),
        columns,
        &options,
    )?)
}

/// The rows of `batch` as `T`s.
pub(crate) fn deserialize_batch<T: DeserializeOwned>(batch: &RecordBatch) -> Result<Vec<T>> {
    let batch = serde_batch(batch)?;
    serde_arrow::from_record_batch(&batch).map_err(serde_error)
}

/// A `serde_arrow` error as an SDK error (without its `Error: ` prefix).
pub(crate) fn serde_error(e: serde_arrow::Error) -> Error {
    let text = e.to_string();
    Error::Conversion(text.strip_prefix("Error: ").unwrap_or(&text).to_string())
}

// === RowStream ===

/// A stream of result rows (see [`DataFrame::to_row_stream`]), holding one Arrow batch at a
/// time.
pub struct RowStream {
    batches: BatchStream,
    current: Option<Arc<RecordBatch>>,
    next: usize,
}

impl RowStream {
    /// Bytes of Arrow IPC data received so far.
    pub fn bytes_received(&self) -> u64 {
        self.batches.bytes_received()
    }

    /// The server-side operation id of this execution.
    pub fn operation_id(&self) -> &str {
        self.batches.operation_id()
    }

    /// The Arrow schema, once the first batch has arrived.
    pub fn schema(&self) -> Option<SchemaRef> {
        self.batches.schema()
    }
}

impl Stream for RowStream {
    type Item = Result<Row>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        loop {
            if let Some(batch) = &self.current {
                if self.next < batch.num_rows() {
                    let row = Row {
                        batch: batch.clone(),
                        index: self.next,
                    };
                    self.next += 1;
                    return Poll::Ready(Some(Ok(row)));
                }
                self.current = None;
            }
            match self.batches.poll_next_unpin(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(None) => return Poll::Ready(None),
                Poll::Ready(Some(Err(e))) => return Poll::Ready(Some(Err(e))),
                Poll::Ready(Some(Ok(batch))) => {
                    self.current = Some(Arc::new(batch));
                    self.next = 0;
                }
            }
        }
    }
}

/// A stream of result rows deserialized into `T` (see [`DataFrame::stream_as`]), holding one
/// Arrow batch's worth of `T`s at a time.
pub struct TypedRowStream<T> {
    batches: BatchStream,
    pending: VecDeque<T>,
}

impl<T> TypedRowStream<T> {
    /// Bytes of Arrow IPC data received so far.
    pub fn bytes_received(&self) -> u64 {
        self.batches.bytes_received()
    }

    /// The server-side operation id of this execution.
    pub fn operation_id(&self) -> &str {
        self.batches.operation_id()
    }
}

impl<T: DeserializeOwned + Unpin> Stream for TypedRowStream<T> {
    type Item = Result<T>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        loop {
            if let Some(item) = self.pending.pop_front() {
                return Poll::Ready(Some(Ok(item)));
            }
            match self.batches.poll_next_unpin(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(None) => return Poll::Ready(None),
                Poll::Ready(Some(Err(e))) => return Poll::Ready(Some(Err(e))),
                Poll::Ready(Some(Ok(batch))) => match deserialize_batch::<T>(&batch) {
                    Ok(items) => self.pending = items.into(),
                    Err(e) => return Poll::Ready(Some(Err(e))),
                },
            }
        }
    }
}

// === impl DataFrame: rows and serde ===

impl DataFrame {
    /// Runs the plan and returns every row (PySpark's `collect()`; [`collect`](Self::collect)
    /// returns Arrow batches).
    pub async fn collect_rows(&self) -> Result<Vec<Row>> {
        Ok(self
            .collect()
            .await?
            .into_iter()
            .flat_map(Row::from_batch)
            .collect())
    }

    /// The first `n` rows (PySpark's `head(n)`).
    pub async fn head_rows(&self, n: i32) -> Result<Vec<Row>> {
        Ok(Row::from_batch(self.head(n).await?))
    }

    /// Same as [`head_rows`](Self::head_rows) (PySpark's `take(n)`).
    pub async fn take_rows(&self, n: i32) -> Result<Vec<Row>> {
        self.head_rows(n).await
    }

    /// The last `n` rows (PySpark's `tail(n)`).
    pub async fn tail_rows(&self, n: i32) -> Result<Vec<Row>> {
        Ok(Row::from_batch(self.tail(n).await?))
    }

    /// The first row, or `None` when there are no rows (PySpark's `first()`).
    pub async fn first_row(&self) -> Result<Option<Row>> {
        Ok(self.head_rows(1).await?.into_iter().next())
    }

    /// Runs the plan and streams its rows. Memory stays bounded by about one Arrow batch of the
    /// result however large it is, as long as the rows are not kept (a [`Row`] keeps its batch
    /// alive). Dropping the stream early releases the execution on the server.
    pub async fn to_row_stream(&self) -> Result<RowStream> {
        Ok(RowStream {
            batches: self.to_stream().await?,
            current: None,
            next: 0,
        })
    }

    /// Same as [`to_row_stream`](Self::to_row_stream) (PySpark's `toLocalIterator()`).
    pub async fn to_local_iterator(&self) -> Result<RowStream> {
        self.to_row_stream().await
    }

    /// Runs the plan and deserializes every row into `T` through `serde_arrow`: a struct whose
    /// fields are named as the columns (nested structs, `Vec`s, maps, `Option`s for nullable
    /// columns, `chrono` dates and timestamps, decimals into `String`, `rust_decimal` or
    /// `bigdecimal`), a tuple of the columns in order, or a map.
    ///
    /// ```no_run
    /// # async fn run(spark: sc_client::SparkSession) -> sc_client::Result<()> {
    /// #[derive(serde::Deserialize)]
    /// struct Sale { region: String, total: Option<f64> }
    /// let sales: Vec<Sale> = spark
    ///     .sql("select 'eu' as region, 1.5d as total").await?
    ///     .collect_as().await?;
    /// # Ok(()) }
    /// ```
    pub async fn collect_as<T: DeserializeOwned>(&self) -> Result<Vec<T>> {
        let mut out = Vec::new();
        for batch in self.collect().await? {
            out.extend(deserialize_batch::<T>(&batch)?);
        }
        Ok(out)
    }

    /// The first `n` rows deserialized into `T` (see [`collect_as`](Self::collect_as)).
    pub async fn head_as<T: DeserializeOwned>(&self, n: i32) -> Result<Vec<T>> {
        deserialize_batch(&self.head(n).await?)
    }

    /// The first row deserialized into `T`, or `None` when there are no rows (see
    /// [`collect_as`](Self::collect_as)).
    pub async fn first_as<T: DeserializeOwned>(&self) -> Result<Option<T>> {
        Ok(self.head_as(1).await?.into_iter().next())
    }

    /// Runs the plan and streams its rows deserialized into `T` (see
    /// [`collect_as`](Self::collect_as)), one Arrow batch's worth of `T`s at a time.
    pub async fn stream_as<T: DeserializeOwned>(&self) -> Result<TypedRowStream<T>> {
        Ok(TypedRowStream {
            batches: self.to_stream().await?,
            pending: VecDeque::new(),
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use arrow_array::builder::{Int32Builder, ListBuilder, MapBuilder, StringBuilder};
    use arrow_array::{
        Date32Array, Decimal128Array, Int32Array, Int64Array, NullArray, StringArray,
        TimestampMicrosecondArray,
    };
    use arrow_schema::Schema;

    fn sample() -> RecordBatch {
        let mut list = ListBuilder::new(Int32Builder::new());
        list.append_value([Some(1), None, Some(3)]);
        list.append_null();
        let mut map = MapBuilder::new(None, StringBuilder::new(), Int32Builder::new());
        map.keys().append_value("k");
        map.values().append_value(7);
        map.append(true).unwrap();
        map.append(false).unwrap();
        let inner = StructArray::from(vec![(
            Arc::new(Field::new("x", DataType::Int32, true)),
            Arc::new(Int32Array::from(vec![Some(5), None])) as ArrayRef,
        )]);
        let columns: Vec<(&str, ArrayRef)> = vec![
            ("n", Arc::new(Int32Array::from(vec![Some(1), None]))),
            ("s", Arc::new(StringArray::from(vec![Some("a"), Some("b")]))),
            ("xs", Arc::new(list.finish())),
            ("m", Arc::new(map.finish())),
            ("st", Arc::new(inner)),
            ("d", Arc::new(Date32Array::from(vec![19_723, 0]))),
            (
                "ts",
                Arc::new(
                    TimestampMicrosecondArray::from(vec![1_700_000_000_123_456, 0])
                        .with_timezone("Etc/UTC"),
                ),
            ),
            (
                "ntz",
                Arc::new(TimestampMicrosecondArray::from(vec![86_400_000_000, 0])),
            ),
            (
                "dec",
                Arc::new(
                    Decimal128Array::from(vec![1234, -5])
                        .with_precision_and_scale(10, 2)
                        .unwrap(),
                ),
            ),
            ("nul", Arc::new(NullArray::new(2))),
            ("big", Arc::new(Int64Array::from(vec![i64::MAX, 0]))),
        ];
        RecordBatch::try_from_iter(columns).unwrap()
    }

    #[test]
    fn typed_getters() {
        let rows = Row::from_batch(sample());
        let (r, r2) = (&rows[0], &rows[1]);
        assert_eq!(r.get::<i32>("n").unwrap(), 1);
        assert_eq!(r.get::<i64>(0).unwrap(), 1, "int widens to i64");
        assert_eq!(r2.get::<Option<i32>>("n").unwrap(), None);
        assert_eq!(r.get::<String>("s").unwrap(), "a");
        assert_eq!(
            r.get::<Vec<Option<i32>>>("xs").unwrap(),
            vec![Some(1), None, Some(3)]
        );
        assert_eq!(r2.get::<Option<Vec<i32>>>("xs").unwrap(), None);
        assert_eq!(
            r.get::<HashMap<String, i32>>("m").unwrap(),
            HashMap::from([("k".to_string(), 7)])
        );
        assert_eq!(r2.get::<Option<BTreeMap<String, i32>>>("m").unwrap(), None);
        let st: Row = r.get("st").unwrap();
        assert_eq!(st.get::<i32>("x").unwrap(), 5);
        let st2: Row = r2.get("st").unwrap();
        assert_eq!(st2.get::<Option<i32>>("x").unwrap(), None);
        assert_eq!(
            r.get::<chrono::NaiveDate>("d").unwrap(),
            chrono::NaiveDate::from_ymd_opt(2024, 1, 1).unwrap()
        );
        assert_eq!(r.get::<Date>("d").unwrap(), Date(19_723));
        let ts: chrono::DateTime<chrono::Utc> = r.get("ts").unwrap();
        assert_eq!(ts.timestamp_micros(), 1_700_000_000_123_456);
        assert_eq!(
            r.get::<Timestamp>("ts").unwrap(),
            Timestamp(1_700_000_000_123_456)
        );
        assert_eq!(
            r.get::<chrono::NaiveDateTime>("ntz").unwrap(),
            chrono::NaiveDate::from_ymd_opt(1970, 1, 2)
                .unwrap()
                .and_hms_opt(0, 0, 0)
                .unwrap()
        );
        assert!(r.get::<chrono::DateTime<chrono::Utc>>("ntz").is_err());
        assert!(r.get::<TimestampNtz>("ts").is_err());
        let d: Decimal = r.get("dec").unwrap();
        assert_eq!((d.value.as_str(), d.precision, d.scale), ("12.34", 10, 2));
        assert_eq!(r2.get::<Decimal>("dec").unwrap().value, "-0.05");
        assert_eq!(r.get::<Option<String>>("nul").unwrap(), None);
        assert!(r.is_null("nul").unwrap());
        assert!(!r.is_null("s").unwrap());
    }

    #[test]
    fn clear_errors() {
        let rows = Row::from_batch(sample());
        let r = &rows[0];
        let e = r.get::<i32>("big").unwrap_err().to_string();
        assert!(e.contains("column 'big'") && e.contains("Int64"), "{e}");
        let e = rows[1].get::<i32>("n").unwrap_err().to_string();
        assert!(e.contains("null") && e.contains("Option<i32>"), "{e}");
        let e = r.get::<i32>("nope").unwrap_err().to_string();
        assert!(
            e.contains("no column 'nope'") && e.contains("n, s, xs"),
            "{e}"
        );
        assert!(r.get::<i32>(99).is_err());
        let e = r.get::<Vec<String>>("xs").unwrap_err().to_string();
        assert!(e.contains("element 0"), "{e}");
    }

    #[test]
    fn serde_getters() {
        #[derive(serde::Deserialize, Debug, PartialEq)]
        struct Inner {
            x: Option<i32>,
        }
        #[derive(serde::Deserialize, Debug, PartialEq)]
        struct Whole {
            n: Option<i32>,
            s: String,
            xs: Option<Vec<Option<i32>>>,
            st: Inner,
            d: chrono::NaiveDate,
            ts: chrono::DateTime<chrono::Utc>,
            dec: String,
        }
        let rows = Row::from_batch(sample());
        assert_eq!(rows[0].get_as::<Inner>("st").unwrap(), Inner { x: Some(5) });
        let w: Whole = rows[0].deserialize().unwrap();
        assert_eq!(w.s, "a");
        assert_eq!(w.xs, Some(vec![Some(1), None, Some(3)]));
        assert_eq!(w.ts.timestamp_micros(), 1_700_000_000_123_456);
        assert_eq!(w.dec, "12.34");
        assert_eq!(w.d, chrono::NaiveDate::from_ymd_opt(2024, 1, 1).unwrap());
        let all: Vec<Whole> = deserialize_batch(&sample()).unwrap();
        assert_eq!(all.len(), 2);
        assert_eq!(all[1].n, None);
        assert!(rows[0].get_as::<u8>("s").is_err());
    }

    #[test]
    fn struct_with_required_fields_under_null_structs() {
        let child = Arc::new(Field::new("x", DataType::Int32, false));
        let s = StructArray::new(
            Fields::from(vec![child]),
            vec![Arc::new(Int32Array::from(vec![Some(1), None])) as ArrayRef],
            Some(vec![true, false].into()),
        );
        let batch = RecordBatch::try_from_iter([("s", Arc::new(s) as ArrayRef)]).unwrap();
        let rows = Row::from_batch(batch);
        assert_eq!(rows[0].get::<Row>("s").unwrap().get::<i32>("x").unwrap(), 1);
        assert_eq!(rows[1].get::<Option<Row>>("s").unwrap(), None);
    }

    #[test]
    fn display_and_equality() {
        let schema = Arc::new(Schema::new(vec![
            Field::new("name", DataType::Utf8, true),
            Field::new("n", DataType::Int32, true),
        ]));
        let batch = RecordBatch::try_new(
            schema,
            vec![
                Arc::new(StringArray::from(vec![Some("alice"), None, Some("alice")])),
                Arc::new(Int32Array::from(vec![3, 4, 3])),
            ],
        )
        .unwrap();
        let rows = Row::from_batch(batch);
        assert_eq!(rows[0].to_string(), "Row(name='alice', n=3)");
        assert_eq!(rows[1].to_string(), "Row(name=None, n=4)");
        assert_eq!(rows[0], rows[2]);
        assert_ne!(rows[0], rows[1]);
        assert_eq!(rows[0].field_names(), vec!["name", "n"]);
        assert_eq!(rows[0].index_of("n").unwrap(), 1);
    }
}
