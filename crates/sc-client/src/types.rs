//! Spark data types: a typed model of them ([`DataType`], [`StructType`], [`StructField`]) and
//! the conversion of Spark Connect's protobuf types to Arrow types, matching how Spark encodes
//! results.

use std::sync::Arc;

use arrow_schema::{DataType as ArrowType, Field, Fields, IntervalUnit, Schema, TimeUnit};
use sc_proto::spark::connect::DataType as ProtoDataType;
use sc_proto::spark::connect::data_type::Kind;

mod schema;
pub(crate) use schema::write_python_json;
pub use schema::{
    DEFAULT_COLLATION, DataType, DayTimeField, SchemaSpec, StructField, StructType, YearMonthField,
};

/// The Arrow type Spark uses for a Spark data type in its Arrow results.
///
/// `session_tz` is the time zone attached to timestamps (Spark sends them in UTC microseconds
/// with the session time zone as metadata; results carry their own schema, so this only matters
/// for [`DataFrame::schema`](crate::DataFrame::schema)).
pub fn to_arrow_type(dt: &ProtoDataType, session_tz: &str) -> ArrowType {
    match &dt.kind {
        None | Some(Kind::Null(_)) => ArrowType::Null,
        Some(Kind::Binary(_)) => ArrowType::Binary,
        Some(Kind::Boolean(_)) => ArrowType::Boolean,
        Some(Kind::Byte(_)) => ArrowType::Int8,
        Some(Kind::Short(_)) => ArrowType::Int16,
        Some(Kind::Integer(_)) => ArrowType::Int32,
        Some(Kind::Long(_)) => ArrowType::Int64,
        Some(Kind::Float(_)) => ArrowType::Float32,
        Some(Kind::Double(_)) => ArrowType::Float64,
        Some(Kind::Decimal(d)) => {
            let precision = d.precision.unwrap_or(10).clamp(1, 38) as u8;
            let scale = d.scale.unwrap_or(0).clamp(-38, 38) as i8;
            ArrowType::Decimal128(precision, scale)
        }
        Some(Kind::String(_)) | Some(Kind::Char(_)) | Some(Kind::VarChar(_)) => ArrowType::Utf8,
        Some(Kind::Date(_)) => ArrowType::Date32,
        Some(Kind::Timestamp(_)) | Some(Kind::TimestampLtzNanos(_)) => {
            ArrowType::Timestamp(TimeUnit::Microsecond, Some(session_tz.into()))
        }
        Some(Kind::TimestampNtz(_)) | Some(Kind::TimestampNtzNanos(_)) => {
            ArrowType::Timestamp(TimeUnit::Microsecond, None)
        }
        Some(Kind::Time(_)) => ArrowType::Time64(TimeUnit::Nanosecond),
        Some(Kind::CalendarInterval(_)) => ArrowType::Interval(IntervalUnit::MonthDayNano),
        Some(Kind::YearMonthInterval(_)) => ArrowType::Interval(IntervalUnit::YearMonth),
        Some(Kind::DayTimeInterval(_)) => ArrowType::Duration(TimeUnit::Microsecond),
        Some(Kind::Array(a)) => {
            let elem = a
                .element_type
                .as_deref()
                .map(|t| to_arrow_type(t, session_tz))
                .unwrap_or(ArrowType::Null);
            ArrowType::List(Arc::new(Field::new("element", elem, a.contains_null)))
        }
        Some(Kind::Struct(s)) => ArrowType::Struct(struct_fields(s, session_tz)),
        Some(Kind::Map(m)) => {
            let k = m
                .key_type
                .as_deref()
                .map(|t| to_arrow_type(t, session_tz))
                .unwrap_or(ArrowType::Null);
            let v = m
                .value_type
                .as_deref()
                .map(|t| to_arrow_type(t, session_tz))
                .unwrap_or(ArrowType::Null);
            let entries = Field::new(
                "entries",
                ArrowType::Struct(Fields::from(vec![
                    Field::new("key", k, false),
                    Field::new("value", v, m.value_contains_null),
                ])),
                false,
            );
            ArrowType::Map(Arc::new(entries), false)
        }
        Some(Kind::Udt(u)) => u
            .sql_type
            .as_deref()
            .map(|t| to_arrow_type(t, session_tz))
            .unwrap_or(ArrowType::Binary),
        Some(Kind::Variant(_))
        | Some(Kind::Geometry(_))
        | Some(Kind::Geography(_))
        | Some(Kind::Unparsed(_)) => ArrowType::Binary,
    }
}

fn struct_fields(s: &sc_proto::spark::connect::data_type::Struct, tz: &str) -> Fields {
    s.fields
        .iter()
        .map(|f| {
            let t = f
                .data_type
                .as_ref()
                .map(|t| to_arrow_type(t, tz))
                .unwrap_or(ArrowType::Null);
            Field::new(&f.name, t, f.nullable)
        })
        .collect()
}

/// The Arrow schema of a Spark struct type (a DataFrame's schema); a non-struct type becomes a
/// one-column schema named `value`.
pub fn to_arrow_schema(dt: &ProtoDataType, session_tz: &str) -> Schema {
    match &dt.kind {
        Some(Kind::Struct(s)) => Schema::new(struct_fields(s, session_tz)),
        _ => Schema::new(vec![Field::new(
            "value",
            to_arrow_type(dt, session_tz),
            true,
        )]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sc_proto::spark::connect::data_type;

    #[test]
    fn struct_to_schema() {
        let dt = ProtoDataType {
            kind: Some(Kind::Struct(data_type::Struct {
                fields: vec![
                    data_type::StructField {
                        name: "id".into(),
                        data_type: Some(ProtoDataType {
                            kind: Some(Kind::Long(data_type::Long::default())),
                        }),
                        nullable: false,
                        metadata: None,
                    },
                    data_type::StructField {
                        name: "s".into(),
                        data_type: Some(ProtoDataType {
                            kind: Some(Kind::String(data_type::String::default())),
                        }),
                        nullable: true,
                        metadata: None,
                    },
                ],
                type_variation_reference: 0,
            })),
        };
        let s = to_arrow_schema(&dt, "UTC");
        assert_eq!(s.field(0).data_type(), &ArrowType::Int64);
        assert!(!s.field(0).is_nullable());
        assert_eq!(s.field(1).data_type(), &ArrowType::Utf8);
    }
}
