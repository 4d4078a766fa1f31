//! Rows and serde against a real Spark Connect server (`SC_TEST_SPARK_A`; give it
//! `--driver-memory 3g`, for the 300 MB local relation): typed getters over every kind of
//! value, serde round trips through Spark, DataFrames from tuples with names and from explicit
//! schemas, and large local data through the cached-local-relation path.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use arrow_array::{Int64Array, RecordBatch, StringArray};
use arrow_schema::{DataType, Field, Schema};
use chrono::{DateTime, NaiveDate, NaiveDateTime, NaiveTime, TimeDelta, Utc};
use futures_util::StreamExt;
use sc_client::proto::relation::RelType;
use sc_client::{DataFrame, Decimal, Error, Row, SparkSession, Timestamp, TimestampNtz};
use serde::{Deserialize, Serialize};

async fn spark() -> SparkSession {
    let addr = std::env::var("SC_TEST_SPARK_A").unwrap_or_else(|_| {
        panic!("SC_TEST_SPARK_A is not set: start a Spark Connect server and export its address")
    });
    SparkSession::builder()
        .remote(format!("sc://{addr}/;user_id=sc-client-rows"))
        .build()
        .await
        .unwrap()
}

/// The relation under any `ToDF` of a DataFrame's plan.
fn source_relation(df: &DataFrame) -> RelType {
    let mut rel = df.relation().clone();
    loop {
        match rel.rel_type.unwrap() {
            RelType::ToDf(t) => rel = *t.input.unwrap(),
            other => return other,
        }
    }
}

fn is_cached(df: &DataFrame) -> bool {
    matches!(source_relation(df), RelType::ChunkedCachedLocalRelation(_))
}

fn date(y: i32, m: u32, d: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(y, m, d).unwrap()
}

fn wall(y: i32, m: u32, d: u32, time: &str) -> NaiveDateTime {
    date(y, m, d).and_time(time.parse::<NaiveTime>().unwrap())
}

const EVERY_KIND: &str = "select \
    cast(1 as tinyint) as t8, cast(2 as smallint) as t16, 3 as i, cast(4 as bigint) as l, \
    cast(null as int) as n, 'héllo' as s, 1.5d as d, cast(2.5 as float) as f, true as b, \
    cast('12345.67' as decimal(10,2)) as dec, date'2024-02-29' as day, \
    timestamp'2024-02-29 12:34:56.789012' as ts, \
    timestamp_ntz'2024-02-29 12:34:56.789012' as ntz, \
    array(1, 2, null) as arr, map('a', 1, 'b', 2) as m, \
    named_struct('x', 1, 'inner', named_struct('y', 'z', 'ks', array(named_struct('k', 7), named_struct('k', 8)))) as st, \
    cast(null as struct<x:int>) as nst, X'CAFE' as bin, \
    interval '1 02:03:04.5' day to second as dur, \
    cast(null as array<string>) as narr, map('k', cast(null as string)) as nvals";

#[tokio::test]
async fn typed_getters_read_every_kind_of_value() {
    let spark = spark().await;
    // A session time zone other than UTC: timestamps are instants whatever the zone.
    spark
        .conf()
        .set("spark.sql.session.timeZone", "Europe/Paris")
        .await
        .unwrap();
    let df = spark.sql(EVERY_KIND).await.unwrap();
    let row = df.first_row().await.unwrap().expect("one row");

    assert_eq!(row.get::<i8>("t8").unwrap(), 1);
    assert_eq!(row.get::<i16>("t16").unwrap(), 2);
    assert_eq!(row.get::<i32>("i").unwrap(), 3);
    assert_eq!(row.get::<i64>("i").unwrap(), 3, "an int widens to i64");
    assert_eq!(row.get::<i64>("l").unwrap(), 4);
    assert_eq!(row.get::<Option<i32>>("n").unwrap(), None);
    assert!(row.is_null("n").unwrap());
    assert_eq!(row.get::<String>("s").unwrap(), "héllo");
    assert_eq!(row.get::<f64>("d").unwrap(), 1.5);
    assert_eq!(row.get::<f32>("f").unwrap(), 2.5);
    assert!(row.get::<bool>("b").unwrap());
    let dec: Decimal = row.get("dec").unwrap();
    assert_eq!(
        (dec.value.as_str(), dec.precision, dec.scale),
        ("12345.67", 10, 2)
    );
    assert_eq!(row.get::<NaiveDate>("day").unwrap(), date(2024, 2, 29));
    // 12:34:56 in Paris (UTC+1 in February) is 11:34:56 UTC.
    let ts: DateTime<Utc> = row.get("ts").unwrap();
    assert_eq!(ts.naive_utc(), wall(2024, 2, 29, "11:34:56.789012"));
    assert_eq!(row.get::<Timestamp>("ts").unwrap().0, ts.timestamp_micros());
    let ntz: NaiveDateTime = row.get("ntz").unwrap();
    assert_eq!(ntz, wall(2024, 2, 29, "12:34:56.789012"));
    assert_eq!(
        row.get::<TimestampNtz>("ntz").unwrap().0,
        ntz.and_utc().timestamp_micros()
    );
    assert_eq!(
        row.get::<Vec<Option<i32>>>("arr").unwrap(),
        vec![Some(1), Some(2), None]
    );
    assert!(
        row.get::<Vec<i32>>("arr").is_err(),
        "a null element needs Option"
    );
    assert_eq!(
        row.get::<BTreeMap<String, i32>>("m").unwrap(),
        BTreeMap::from([("a".into(), 1), ("b".into(), 2)])
    );
    let st: Row = row.get("st").unwrap();
    assert_eq!(st.get::<i32>("x").unwrap(), 1);
    let inner: Row = st.get("inner").unwrap();
    assert_eq!(inner.get::<String>(0).unwrap(), "z");
    let ks: Vec<Row> = inner.get("ks").unwrap();
    assert_eq!(
        ks.iter()
            .map(|k| k.get::<i32>("k").unwrap())
            .collect::<Vec<_>>(),
        vec![7, 8]
    );
    assert_eq!(row.get::<Option<Row>>("nst").unwrap(), None);
    assert_eq!(row.get::<Vec<u8>>("bin").unwrap(), vec![0xCA, 0xFE]);
    assert_eq!(
        row.get::<TimeDelta>("dur").unwrap(),
        TimeDelta::days(1)
            + TimeDelta::hours(2)
            + TimeDelta::minutes(3)
            + TimeDelta::milliseconds(4500)
    );
    assert_eq!(row.get::<Option<Vec<String>>>("narr").unwrap(), None);
    assert_eq!(
        row.get::<HashMap<String, Option<String>>>("nvals").unwrap(),
        HashMap::from([("k".into(), None)])
    );

    // Clear errors for what does not fit.
    let e = row.get::<i32>("l").unwrap_err();
    assert!(matches!(e, Error::Conversion(_)), "{e}");
    assert!(e.to_string().contains("column 'l'"), "{e}");
    let e = row.get::<i32>("n").unwrap_err().to_string();
    assert!(e.contains("Option<i32>"), "{e}");
    let e = row.get::<i32>("nope").unwrap_err().to_string();
    assert!(e.contains("no column 'nope'"), "{e}");
    assert!(
        row.to_string()
            .starts_with("Row(t8=1, t16=2, i=3, l=4, n=None, s='héllo'")
    );
    spark.stop().await.unwrap();
}

#[derive(Debug, PartialEq, Deserialize)]
struct Inner {
    y: String,
    ks: Vec<K>,
}

#[derive(Debug, PartialEq, Deserialize)]
struct K {
    k: i32,
}

#[derive(Debug, PartialEq, Deserialize)]
struct St {
    x: i32,
    inner: Inner,
}

/// Every column of [`EVERY_KIND`] but the interval, as serde reads it.
#[derive(Debug, Deserialize)]
struct EveryKind {
    t8: i8,
    t16: i16,
    i: i32,
    l: i64,
    n: Option<i32>,
    s: String,
    d: f64,
    f: f32,
    b: bool,
    dec: String,
    day: NaiveDate,
    ts: DateTime<Utc>,
    ntz: NaiveDateTime,
    arr: Vec<Option<i32>>,
    m: HashMap<String, i32>,
    st: St,
    nst: Option<St>,
    narr: Option<Vec<String>>,
    nvals: BTreeMap<String, Option<String>>,
}

#[tokio::test]
async fn results_deserialize_into_serde_types() {
    let spark = spark().await;
    spark
        .conf()
        .set("spark.sql.session.timeZone", "America/New_York")
        .await
        .unwrap();
    let df = spark
        .sql(&EVERY_KIND.replace(" as dur,", " as dur_unused,"))
        .await
        .unwrap()
        .drop(["dur_unused", "bin"]);
    let all: Vec<EveryKind> = df.collect_as().await.unwrap();
    assert_eq!(all.len(), 1);
    let v = &all[0];
    assert_eq!((v.t8, v.t16, v.i, v.l, v.n), (1, 2, 3, 4, None));
    assert_eq!((v.s.as_str(), v.d, v.f, v.b), ("héllo", 1.5, 2.5, true));
    assert_eq!(v.dec, "12345.67");
    assert_eq!(v.day, date(2024, 2, 29));
    // 12:34:56 in New York (UTC-5 in February) is 17:34:56 UTC.
    assert_eq!(v.ts.naive_utc(), wall(2024, 2, 29, "17:34:56.789012"));
    assert_eq!(v.ntz, wall(2024, 2, 29, "12:34:56.789012"));
    assert_eq!(v.arr, vec![Some(1), Some(2), None]);
    assert_eq!(v.m, HashMap::from([("a".into(), 1), ("b".into(), 2)]));
    assert_eq!(
        v.st,
        St {
            x: 1,
            inner: Inner {
                y: "z".into(),
                ks: vec![K { k: 7 }, K { k: 8 }]
            }
        }
    );
    assert_eq!(v.nst, None);
    assert_eq!(v.narr, None);
    assert_eq!(v.nvals, BTreeMap::from([("k".into(), None)]));

    // A row's whole value and one column, through serde.
    let row = df.first_row().await.unwrap().unwrap();
    assert_eq!(row.deserialize::<EveryKind>().unwrap().i, 3);
    assert_eq!(row.get_as::<St>("st").unwrap().inner.ks.len(), 2);

    // Tuples, first_as, head_as and a typed stream.
    let nums = spark
        .range(0, 2500)
        .select_expr(["id", "cast(id as string) as s"]);
    let first: Option<(i64, String)> = nums.first_as().await.unwrap();
    assert_eq!(first, Some((0, "0".into())));
    let head: Vec<(i64, String)> = nums.head_as(3).await.unwrap();
    assert_eq!(head.len(), 3);
    let mut stream = nums.stream_as::<(i64, String)>().await.unwrap();
    let mut expected = 0;
    while let Some(item) = stream.next().await {
        let (id, s) = item.unwrap();
        assert_eq!((id, s), (expected, expected.to_string()));
        expected += 1;
    }
    assert_eq!(expected, 2500);
    let none: Option<(i64,)> = spark.range(0, 0).first_as().await.unwrap();
    assert_eq!(none, None);
    let e = nums.collect_as::<(String, String)>().await.unwrap_err();
    assert!(matches!(e, Error::Conversion(_)), "{e}");
    spark.stop().await.unwrap();
}

#[tokio::test]
async fn row_actions_and_stream() {
    let spark = spark().await;
    let df = spark
        .range(0, 30_000)
        .select_expr(["id", "id * 2 as twice"]);
    let rows = df.collect_rows().await.unwrap();
    assert_eq!(rows.len(), 30_000);
    assert_eq!(rows[29_999].get::<i64>("twice").unwrap(), 59_998);
    assert_eq!(df.head_rows(2).await.unwrap().len(), 2);
    assert_eq!(df.take_rows(5).await.unwrap()[4].get::<i64>(0).unwrap(), 4);
    let tail = df.tail_rows(1).await.unwrap();
    assert_eq!(tail[0].get::<i64>("id").unwrap(), 29_999);
    assert_eq!(spark.range(0, 0).first_row().await.unwrap(), None);

    let mut stream = df.to_row_stream().await.unwrap();
    let mut n = 0i64;
    while let Some(row) = stream.next().await {
        let row = row.unwrap();
        assert_eq!(row.get::<i64>(1).unwrap(), 2 * row.get::<i64>(0).unwrap());
        n += 1;
    }
    assert_eq!(n, 30_000);
    assert!(stream.bytes_received() > 0);
    let mut early = df.to_local_iterator().await.unwrap();
    assert_eq!(
        early.next().await.unwrap().unwrap().get::<i64>(0).unwrap(),
        0
    );
    drop(early);
    spark.stop().await.unwrap();
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Customer {
    name: String,
    vip: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct LineItem {
    sku: String,
    qty: i32,
    price: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Order {
    id: i64,
    customer: Customer,
    items: Vec<LineItem>,
    tags: HashMap<String, String>,
    placed: NaiveDate,
    at: DateTime<Utc>,
    local: NaiveDateTime,
    total: String,
    note: Option<String>,
    scores: Vec<Option<i16>>,
}

fn orders() -> Vec<Order> {
    (0..3)
        .map(|i| Order {
            id: i,
            customer: Customer {
                name: format!("c{i}"),
                vip: i % 2 == 0,
            },
            items: (0..i)
                .map(|j| LineItem {
                    sku: format!("sku-{j}"),
                    qty: j as i32 + 1,
                    price: 0.25 + j as f64,
                })
                .collect(),
            tags: HashMap::from([("k".to_string(), format!("v{i}"))]),
            placed: date(2024, 1, 1 + i as u32),
            at: DateTime::from_timestamp_micros(1_700_000_000_000_001 + i).unwrap(),
            local: wall(1999, 12, 31, "23:59:59.000123"),
            total: format!("{i}.25"),
            note: (i == 1).then(|| "fragile".to_string()),
            scores: vec![Some(i as i16), None],
        })
        .collect()
}

const ORDER_DDL: &str = "id bigint, customer struct<name:string,vip:boolean>, \
    items array<struct<sku:string,qty:int,price:double>>, tags map<string,string>, \
    placed date, at timestamp, local timestamp_ntz, total decimal(12,2), note string, \
    scores array<smallint>";

#[tokio::test]
async fn serde_values_round_trip_through_spark() {
    let spark = spark().await;
    let orders = orders();
    // An explicit DDL schema: dates, timestamps and decimals (text in serde) get Spark types.
    let df = spark
        .create_dataframe_from(&orders)
        .schema(ORDER_DDL)
        .await
        .unwrap();
    assert!(!is_cached(&df), "a few rows travel inline");
    let tree = df.tree_string().await.unwrap();
    for t in [
        "placed: date",
        "at: timestamp",
        "local: timestamp_ntz",
        "total: decimal(12,2)",
        "tags: map",
        "element: struct",
    ] {
        assert!(tree.contains(t), "{t} missing in\n{tree}");
    }
    let back: Vec<Order> = df.collect_as().await.unwrap();
    assert_eq!(back, orders);
    // Spark computes on the values, not just echoes them.
    let row = df
        .select_expr([
            "sum(total) as total",
            "sum(size(items)) as items",
            "max(at) as at",
            "count(note) as notes",
            "min(placed) as first",
        ])
        .first_row()
        .await
        .unwrap()
        .unwrap();
    assert_eq!(row.get::<Decimal>("total").unwrap().value, "3.75");
    assert_eq!(row.get::<i64>("items").unwrap(), 3);
    assert_eq!(row.get::<DateTime<Utc>>("at").unwrap(), orders[2].at);
    assert_eq!(row.get::<i64>("notes").unwrap(), 1);
    assert_eq!(row.get::<NaiveDate>("first").unwrap(), date(2024, 1, 1));

    // The same with an Arrow schema.
    let arrow_schema = df.schema().await.unwrap();
    let df2 = spark
        .create_dataframe_from(&orders)
        .schema(arrow_schema)
        .await
        .unwrap();
    assert_eq!(df2.collect_as::<Order>().await.unwrap(), orders);
    spark.stop().await.unwrap();
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Reading {
    sensor: String,
    value: Option<f64>,
    flags: Vec<bool>,
    attrs: BTreeMap<String, i64>,
    position: (i32, i32),
    level: Level,
    count: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
enum Level {
    Low,
    High,
}

#[tokio::test]
async fn inferred_schema_round_trips() {
    let spark = spark().await;
    let readings = vec![
        Reading {
            sensor: "a".into(),
            value: Some(1.25),
            flags: vec![true, false],
            attrs: BTreeMap::from([("x".into(), 1)]),
            position: (1, 2),
            level: Level::Low,
            count: u32::MAX,
        },
        Reading {
            sensor: "b".into(),
            value: None,
            flags: vec![],
            attrs: BTreeMap::new(),
            position: (-3, 4),
            level: Level::High,
            count: 0,
        },
    ];
    let df = spark.create_dataframe_from(&readings).await.unwrap();
    let tree = df.tree_string().await.unwrap();
    for t in [
        "sensor: string",
        "value: double",
        "flags: array",
        "attrs: map",
        "value: long",
        "position: struct",
        "_1: integer",
        "level: string",
        "count: long",
    ] {
        assert!(tree.contains(t), "{t} missing in\n{tree}");
    }
    #[derive(Debug, PartialEq, Deserialize)]
    struct Back {
        sensor: String,
        value: Option<f64>,
        flags: Vec<bool>,
        attrs: BTreeMap<String, i64>,
        position: Position,
        level: String,
        count: i64,
    }
    #[derive(Debug, PartialEq, Deserialize)]
    struct Position {
        _1: i32,
        _2: i32,
    }
    let back: Vec<Back> = df.collect_as().await.unwrap();
    assert_eq!(back[0].position, Position { _1: 1, _2: 2 });
    assert_eq!(back[0].level, "Low");
    assert_eq!(back[0].count, i64::from(u32::MAX));
    assert_eq!(back[1].value, None);
    assert_eq!(back[1].attrs, BTreeMap::new());
    assert_eq!(df.filter("value is null").count().await.unwrap(), 1);
    spark.stop().await.unwrap();
}

#[tokio::test]
async fn tuples_with_column_names() {
    let spark = spark().await;
    let df = spark
        .create_dataframe_from_rows(
            vec![
                ("alice", 34i64, Some(1.5)),
                ("bob", 27, None),
                ("cy", 41, Some(2.0)),
            ],
            ["name", "age"],
        )
        .await
        .unwrap();
    assert_eq!(df.columns().await.unwrap(), vec!["name", "age", "_3"]);
    let rows = df.filter("age > 30").collect_rows().await.unwrap();
    let names: Vec<String> = rows.iter().map(|r| r.get("name").unwrap()).collect();
    assert_eq!(names, vec!["alice", "cy"]);
    assert_eq!(rows[0].get::<Option<f64>>("_3").unwrap(), Some(1.5));

    // With a DDL schema, and with no rows but a schema.
    let typed = spark
        .create_dataframe_from_rows(vec![("2024-03-01", "9.99")], ["day", "price"])
        .schema("day date, price decimal(5,2)")
        .await
        .unwrap();
    let row = typed.first_row().await.unwrap().unwrap();
    assert_eq!(row.get::<NaiveDate>("day").unwrap(), date(2024, 3, 1));
    assert_eq!(row.get::<Decimal>("price").unwrap().value, "9.99");
    let empty = spark
        .create_dataframe_from(Vec::<(String, i32)>::new())
        .schema("name string, n int")
        .await
        .unwrap();
    assert_eq!(empty.count().await.unwrap(), 0);
    assert_eq!(empty.columns().await.unwrap(), vec!["name", "n"]);
    // A DDL the server cannot parse is the server's error.
    let bad = spark
        .create_dataframe_from(vec![(1i32,)])
        .schema("n notatype")
        .await;
    assert!(matches!(bad, Err(Error::Spark(_))), "{bad:?}");
    spark.stop().await.unwrap();
}

/// Rows of `(id, payload)`: a payload of `width` bytes that differs per row.
fn payload_rows(n: i64, width: usize) -> Vec<(i64, String)> {
    (0..n)
        .map(|id| {
            let seed = format!("{id:012}|");
            let mut s = seed.repeat(width / seed.len() + 1);
            s.truncate(width);
            (id, s)
        })
        .collect()
}

/// Count, sum of ids, sum of payload lengths and sum of the payloads' CRC-32s, computed by Spark.
async fn server_checksum(df: &DataFrame) -> (i64, i64, i64, i64) {
    let row = df
        .select_expr([
            "count(*) as n",
            "sum(id) as ids",
            "sum(length(payload)) as bytes",
            "sum(crc32(payload)) as crc",
        ])
        .first_row()
        .await
        .unwrap()
        .unwrap();
    (
        row.get("n").unwrap(),
        row.get("ids").unwrap(),
        row.get("bytes").unwrap(),
        row.get("crc").unwrap(),
    )
}

fn local_checksum(rows: &[(i64, String)]) -> (i64, i64, i64, i64) {
    rows.iter()
        .fold((0, 0, 0, 0), |(n, ids, bytes, crc), (id, p)| {
            (
                n + 1,
                ids + id,
                bytes + p.len() as i64,
                crc + i64::from(crc32fast::hash(p.as_bytes())),
            )
        })
}

#[tokio::test]
async fn data_above_the_threshold_goes_through_cached_artifacts() {
    let spark = spark().await;
    // About 2 MB: over the default 1 MiB threshold. Small chunks, so there are several.
    for (key, value) in [
        ("spark.sql.session.localRelationChunkSizeBytes", "262144"),
        ("spark.sql.session.localRelationChunkSizeRows", "100"),
    ] {
        spark.conf().set(key, value).await.unwrap();
    }
    let rows = payload_rows(4000, 500);
    let df = spark
        .create_dataframe_from_rows(&rows, ["id", "payload"])
        .await
        .unwrap();
    let RelType::ChunkedCachedLocalRelation(rel) = source_relation(&df) else {
        panic!("expected a cached relation, got {:?}", source_relation(&df));
    };
    // PySpark 4.2.1's createDataFrame of the same rows (Python ints, so `long`) with the same
    // settings sends 8 chunks and this schema hash (the sha256 of the same schema JSON); the
    // data chunks' hashes differ, as pyarrow and arrow-rs encode Arrow IPC differently.
    assert_eq!(rel.data_hashes.len(), 8);
    assert_eq!(
        rel.schema_hash.as_deref(),
        Some("26472e26a70e4ade8704bd5bdcea185306b8ab3eac1d9deb3944e39f9c7d1f9e")
    );
    assert!(rel.data_hashes.iter().all(|h| h.len() == 64));
    assert_eq!(df.collect_as::<(i64, String)>().await.unwrap(), rows);

    // The same data again: the server already has every chunk, and the plan is the same.
    let again = spark
        .create_dataframe_from_rows(&rows, ["id", "payload"])
        .await
        .unwrap();
    assert_eq!(source_relation(&again), source_relation(&df));
    assert_eq!(server_checksum(&again).await, local_checksum(&rows));

    // Arrow batches take the same path (without a schema chunk, as PySpark's Arrow tables).
    let batch = RecordBatch::try_new(
        Arc::new(Schema::new(vec![
            Field::new("id", DataType::Int64, false),
            Field::new("payload", DataType::LargeUtf8, false),
        ])),
        vec![
            Arc::new(Int64Array::from_iter_values(rows.iter().map(|r| r.0))),
            Arc::new(arrow_array::LargeStringArray::from_iter_values(
                rows.iter().map(|r| r.1.as_str()),
            )),
        ],
    )
    .unwrap();
    let from_arrow = spark.create_dataframe_from_batches(&[batch]).await.unwrap();
    let RelType::ChunkedCachedLocalRelation(rel) = source_relation(&from_arrow) else {
        panic!("expected a cached relation");
    };
    assert!(rel.schema_hash.is_none());
    assert_eq!(server_checksum(&from_arrow).await, local_checksum(&rows));

    // Below the threshold the same call is inline.
    let small = spark
        .create_dataframe_from_rows(&rows[..10], ["id", "payload"])
        .await
        .unwrap();
    assert!(matches!(source_relation(&small), RelType::LocalRelation(_)));
    let batch = RecordBatch::try_new(
        Arc::new(Schema::new(vec![Field::new("s", DataType::Utf8, true)])),
        vec![Arc::new(StringArray::from(vec!["x"]))],
    )
    .unwrap();
    let tiny = spark.create_dataframe_from_batches(&[batch]).await.unwrap();
    assert_eq!(
        tiny.collect_as::<(String,)>().await.unwrap(),
        vec![("x".into(),)]
    );

    // The server's size limit is enforced before anything is uploaded past it.
    spark
        .conf()
        .set("spark.sql.session.localRelationSizeLimit", "1000000")
        .await
        .unwrap();
    let over = spark
        .create_dataframe_from_rows(&rows, ["id", "payload"])
        .await
        .unwrap_err();
    assert!(
        over.to_string().contains("localRelationSizeLimit"),
        "{over}"
    );
    spark.stop().await.unwrap();
}

/// 300 MB of local rows: far over the 128 MiB message limit, so only the cached-relation path
/// can carry them.
#[tokio::test]
async fn three_hundred_megabytes_of_local_rows() {
    let spark = spark().await;
    let rows = payload_rows(300_000, 1000);
    let local = local_checksum(&rows);
    assert!(local.2 >= 300_000_000);
    let started = std::time::Instant::now();
    let df = spark
        .create_dataframe_from_rows(&rows, ["id", "payload"])
        .await
        .unwrap();
    let uploaded = started.elapsed();
    let RelType::ChunkedCachedLocalRelation(rel) = source_relation(&df) else {
        panic!("expected a cached relation");
    };
    let remote = server_checksum(&df).await;
    println!(
        "300 MB of local rows: converted and uploaded in {:.1} s as {} chunks, counted by Spark in {:.1} s",
        uploaded.as_secs_f64(),
        rel.data_hashes.len(),
        (started.elapsed() - uploaded).as_secs_f64()
    );
    assert_eq!(remote, local);
    // Releasing the session frees what the server holds for it (the cached chunks and the
    // relation), for the tests that share the server after this one.
    spark.stop().await.unwrap();
}
