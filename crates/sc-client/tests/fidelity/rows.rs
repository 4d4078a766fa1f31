//! The Rust spellings of `cases_rows.py`: DataFrames from local data, built inline.
//!
//! The Arrow IPC bytes of a `LocalRelation` differ between pyarrow and arrow-rs (padding,
//! message layout), so [`canonical`] decodes each `LocalRelation`'s data on both sides and
//! re-encodes it in one canonical form: plans are then equal when the decoded schema (names,
//! types, nullability, metadata) and the data are, and every other byte of the plan is
//! compared as is.

use std::collections::HashMap;
use std::sync::Arc;

use arrow_array::{Int64Array, RecordBatch, StringArray};
use arrow_schema::{DataType, Field, Schema, TimeUnit};
use bytes::Bytes;
use sc_client::proto::relation::RelType;
use sc_client::proto::{Plan, Relation, plan::OpType};
use sc_client::types::{DataType as SparkType, StructType};
use sc_client::{DataFrame, SparkSession};
use serde::{Serialize, Serializer};

/// Bytes serialized as serde bytes (what `serde_bytes` does), so they become a `binary`.
struct Blob(&'static [u8]);

impl Serialize for Blob {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(self.0)
    }
}

#[derive(Serialize)]
struct Person {
    name: String,
    age: i64,
    score: f64,
    ok: bool,
}

#[derive(Serialize)]
struct Inner {
    x: i64,
    y: String,
}

#[derive(Serialize)]
struct Nested {
    id: i64,
    tags: Vec<String>,
    attrs: HashMap<String, i64>,
    inner: Inner,
}

/// A case of `cases_rows.py`, or `None` when the name is not one of them.
pub(crate) fn build(name: &str, spark: &SparkSession) -> Option<DataFrame> {
    let df = match name {
        "create_tuples_names" => spark
            .create_dataframe_from_rows(vec![("alice", 34i64), ("bob", 27)], ["name", "age"])
            .build_inline(),
        "create_tuples_fewer_names" => spark
            .create_dataframe_from_rows(vec![("a", 1i64, 2.5f64)], ["name"])
            .build_inline(),
        "create_tuples_no_names" => spark
            .create_dataframe_from(vec![("a", 1i64), ("b", 2)])
            .build_inline(),
        "create_rows" => spark
            .create_dataframe_from(vec![
                Person {
                    name: "alice".into(),
                    age: 34,
                    score: 1.5,
                    ok: true,
                },
                Person {
                    name: "bob".into(),
                    age: 27,
                    score: 0.5,
                    ok: false,
                },
            ])
            .build_inline(),
        "create_nested" => spark
            .create_dataframe_from(vec![
                Nested {
                    id: 1,
                    tags: vec!["a".into(), "b".into()],
                    attrs: HashMap::from([("k".into(), 1)]),
                    inner: Inner {
                        x: 1,
                        y: "z".into(),
                    },
                },
                Nested {
                    id: 2,
                    tags: vec![],
                    attrs: HashMap::new(),
                    inner: Inner {
                        x: 2,
                        y: "w".into(),
                    },
                },
            ])
            .build_inline(),
        "create_nulls" => spark
            .create_dataframe_from_rows(vec![("a", None), ("b", Some(2i64))], ["name", "n"])
            .build_inline(),
        "create_bytes" => spark
            .create_dataframe_from_rows(vec![(Blob(b"\x00\xff"),)], ["b"])
            .build_inline(),
        "create_explicit_schema" => spark
            .create_dataframe_from(vec![("a", Some(1i32)), ("b", None)])
            .schema(Schema::new(vec![
                Field::new("name", DataType::Utf8, true),
                Field::new("n", DataType::Int32, true),
            ]))
            .build_inline(),
        "create_dates_schema" => spark
            .create_dataframe_from(vec![(
                chrono::NaiveDate::from_ymd_opt(2024, 2, 29).unwrap(),
                chrono::DateTime::from_timestamp_micros(1_709_210_096_789_012).unwrap(),
                chrono::NaiveDate::from_ymd_opt(1999, 12, 31)
                    .unwrap()
                    .and_hms_opt(23, 59, 59)
                    .unwrap(),
                "12.50",
            )])
            .schema(Schema::new(vec![
                Field::new("day", DataType::Date32, true),
                Field::new(
                    "at",
                    DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
                    true,
                ),
                Field::new(
                    "local",
                    DataType::Timestamp(TimeUnit::Microsecond, None),
                    true,
                ),
                Field::new("amount", DataType::Decimal128(10, 2), false),
            ]))
            .build_inline(),
        "create_typed_schema" => spark
            .create_dataframe_from(vec![(
                "a",
                vec![Some(1i32), None],
                HashMap::from([("k", "1.50")]),
                chrono::DateTime::from_timestamp(1_704_067_200, 0).unwrap(),
            )])
            .schema(
                StructType::empty()
                    .add("name", SparkType::String, false)
                    .add(
                        "xs",
                        SparkType::Array {
                            element_type: Box::new(SparkType::Integer),
                            contains_null: true,
                        },
                        true,
                    )
                    .add(
                        "m",
                        SparkType::Map {
                            key_type: Box::new(SparkType::String),
                            value_type: Box::new(SparkType::Decimal {
                                precision: 10,
                                scale: 2,
                            }),
                            value_contains_null: true,
                        },
                        true,
                    )
                    .add("at", SparkType::Timestamp, true),
            )
            .build_inline(),
        "create_empty_schema" => spark
            .create_dataframe_from(Vec::<(String, i64)>::new())
            .schema(Schema::new(vec![
                Field::new("name", DataType::Utf8, true),
                Field::new("n", DataType::Int64, true),
            ]))
            .build_inline(),
        "create_arrow_table" => {
            let batch = RecordBatch::try_new(
                Arc::new(Schema::new(vec![
                    Field::new("a", DataType::Int64, true),
                    Field::new("b", DataType::Utf8, true),
                ])),
                vec![
                    Arc::new(Int64Array::from(vec![1, 2])),
                    Arc::new(StringArray::from(vec![Some("x"), None])),
                ],
            )
            .unwrap();
            spark.create_dataframe_from_batches(&[batch]).build_inline()
        }
        "create_then_transform" => spark
            .create_dataframe_from_rows(vec![("alice", 34i64)], ["name", "age"])
            .build_inline()
            .map(|df| df.filter("age > 30").select(["name"])),
        _ => return None,
    };
    Some(df.unwrap())
}

/// `plan` with the data of every `LocalRelation` decoded and re-encoded canonically (one
/// batch, arrow-rs's encoding). Walks the relations the cases above build on.
pub(crate) fn canonical(mut plan: Plan) -> Plan {
    if let Some(OpType::Root(rel)) = &mut plan.op_type {
        canonical_relation(rel);
    }
    plan
}

fn canonical_relation(rel: &mut Relation) {
    match &mut rel.rel_type {
        Some(RelType::LocalRelation(local)) => {
            if let Some(data) = &local.data {
                local.data = Some(reencode(data));
            }
        }
        Some(RelType::ToDf(t)) => t
            .input
            .as_deref_mut()
            .into_iter()
            .for_each(canonical_relation),
        Some(RelType::Filter(f)) => f
            .input
            .as_deref_mut()
            .into_iter()
            .for_each(canonical_relation),
        Some(RelType::Project(p)) => p
            .input
            .as_deref_mut()
            .into_iter()
            .for_each(canonical_relation),
        _ => {}
    }
}

fn reencode(data: &Bytes) -> Bytes {
    let reader =
        arrow_ipc::reader::StreamReader::try_new(std::io::Cursor::new(data.clone()), None).unwrap();
    let schema = reader.schema();
    let batches: Vec<RecordBatch> = reader.map(|b| b.unwrap()).collect();
    let one = arrow_select::concat::concat_batches(&schema, &batches).unwrap();
    let mut out = Vec::new();
    let mut w = arrow_ipc::writer::StreamWriter::try_new(&mut out, &schema).unwrap();
    w.write(&one).unwrap();
    w.finish().unwrap();
    drop(w);
    Bytes::from(out)
}
