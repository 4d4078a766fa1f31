//! A typed model of Spark SQL data types and schemas: [`DataType`], [`StructField`],
//! [`StructType`], rendered as Spark's protobuf type (for `DataFrame::to`, `createTable`), its
//! JSON schema string (for the reader's `schema`, as PySpark sends a `StructType`) and its simple
//! string (`struct<a:bigint,b:string>`, as `dtypes` shows).

use std::fmt::Write as _;

use sc_proto::spark::connect as pb;
use sc_proto::spark::connect::data_type::{self as dt, Kind};

use crate::error::{Error, Result};

/// The collation of a string that compares bytes: Spark's default.
pub const DEFAULT_COLLATION: &str = "UTF8_BINARY";

/// The key of a field's metadata under which Spark's JSON schema keeps string collations.
const COLLATIONS_METADATA_KEY: &str = "__COLLATIONS";

/// A field of a day-time interval: `DAY`, `HOUR`, `MINUTE` or `SECOND`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum DayTimeField {
    /// Days.
    Day = 0,
    /// Hours.
    Hour = 1,
    /// Minutes.
    Minute = 2,
    /// Seconds.
    Second = 3,
}

impl DayTimeField {
    fn name(self) -> &'static str {
        match self {
            DayTimeField::Day => "day",
            DayTimeField::Hour => "hour",
            DayTimeField::Minute => "minute",
            DayTimeField::Second => "second",
        }
    }
    fn from_i32(v: i32) -> Result<Self> {
        Ok(match v {
            0 => DayTimeField::Day,
            1 => DayTimeField::Hour,
            2 => DayTimeField::Minute,
            3 => DayTimeField::Second,
            _ => {
                return Err(Error::Protocol(format!(
                    "unknown day-time interval field {v}"
                )));
            }
        })
    }
}

/// A field of a year-month interval: `YEAR` or `MONTH`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum YearMonthField {
    /// Years.
    Year = 0,
    /// Months.
    Month = 1,
}

impl YearMonthField {
    fn name(self) -> &'static str {
        match self {
            YearMonthField::Year => "year",
            YearMonthField::Month => "month",
        }
    }
    fn from_i32(v: i32) -> Result<Self> {
        match v {
            0 => Ok(YearMonthField::Year),
            1 => Ok(YearMonthField::Month),
            _ => Err(Error::Protocol(format!(
                "unknown year-month interval field {v}"
            ))),
        }
    }
}

/// A Spark SQL data type.
///
/// ```
/// use sc_client::types::{DataType, StructField, StructType};
/// let schema = StructType::new([
///     StructField::new("id", DataType::Long, false),
///     StructField::new("tags", DataType::array(DataType::String, true), true),
///     StructField::new("price", DataType::decimal(10, 2), true),
/// ]);
/// assert_eq!(
///     schema.simple_string(),
///     "struct<id:bigint,tags:array<string>,price:decimal(10,2)>"
/// );
/// ```
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum DataType {
    /// The type of `NULL` (`void`).
    Null,
    /// `boolean`.
    Boolean,
    /// `tinyint`: 8-bit signed integers.
    Byte,
    /// `smallint`: 16-bit signed integers.
    Short,
    /// `int`: 32-bit signed integers.
    Integer,
    /// `bigint`: 64-bit signed integers.
    Long,
    /// `float`: 32-bit floating point.
    Float,
    /// `double`: 64-bit floating point.
    Double,
    /// `decimal(precision, scale)`.
    Decimal {
        /// Total digits (at most 38).
        precision: i32,
        /// Digits after the point.
        scale: i32,
    },
    /// `string`, compared byte by byte (collation `UTF8_BINARY`).
    String,
    /// `string collate NAME`: a string with another collation (`UTF8_LCASE`, `UNICODE_CI`, ...).
    CollatedString(String),
    /// `char(n)`.
    Char(i32),
    /// `varchar(n)`.
    Varchar(i32),
    /// `binary`.
    Binary,
    /// `date`.
    Date,
    /// `timestamp`: an instant, shown in the session time zone.
    Timestamp,
    /// `timestamp_ntz`: a wall-clock date and time without a time zone.
    TimestampNtz,
    /// `time(precision)`: a time of day (Spark 4.1+).
    Time(i32),
    /// `interval`: the legacy calendar interval.
    CalendarInterval,
    /// `interval day to second` and its narrower forms.
    DayTimeInterval {
        /// The first field.
        start: DayTimeField,
        /// The last field.
        end: DayTimeField,
    },
    /// `interval year to month` and its narrower forms.
    YearMonthInterval {
        /// The first field.
        start: YearMonthField,
        /// The last field.
        end: YearMonthField,
    },
    /// `array<element>`.
    Array {
        /// The type of the elements.
        element_type: Box<DataType>,
        /// Whether elements may be null.
        contains_null: bool,
    },
    /// `map<key,value>`.
    Map {
        /// The type of the keys.
        key_type: Box<DataType>,
        /// The type of the values.
        value_type: Box<DataType>,
        /// Whether values may be null.
        value_contains_null: bool,
    },
    /// `struct<...>`.
    Struct(StructType),
    /// `variant`: semi-structured data.
    Variant,
    /// `geometry(srid)`.
    Geometry(i32),
    /// `geography(srid)`.
    Geography(i32),
    /// A user-defined type, stored as its SQL type.
    UserDefined {
        /// The JVM class of the type, if it has one.
        jvm_class: Option<String>,
        /// The type it is stored as.
        sql_type: Box<DataType>,
    },
    /// A type given as a string for the server to parse (`"array<int>"`).
    Unparsed(String),
}

impl DataType {
    /// `array<element>`.
    pub fn array(element: DataType, contains_null: bool) -> DataType {
        DataType::Array {
            element_type: Box::new(element),
            contains_null,
        }
    }

    /// `map<key,value>`.
    pub fn map(key: DataType, value: DataType, value_contains_null: bool) -> DataType {
        DataType::Map {
            key_type: Box::new(key),
            value_type: Box::new(value),
            value_contains_null,
        }
    }

    /// `decimal(precision, scale)`.
    pub fn decimal(precision: i32, scale: i32) -> DataType {
        DataType::Decimal { precision, scale }
    }

    /// `interval day to second`, Spark's default day-time interval.
    pub fn day_time_interval() -> DataType {
        DataType::DayTimeInterval {
            start: DayTimeField::Day,
            end: DayTimeField::Second,
        }
    }

    /// `interval year to month`, Spark's default year-month interval.
    pub fn year_month_interval() -> DataType {
        DataType::YearMonthInterval {
            start: YearMonthField::Year,
            end: YearMonthField::Month,
        }
    }

    /// The type as Spark writes it in `dtypes` and `simpleString` (`bigint`, `array<int>`,
    /// `struct<a:int,b:string>`).
    pub fn simple_string(&self) -> String {
        let mut s = String::new();
        self.write_simple(&mut s);
        s
    }

    fn write_simple(&self, out: &mut String) {
        match self {
            DataType::Struct(st) => {
                out.push_str("struct<");
                for (i, f) in st.fields.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    out.push_str(&f.name);
                    out.push(':');
                    f.data_type.write_simple(out);
                }
                out.push('>');
            }
            DataType::Array { element_type, .. } => {
                out.push_str("array<");
                element_type.write_simple(out);
                out.push('>');
            }
            DataType::Map {
                key_type,
                value_type,
                ..
            } => {
                out.push_str("map<");
                key_type.write_simple(out);
                out.push(',');
                value_type.write_simple(out);
                out.push('>');
            }
            other => out.push_str(&other.atomic_name()),
        }
    }

    /// The name of a type without children, as Spark writes it both in simple strings and in
    /// JSON schemas.
    fn atomic_name(&self) -> String {
        match self {
            DataType::Null => "void".into(),
            DataType::Boolean => "boolean".into(),
            DataType::Byte => "tinyint".into(),
            DataType::Short => "smallint".into(),
            DataType::Integer => "int".into(),
            DataType::Long => "bigint".into(),
            DataType::Float => "float".into(),
            DataType::Double => "double".into(),
            DataType::Decimal { precision, scale } => format!("decimal({precision},{scale})"),
            DataType::String => "string".into(),
            DataType::CollatedString(c) if c == DEFAULT_COLLATION => "string".into(),
            DataType::CollatedString(c) => format!("string collate {c}"),
            DataType::Char(n) => format!("char({n})"),
            DataType::Varchar(n) => format!("varchar({n})"),
            DataType::Binary => "binary".into(),
            DataType::Date => "date".into(),
            DataType::Timestamp => "timestamp".into(),
            DataType::TimestampNtz => "timestamp_ntz".into(),
            DataType::Time(p) => format!("time({p})"),
            DataType::CalendarInterval => "interval".into(),
            DataType::DayTimeInterval { start, end } if start == end => {
                format!("interval {}", start.name())
            }
            DataType::DayTimeInterval { start, end } => {
                format!("interval {} to {}", start.name(), end.name())
            }
            DataType::YearMonthInterval { start, end } if start == end => {
                format!("interval {}", start.name())
            }
            DataType::YearMonthInterval { start, end } => {
                format!("interval {} to {}", start.name(), end.name())
            }
            DataType::Variant => "variant".into(),
            DataType::Geometry(srid) => spatial("geometry", *srid),
            DataType::Geography(srid) => spatial("geography", *srid),
            DataType::UserDefined { .. } => "udt".into(),
            DataType::Unparsed(s) => s.clone(),
            DataType::Struct(_) | DataType::Array { .. } | DataType::Map { .. } => {
                self.simple_string()
            }
        }
    }

    /// The name a JSON schema uses for an atomic type (which differs from the simple string for
    /// the integer types: `long`, `integer`, `short`, `byte`).
    fn json_atomic_name(&self) -> String {
        match self {
            DataType::Byte => "byte".into(),
            DataType::Short => "short".into(),
            DataType::Integer => "integer".into(),
            DataType::Long => "long".into(),
            // Collations live in the field's metadata in a JSON schema.
            DataType::CollatedString(_) => "string".into(),
            other => other.atomic_name(),
        }
    }

    /// The protobuf type, as PySpark builds it (a string carries its collation name,
    /// `UTF8_BINARY` by default).
    pub fn to_proto(&self) -> pb::DataType {
        let kind = match self {
            DataType::Null => Kind::Null(dt::Null::default()),
            DataType::Boolean => Kind::Boolean(dt::Boolean::default()),
            DataType::Byte => Kind::Byte(dt::Byte::default()),
            DataType::Short => Kind::Short(dt::Short::default()),
            DataType::Integer => Kind::Integer(dt::Integer::default()),
            DataType::Long => Kind::Long(dt::Long::default()),
            DataType::Float => Kind::Float(dt::Float::default()),
            DataType::Double => Kind::Double(dt::Double::default()),
            DataType::Decimal { precision, scale } => Kind::Decimal(dt::Decimal {
                scale: Some(*scale),
                precision: Some(*precision),
                type_variation_reference: 0,
            }),
            DataType::String => Kind::String(dt::String {
                type_variation_reference: 0,
                collation: DEFAULT_COLLATION.into(),
            }),
            DataType::CollatedString(c) => Kind::String(dt::String {
                type_variation_reference: 0,
                collation: c.clone(),
            }),
            DataType::Char(n) => Kind::Char(dt::Char {
                length: *n,
                type_variation_reference: 0,
            }),
            DataType::Varchar(n) => Kind::VarChar(dt::VarChar {
                length: *n,
                type_variation_reference: 0,
            }),
            DataType::Binary => Kind::Binary(dt::Binary::default()),
            DataType::Date => Kind::Date(dt::Date::default()),
            DataType::Timestamp => Kind::Timestamp(dt::Timestamp::default()),
            DataType::TimestampNtz => Kind::TimestampNtz(dt::TimestampNtz::default()),
            DataType::Time(p) => Kind::Time(dt::Time {
                precision: Some(*p),
                type_variation_reference: 0,
            }),
            DataType::CalendarInterval => Kind::CalendarInterval(dt::CalendarInterval::default()),
            DataType::DayTimeInterval { start, end } => {
                Kind::DayTimeInterval(dt::DayTimeInterval {
                    start_field: Some(*start as i32),
                    end_field: Some(*end as i32),
                    type_variation_reference: 0,
                })
            }
            DataType::YearMonthInterval { start, end } => {
                Kind::YearMonthInterval(dt::YearMonthInterval {
                    start_field: Some(*start as i32),
                    end_field: Some(*end as i32),
                    type_variation_reference: 0,
                })
            }
            DataType::Array {
                element_type,
                contains_null,
            } => Kind::Array(Box::new(dt::Array {
                element_type: Some(Box::new(element_type.to_proto())),
                contains_null: *contains_null,
                type_variation_reference: 0,
            })),
            DataType::Map {
                key_type,
                value_type,
                value_contains_null,
            } => Kind::Map(Box::new(dt::Map {
                key_type: Some(Box::new(key_type.to_proto())),
                value_type: Some(Box::new(value_type.to_proto())),
                value_contains_null: *value_contains_null,
                type_variation_reference: 0,
            })),
            DataType::Struct(s) => return s.to_proto(),
            DataType::Variant => Kind::Variant(dt::Variant::default()),
            DataType::Geometry(srid) => Kind::Geometry(dt::Geometry {
                srid: *srid,
                type_variation_reference: 0,
            }),
            DataType::Geography(srid) => Kind::Geography(dt::Geography {
                srid: *srid,
                type_variation_reference: 0,
            }),
            DataType::UserDefined {
                jvm_class,
                sql_type,
            } => Kind::Udt(Box::new(dt::Udt {
                r#type: "udt".into(),
                jvm_class: jvm_class.clone(),
                python_class: None,
                serialized_python_class: None,
                sql_type: Some(Box::new(sql_type.to_proto())),
            })),
            DataType::Unparsed(s) => Kind::Unparsed(dt::Unparsed {
                data_type_string: s.clone(),
            }),
        };
        pb::DataType { kind: Some(kind) }
    }

    /// The type a protobuf type stands for.
    pub fn from_proto(t: &pb::DataType) -> Result<DataType> {
        let missing = |what: &str| Error::Protocol(format!("a {what} type without its child type"));
        let Some(kind) = &t.kind else {
            return Err(Error::Protocol("a data type without a kind".into()));
        };
        Ok(match kind {
            Kind::Null(_) => DataType::Null,
            Kind::Boolean(_) => DataType::Boolean,
            Kind::Byte(_) => DataType::Byte,
            Kind::Short(_) => DataType::Short,
            Kind::Integer(_) => DataType::Integer,
            Kind::Long(_) => DataType::Long,
            Kind::Float(_) => DataType::Float,
            Kind::Double(_) => DataType::Double,
            Kind::Decimal(d) => DataType::Decimal {
                precision: d.precision.unwrap_or(10),
                scale: d.scale.unwrap_or(0),
            },
            Kind::String(s) if s.collation.is_empty() || s.collation == DEFAULT_COLLATION => {
                DataType::String
            }
            Kind::String(s) => DataType::CollatedString(s.collation.clone()),
            Kind::Char(c) => DataType::Char(c.length),
            Kind::VarChar(c) => DataType::Varchar(c.length),
            Kind::Binary(_) => DataType::Binary,
            Kind::Date(_) => DataType::Date,
            Kind::Timestamp(_) | Kind::TimestampLtzNanos(_) => DataType::Timestamp,
            Kind::TimestampNtz(_) | Kind::TimestampNtzNanos(_) => DataType::TimestampNtz,
            Kind::Time(t) => DataType::Time(t.precision.unwrap_or(6)),
            Kind::CalendarInterval(_) => DataType::CalendarInterval,
            Kind::DayTimeInterval(i) => DataType::DayTimeInterval {
                start: DayTimeField::from_i32(i.start_field.unwrap_or(0))?,
                end: DayTimeField::from_i32(i.end_field.unwrap_or(3))?,
            },
            Kind::YearMonthInterval(i) => DataType::YearMonthInterval {
                start: YearMonthField::from_i32(i.start_field.unwrap_or(0))?,
                end: YearMonthField::from_i32(i.end_field.unwrap_or(1))?,
            },
            Kind::Array(a) => DataType::Array {
                element_type: Box::new(DataType::from_proto(
                    a.element_type.as_deref().ok_or_else(|| missing("array"))?,
                )?),
                contains_null: a.contains_null,
            },
            Kind::Map(m) => DataType::Map {
                key_type: Box::new(DataType::from_proto(
                    m.key_type.as_deref().ok_or_else(|| missing("map"))?,
                )?),
                value_type: Box::new(DataType::from_proto(
                    m.value_type.as_deref().ok_or_else(|| missing("map"))?,
                )?),
                value_contains_null: m.value_contains_null,
            },
            Kind::Struct(s) => DataType::Struct(StructType::from_proto_struct(s)?),
            Kind::Variant(_) => DataType::Variant,
            Kind::Geometry(g) => DataType::Geometry(g.srid),
            Kind::Geography(g) => DataType::Geography(g.srid),
            Kind::Udt(u) => DataType::UserDefined {
                jvm_class: u.jvm_class.clone(),
                sql_type: Box::new(DataType::from_proto(
                    u.sql_type
                        .as_deref()
                        .ok_or_else(|| missing("user-defined"))?,
                )?),
            },
            Kind::Unparsed(u) => DataType::Unparsed(u.data_type_string.clone()),
        })
    }

    /// The type as a compact JSON value of Spark's schema format (keys sorted, as PySpark's
    /// `DataType.json()` writes them).
    pub fn json(&self) -> String {
        let mut out = String::new();
        self.write_json(&mut out);
        out
    }

    fn write_json(&self, out: &mut String) {
        match self {
            DataType::Struct(s) => s.write_json(out),
            DataType::Array {
                element_type,
                contains_null,
            } => {
                out.push_str("{\"containsNull\":");
                out.push_str(bool_str(*contains_null));
                out.push_str(",\"elementType\":");
                element_type.write_json(out);
                out.push_str(",\"type\":\"array\"}");
            }
            DataType::Map {
                key_type,
                value_type,
                value_contains_null,
            } => {
                out.push_str("{\"keyType\":");
                key_type.write_json(out);
                out.push_str(",\"type\":\"map\",\"valueContainsNull\":");
                out.push_str(bool_str(*value_contains_null));
                out.push_str(",\"valueType\":");
                value_type.write_json(out);
                out.push('}');
            }
            DataType::UserDefined {
                jvm_class,
                sql_type,
            } => {
                out.push('{');
                if let Some(c) = jvm_class {
                    out.push_str("\"class\":");
                    write_json_string(out, c);
                    out.push(',');
                }
                out.push_str("\"sqlType\":");
                sql_type.write_json(out);
                out.push_str(",\"type\":\"udt\"}");
            }
            other => write_json_string(out, &other.json_atomic_name()),
        }
    }

    /// The collations of the strings inside this type, keyed by their path below `path`.
    fn collations(&self, path: &str, out: &mut Vec<(String, String)>) {
        match self {
            DataType::CollatedString(c) if c != DEFAULT_COLLATION => {
                let provider = if c.starts_with("UTF8") {
                    "spark"
                } else {
                    "icu"
                };
                out.push((path.to_string(), format!("{provider}.{c}")));
            }
            DataType::Array { element_type, .. } => {
                element_type.collations(&format!("{path}.element"), out);
            }
            DataType::Map {
                key_type,
                value_type,
                ..
            } => {
                key_type.collations(&format!("{path}.key"), out);
                value_type.collations(&format!("{path}.value"), out);
            }
            _ => {}
        }
    }
}

fn spatial(name: &str, srid: i32) -> String {
    if srid == -1 {
        format!("{name}(any)")
    } else {
        format!("{name}({srid})")
    }
}

impl std::fmt::Display for DataType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.simple_string())
    }
}

impl From<StructType> for DataType {
    fn from(s: StructType) -> Self {
        DataType::Struct(s)
    }
}

// === StructField ===

/// A named field of a [`StructType`].
#[derive(Debug, Clone, PartialEq)]
pub struct StructField {
    /// The field name.
    pub name: String,
    /// The field type.
    pub data_type: DataType,
    /// Whether the field may be null.
    pub nullable: bool,
    /// The field metadata (a JSON object; empty when `None`).
    pub metadata: Option<serde_json::Map<String, serde_json::Value>>,
}

impl StructField {
    /// A field without metadata.
    pub fn new(name: impl Into<String>, data_type: DataType, nullable: bool) -> Self {
        Self {
            name: name.into(),
            data_type,
            nullable,
            metadata: None,
        }
    }

    /// The same field with this metadata (a JSON object such as `{"comment": "..."}`).
    pub fn with_metadata(mut self, metadata: serde_json::Map<String, serde_json::Value>) -> Self {
        self.metadata = Some(metadata);
        self
    }

    fn write_json(&self, out: &mut String) {
        let mut collations = Vec::new();
        self.data_type.collations(&self.name, &mut collations);
        let mut meta = self.metadata.clone().unwrap_or_default();
        if !collations.is_empty() {
            let map = collations
                .into_iter()
                .map(|(k, v)| (k, serde_json::Value::String(v)))
                .collect();
            meta.insert(
                COLLATIONS_METADATA_KEY.into(),
                serde_json::Value::Object(map),
            );
        }
        out.push_str("{\"metadata\":");
        write_sorted_json(out, &serde_json::Value::Object(meta));
        out.push_str(",\"name\":");
        write_json_string(out, &self.name);
        out.push_str(",\"nullable\":");
        out.push_str(bool_str(self.nullable));
        out.push_str(",\"type\":");
        self.data_type.write_json(out);
        out.push('}');
    }
}

// === StructType ===

/// A struct type: the schema of a DataFrame or the type of a struct column.
///
/// ```
/// use sc_client::types::{DataType, StructType};
/// let schema = StructType::empty()
///     .add("name", DataType::String, true)
///     .add("age", DataType::Integer, true);
/// assert_eq!(schema.field_names(), ["name", "age"]);
/// assert!(schema.json().starts_with(r#"{"fields":[{"metadata":{},"name":"name","#));
/// ```
#[derive(Debug, Clone, PartialEq, Default)]
pub struct StructType {
    /// The fields, in order.
    pub fields: Vec<StructField>,
}

impl StructType {
    /// A struct of these fields.
    pub fn new(fields: impl IntoIterator<Item = StructField>) -> Self {
        Self {
            fields: fields.into_iter().collect(),
        }
    }

    /// A struct without fields, to build with [`add`](Self::add).
    pub fn empty() -> Self {
        Self::default()
    }

    /// The same struct with one more field.
    pub fn add(mut self, name: impl Into<String>, data_type: DataType, nullable: bool) -> Self {
        self.fields
            .push(StructField::new(name, data_type, nullable));
        self
    }

    /// The same struct with one more field, given whole.
    pub fn add_field(mut self, field: StructField) -> Self {
        self.fields.push(field);
        self
    }

    /// The field names, in order.
    pub fn field_names(&self) -> Vec<&str> {
        self.fields.iter().map(|f| f.name.as_str()).collect()
    }

    /// The field called `name`, if any.
    pub fn field(&self, name: &str) -> Option<&StructField> {
        self.fields.iter().find(|f| f.name == name)
    }

    /// `struct<a:bigint,b:string>`.
    pub fn simple_string(&self) -> String {
        DataType::Struct(self.clone()).simple_string()
    }

    /// The schema in Spark's JSON format, compact with sorted keys, exactly as PySpark's
    /// `StructType.json()` writes it (what `DataFrameReader::schema` sends for a struct).
    pub fn json(&self) -> String {
        let mut out = String::new();
        self.write_json(&mut out);
        out
    }

    fn write_json(&self, out: &mut String) {
        out.push_str("{\"fields\":[");
        for (i, f) in self.fields.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            f.write_json(out);
        }
        out.push_str("],\"type\":\"struct\"}");
    }

    /// The protobuf struct type, as PySpark builds it.
    pub fn to_proto(&self) -> pb::DataType {
        pb::DataType {
            kind: Some(Kind::Struct(dt::Struct {
                fields: self
                    .fields
                    .iter()
                    .map(|f| dt::StructField {
                        name: f.name.clone(),
                        data_type: Some(f.data_type.to_proto()),
                        nullable: f.nullable,
                        metadata: f.metadata.as_ref().filter(|m| !m.is_empty()).map(|m| {
                            let mut s = String::new();
                            write_python_json(&mut s, &serde_json::Value::Object(m.clone()));
                            s
                        }),
                    })
                    .collect(),
                type_variation_reference: 0,
            })),
        }
    }

    /// The struct a protobuf type stands for; a non-struct type is an error.
    pub fn from_proto(t: &pb::DataType) -> Result<StructType> {
        match &t.kind {
            Some(Kind::Struct(s)) => Self::from_proto_struct(s),
            _ => Err(Error::Protocol(format!(
                "expected a struct type, got {}",
                DataType::from_proto(t)
                    .map(|d| d.simple_string())
                    .unwrap_or_else(|_| "an unknown type".into())
            ))),
        }
    }

    fn from_proto_struct(s: &dt::Struct) -> Result<StructType> {
        let mut fields = Vec::with_capacity(s.fields.len());
        for f in &s.fields {
            let data_type = DataType::from_proto(f.data_type.as_ref().ok_or_else(|| {
                Error::Protocol(format!("struct field '{}' has no type", f.name))
            })?)?;
            let metadata = match f.metadata.as_deref() {
                None | Some("") => None,
                Some(m) => match serde_json::from_str::<serde_json::Value>(m) {
                    Ok(serde_json::Value::Object(o)) => Some(o),
                    _ => {
                        return Err(Error::Protocol(format!(
                            "struct field '{}' has metadata that is not a JSON object",
                            f.name
                        )));
                    }
                },
            };
            fields.push(StructField {
                name: f.name.clone(),
                data_type,
                nullable: f.nullable,
                metadata,
            });
        }
        Ok(StructType { fields })
    }
}

impl std::fmt::Display for StructType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.simple_string())
    }
}

impl FromIterator<StructField> for StructType {
    fn from_iter<I: IntoIterator<Item = StructField>>(iter: I) -> Self {
        Self::new(iter)
    }
}

// === SchemaSpec ===

/// A schema given to a reader: a DDL string (`"a INT, b STRING"`) or a [`StructType`].
#[derive(Debug, Clone, PartialEq)]
pub enum SchemaSpec {
    /// A DDL string, parsed by the server.
    Ddl(String),
    /// A typed schema.
    Struct(StructType),
}

impl SchemaSpec {
    /// The string sent in a read: the DDL as given, or the struct's JSON (as PySpark sends a
    /// `StructType`).
    pub fn to_reader_string(&self) -> String {
        match self {
            SchemaSpec::Ddl(s) => s.clone(),
            SchemaSpec::Struct(s) => s.json(),
        }
    }
}

impl From<&str> for SchemaSpec {
    fn from(s: &str) -> Self {
        SchemaSpec::Ddl(s.to_string())
    }
}
impl From<String> for SchemaSpec {
    fn from(s: String) -> Self {
        SchemaSpec::Ddl(s)
    }
}
impl From<&String> for SchemaSpec {
    fn from(s: &String) -> Self {
        SchemaSpec::Ddl(s.clone())
    }
}
impl From<StructType> for SchemaSpec {
    fn from(s: StructType) -> Self {
        SchemaSpec::Struct(s)
    }
}
impl From<&StructType> for SchemaSpec {
    fn from(s: &StructType) -> Self {
        SchemaSpec::Struct(s.clone())
    }
}

// === JSON helpers ===

fn bool_str(b: bool) -> &'static str {
    if b { "true" } else { "false" }
}

/// Writes a JSON string literal.
fn write_json_string(out: &mut String, s: &str) {
    // serde_json's escaping of a string cannot fail.
    out.push_str(&serde_json::Value::String(s.to_string()).to_string());
}

/// Writes a JSON value compactly with object keys sorted, whatever map order serde_json was
/// built with.
fn write_sorted_json(out: &mut String, v: &serde_json::Value) {
    match v {
        serde_json::Value::Object(m) => {
            let mut keys: Vec<&String> = m.keys().collect();
            keys.sort();
            out.push('{');
            for (i, k) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_json_string(out, k);
                out.push(':');
                if let Some(v) = m.get(k) {
                    write_sorted_json(out, v);
                }
            }
            out.push('}');
        }
        serde_json::Value::Array(a) => {
            out.push('[');
            for (i, v) in a.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_sorted_json(out, v);
            }
            out.push(']');
        }
        other => out.push_str(&other.to_string()),
    }
}

/// Writes a JSON string literal as Python's `json.dumps` does: non-ASCII characters escaped as
/// `\uXXXX` (UTF-16 units).
fn write_python_string(out: &mut String, s: &str) {
    let mut escaped = String::new();
    write_json_string(&mut escaped, s);
    for c in escaped.chars() {
        if c.is_ascii() {
            out.push(c);
        } else {
            let mut units = [0u16; 2];
            for u in c.encode_utf16(&mut units) {
                let _ = write!(out, "\\u{u:04x}");
            }
        }
    }
}

/// Writes a JSON value as Python's `json.dumps` does by default (`", "` and `": "` separators,
/// ASCII only, keys in map order): PySpark sends field and column metadata that way.
pub(crate) fn write_python_json(out: &mut String, v: &serde_json::Value) {
    match v {
        serde_json::Value::Object(m) => {
            out.push('{');
            for (i, (k, v)) in m.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                write_python_string(out, k);
                out.push_str(": ");
                write_python_json(out, v);
            }
            out.push('}');
        }
        serde_json::Value::Array(a) => {
            out.push('[');
            for (i, v) in a.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                write_python_json(out, v);
            }
            out.push(']');
        }
        serde_json::Value::String(s) => write_python_string(out, s),
        other => out.push_str(&other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn sample() -> StructType {
        StructType::new([
            StructField::new("id", DataType::Long, false),
            StructField::new("name", DataType::String, true),
            StructField::new(
                "tags",
                DataType::map(
                    DataType::String,
                    DataType::array(DataType::Integer, true),
                    false,
                ),
                true,
            ),
            StructField::new("d", DataType::decimal(10, 2), true),
            StructField::new(
                "s",
                DataType::Struct(StructType::empty().add("x", DataType::Short, true)),
                true,
            ),
        ])
    }

    #[test]
    fn simple_strings() {
        assert_eq!(
            sample().simple_string(),
            "struct<id:bigint,name:string,tags:map<string,array<int>>,d:decimal(10,2),s:struct<x:smallint>>"
        );
        assert_eq!(
            DataType::day_time_interval().simple_string(),
            "interval day to second"
        );
        assert_eq!(
            DataType::YearMonthInterval {
                start: YearMonthField::Month,
                end: YearMonthField::Month
            }
            .simple_string(),
            "interval month"
        );
        assert_eq!(
            DataType::CollatedString("UTF8_LCASE".into()).simple_string(),
            "string collate UTF8_LCASE"
        );
    }

    #[test]
    fn json_matches_pyspark() {
        // PySpark 4.2.1: StructType([...]).json() for the same schema.
        let want = r#"{"fields":[{"metadata":{},"name":"id","nullable":false,"type":"long"},{"metadata":{},"name":"name","nullable":true,"type":"string"},{"metadata":{},"name":"tags","nullable":true,"type":{"keyType":"string","type":"map","valueContainsNull":false,"valueType":{"containsNull":true,"elementType":"integer","type":"array"}}},{"metadata":{},"name":"d","nullable":true,"type":"decimal(10,2)"},{"metadata":{},"name":"s","nullable":true,"type":{"fields":[{"metadata":{},"name":"x","nullable":true,"type":"short"}],"type":"struct"}}],"type":"struct"}"#;
        assert_eq!(sample().json(), want);
    }

    #[test]
    fn collations_go_to_metadata_in_json() {
        let s = StructType::empty().add(
            "c",
            DataType::array(DataType::CollatedString("UNICODE_CI".into()), true),
            true,
        );
        assert_eq!(
            s.json(),
            r#"{"fields":[{"metadata":{"__COLLATIONS":{"c.element":"icu.UNICODE_CI"}},"name":"c","nullable":true,"type":{"containsNull":true,"elementType":"string","type":"array"}}],"type":"struct"}"#
        );
    }

    #[test]
    fn proto_round_trip() {
        let s = sample();
        let back = StructType::from_proto(&s.to_proto()).unwrap();
        assert_eq!(back, s);
        let mut meta = serde_json::Map::new();
        meta.insert("comment".into(), "the id".into());
        let with_meta = StructType::new([
            StructField::new("a", DataType::Integer, true).with_metadata(meta.clone())
        ]);
        let p = with_meta.to_proto();
        let Some(Kind::Struct(st)) = &p.kind else {
            panic!("not a struct")
        };
        assert_eq!(
            st.fields[0].metadata.as_deref(),
            Some(r#"{"comment": "the id"}"#)
        );
        assert_eq!(StructType::from_proto(&p).unwrap(), with_meta);
    }

    #[test]
    fn bad_proto_is_an_error() {
        assert!(DataType::from_proto(&pb::DataType { kind: None }).is_err());
        let arr = pb::DataType {
            kind: Some(Kind::Array(Box::new(dt::Array {
                element_type: None,
                contains_null: true,
                type_variation_reference: 0,
            }))),
        };
        assert!(DataType::from_proto(&arr).is_err());
        assert!(StructType::from_proto(&DataType::Long.to_proto()).is_err());
    }
}
