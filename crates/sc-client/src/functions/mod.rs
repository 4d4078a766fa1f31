//! Spark SQL functions: every function of PySpark's `pyspark.sql.functions` (4.3) but the
//! Python-UDF builders (`udf`, `udtf`, `pandas_udf`, `arrow_udf`, `arrow_udtf`).
//!
//! Names are PySpark's (a Rust keyword gets a trailing `_`: [`struct_`], [`typeof_`]), and so
//! are the parameters and their kinds (see [`args`] for how each kind is spelled in Rust):
//! a `ColumnOrName` takes a [`Column`] or a column name (`"a"`), a value takes a literal or a
//! column, and an optional parameter takes its value or `None` for PySpark's default:
//!
//! ```
//! use sc_client::functions::*;
//! let e = upper(col("name")).alias("shout");
//! let total = sum("amount");
//! let c = when(col("x").gt(0), "pos").when(col("x").lt(0), "neg").otherwise("zero");
//! let r = round("price", None);      // PySpark: round("price")
//! let r2 = round("price", 2);        // PySpark: round("price", 2)
//! let parts = split("csv", ",", None);
//! # let _ = (e, total, c, r, r2, parts);
//! ```
//!
//! Most functions are generated at build time from `src/functions/table.jsonl`, a table written
//! by `codegen/functions_table.py` from PySpark's own Spark Connect client: for each function,
//! its parameters and how PySpark turns a call into a plan expression. The rest (column
//! references, literals, sort orders, options maps, higher-order functions with Rust closures,
//! and a few with overloaded signatures) are written out in this module. Every one builds the
//! same plan expression as PySpark's, which the crate's plan-fidelity tests check.
//!
//! Higher-order functions take Rust closures over [`Column`]s:
//!
//! ```
//! use sc_client::functions::*;
//! let doubled = transform("xs", |x| x * 2);
//! let positive = filter("xs", |x| x.gt(0));
//! let total = aggregate("xs", lit(0), |acc, x| acc + x);
//! let sorted = array_sort_by("xs", |a, b| b - a);
//! # let _ = (doubled, positive, total, sorted);
//! ```

pub mod args;
mod lambda;

pub use args::{
    IntoColumnOrLiteral, IntoOptionalColumn, IntoOptionalColumnOrLiteral, IntoOptionalExpr,
};
pub use lambda::{
    aggregate, aggregate_with_finish, array_sort, array_sort_by, exists, filter, filter_with_index,
    forall, map_filter, map_zip_with, reduce, reduce_with_finish, reset_lambda_variable_ids,
    transform, transform_keys, transform_values, transform_with_index, zip_with,
};

use args::{Fill, Slot, int_lit, invoke};

use crate::column::null_literal;
pub use crate::column::{Column, IntoColumn, IntoExpr};
use crate::dataframe::DataFrame;

include!(concat!(env!("OUT_DIR"), "/functions_generated.rs"));

// === columns and literals ===

/// A column by name (`"a"`, `"t.a"`); `"*"` selects every column, `"t.*"` every column of `t`.
pub fn col(name: &str) -> Column {
    Column::name(name)
}

/// Same as [`col`].
pub fn column(name: &str) -> Column {
    Column::name(name)
}

/// A literal value (or a column, passed through).
pub fn lit(value: impl IntoExpr) -> Column {
    value.into_expr()
}

/// A typed `NULL` literal, as PySpark's `lit(None)`.
pub fn null() -> Column {
    null_literal()
}

/// A SQL expression parsed by the server, e.g. `expr("a + 1")`.
pub fn expr(sql: &str) -> Column {
    Column::sql_expr(sql)
}

// === sort orders ===

/// Sort ascending (nulls first) by a column.
pub fn asc(col: impl IntoColumn) -> Column {
    col.into_column().asc()
}

/// Sort ascending, nulls first.
pub fn asc_nulls_first(col: impl IntoColumn) -> Column {
    col.into_column().asc_nulls_first()
}

/// Sort ascending, nulls last.
pub fn asc_nulls_last(col: impl IntoColumn) -> Column {
    col.into_column().asc_nulls_last()
}

/// Sort descending (nulls last) by a column.
pub fn desc(col: impl IntoColumn) -> Column {
    col.into_column().desc()
}

/// Sort descending, nulls first.
pub fn desc_nulls_first(col: impl IntoColumn) -> Column {
    col.into_column().desc_nulls_first()
}

/// Sort descending, nulls last.
pub fn desc_nulls_last(col: impl IntoColumn) -> Column {
    col.into_column().desc_nulls_last()
}

// === calls by name ===

/// Calls any Spark SQL function (built-in or registered) by name (`CallFunction`).
pub fn call_function(func_name: &str, cols: impl IntoIterator<Item = impl IntoColumn>) -> Column {
    Column::call_function(func_name, cols.into_iter().map(IntoColumn::into_column))
}

/// Calls a registered user-defined function by name (an `UnresolvedFunction` of that name).
pub fn call_udf(udf_name: &str, cols: impl IntoIterator<Item = impl IntoColumn>) -> Column {
    Column::call(udf_name, cols.into_iter().map(IntoColumn::into_column))
}

/// Marks a DataFrame as small enough to broadcast in joins (the `broadcast` hint).
pub fn broadcast(df: &DataFrame) -> DataFrame {
    df.hint("broadcast", Vec::<Column>::new())
}

// === functions with overloaded parameters ===

/// `log(col)` is the natural logarithm: PySpark's `log(col)`; see [`log_base`] for a base.
///
/// PySpark's `log(arg1, arg2=None)` is two functions in one: with one argument it calls `ln`,
/// with two `log(base, col)`. In Rust the second form is [`log_base`].
pub fn log(col: impl IntoColumn) -> Column {
    Column::call("ln", [col.into_column()])
}

/// Logarithm of `col` in base `base`: PySpark's `log(base, col)`.
pub fn log_base(base: f64, col: impl IntoColumn) -> Column {
    Column::call("log", [lit(base), col.into_column()])
}

/// SHA-2 digest as hex; `num_bits` is 224, 256, 384, 512 or 0 (meaning 256).
///
/// Other values are sent as given and the server returns `NULL` for them (PySpark refuses them
/// before sending).
pub fn sha2(col: impl IntoColumn, num_bits: i64) -> Column {
    Column::call("sha2", [col.into_column(), int_lit(num_bits)])
}

/// The geometry or geography as binary (WKB); `endianness` (`"NDR"` or `"XDR"`) is a string
/// literal or a column, `None` for the server's default. Since Spark 4.1.
pub fn st_asbinary(geo: impl IntoColumn, endianness: impl IntoOptionalExpr) -> Column {
    let mut args = vec![geo.into_column()];
    args.extend(endianness.into_optional_expr());
    Column::call("st_asbinary", args)
}

/// Seconds since the epoch of `timestamp` parsed with `format` (`None`:
/// `"yyyy-MM-dd HH:mm:ss"`). See [`unix_timestamp_now`] for PySpark's `unix_timestamp()`.
pub fn unix_timestamp<'a>(
    timestamp: impl IntoColumn,
    format: impl Into<Option<&'a str>>,
) -> Column {
    let format = format.into().unwrap_or("yyyy-MM-dd HH:mm:ss");
    Column::call("unix_timestamp", [timestamp.into_column(), lit(format)])
}

/// The current time in seconds since the epoch: PySpark's `unix_timestamp()` without arguments.
pub fn unix_timestamp_now() -> Column {
    Column::call("unix_timestamp", [])
}

/// Buckets rows into time windows of `window_duration` (e.g. `"10 minutes"`), sliding every
/// `slide_duration` (`None`: tumbling) and offset by `start_time` (`None`: none).
pub fn window<'a>(
    time_column: impl IntoColumn,
    window_duration: &str,
    slide_duration: impl Into<Option<&'a str>>,
    start_time: impl Into<Option<&'a str>>,
) -> Column {
    let mut args = vec![time_column.into_column(), lit(window_duration)];
    match (slide_duration.into(), start_time.into()) {
        (Some(slide), Some(start)) => args.extend([lit(slide), lit(start)]),
        (Some(slide), None) => args.push(lit(slide)),
        // PySpark repeats the window duration as the slide to place the start time.
        (None, Some(start)) => args.extend([lit(window_duration), lit(start)]),
        (None, None) => {}
    }
    Column::call("window", args)
}

macro_rules! make_timestamp_fns {
    ($($name:ident, $from:ident, $spark:literal;)*) => {$(
        #[doc = concat!(
            "A timestamp from its parts (years, months, days, hours, minutes, seconds, an optional ",
            "time zone): the Spark SQL function `", $spark, "`, as PySpark's `functions.", $spark,
            "(years, months, days, hours, mins, secs[, timezone])`. For the date-and-time form see [`",
            stringify!($from), "`]."
        )]
        #[allow(clippy::too_many_arguments)]
        pub fn $name(
            years: impl IntoColumn,
            months: impl IntoColumn,
            days: impl IntoColumn,
            hours: impl IntoColumn,
            mins: impl IntoColumn,
            secs: impl IntoColumn,
            timezone: impl IntoOptionalColumn,
        ) -> Column {
            let mut args = vec![
                years.into_column(),
                months.into_column(),
                days.into_column(),
                hours.into_column(),
                mins.into_column(),
                secs.into_column(),
            ];
            args.extend(timezone.into_optional_column());
            Column::call($spark, args)
        }

        #[doc = concat!(
            "A timestamp from a date and a time (and an optional time zone): PySpark's `functions.",
            $spark, "(date=..., time=...[, timezone=...])`. Since Spark 4.1."
        )]
        pub fn $from(
            date: impl IntoColumn,
            time: impl IntoColumn,
            timezone: impl IntoOptionalColumn,
        ) -> Column {
            let mut args = vec![date.into_column(), time.into_column()];
            args.extend(timezone.into_optional_column());
            Column::call($spark, args)
        }
    )*};
}
make_timestamp_fns! {
    make_timestamp, make_timestamp_from_date_time, "make_timestamp";
    try_make_timestamp, try_make_timestamp_from_date_time, "try_make_timestamp";
}

/// A timestamp without time zone from its parts: PySpark's
/// `make_timestamp_ntz(years, months, days, hours, mins, secs)`.
pub fn make_timestamp_ntz(
    years: impl IntoColumn,
    months: impl IntoColumn,
    days: impl IntoColumn,
    hours: impl IntoColumn,
    mins: impl IntoColumn,
    secs: impl IntoColumn,
) -> Column {
    Column::call(
        "make_timestamp_ntz",
        [
            years.into_column(),
            months.into_column(),
            days.into_column(),
            hours.into_column(),
            mins.into_column(),
            secs.into_column(),
        ],
    )
}

/// A timestamp without time zone from a date and a time: PySpark's
/// `make_timestamp_ntz(date=..., time=...)`. Since Spark 4.1.
pub fn make_timestamp_ntz_from_date_time(date: impl IntoColumn, time: impl IntoColumn) -> Column {
    Column::call(
        "make_timestamp_ntz",
        [date.into_column(), time.into_column()],
    )
}

/// Same as [`make_timestamp_ntz`], yielding `NULL` on invalid parts.
pub fn try_make_timestamp_ntz(
    years: impl IntoColumn,
    months: impl IntoColumn,
    days: impl IntoColumn,
    hours: impl IntoColumn,
    mins: impl IntoColumn,
    secs: impl IntoColumn,
) -> Column {
    Column::call(
        "try_make_timestamp_ntz",
        [
            years.into_column(),
            months.into_column(),
            days.into_column(),
            hours.into_column(),
            mins.into_column(),
            secs.into_column(),
        ],
    )
}

/// Same as [`make_timestamp_ntz_from_date_time`], yielding `NULL` on invalid input.
pub fn try_make_timestamp_ntz_from_date_time(
    date: impl IntoColumn,
    time: impl IntoColumn,
) -> Column {
    Column::call(
        "try_make_timestamp_ntz",
        [date.into_column(), time.into_column()],
    )
}

// === functions with an options map ===

/// PySpark's options map: `map(key1, value1, ...)` of string literals.
fn options_map(options: &[(&str, &str)]) -> Column {
    Column::call("map", options.iter().flat_map(|(k, v)| [lit(*k), lit(*v)]))
}

fn with_options(name: &str, mut args: Vec<Column>, options: Option<&[(&str, &str)]>) -> Column {
    args.extend(options.map(options_map));
    Column::call(name, args)
}

macro_rules! parse_with_schema {
    ($($name:ident, $what:literal;)*) => {$(
        #[doc = concat!(
            "Parses a ", $what, " string column with `schema` (a DDL string, or a column) and ",
            "optional reader options: PySpark's `", stringify!($name), "`."
        )]
        pub fn $name(
            col: impl IntoColumn,
            schema: impl IntoExpr,
            options: Option<&[(&str, &str)]>,
        ) -> Column {
            with_options(stringify!($name), vec![col.into_column(), schema.into_expr()], options)
        }
    )*};
}
parse_with_schema! {
    from_json, "JSON";
    from_csv, "CSV";
    from_xml, "XML";
}

macro_rules! schema_of {
    ($($name:ident, $what:literal;)*) => {$(
        #[doc = concat!(
            "The DDL schema of a ", $what, " string (a literal or a column), with optional ",
            "options: PySpark's `", stringify!($name), "`."
        )]
        pub fn $name(text: impl IntoExpr, options: Option<&[(&str, &str)]>) -> Column {
            with_options(stringify!($name), vec![text.into_expr()], options)
        }
    )*};
}
schema_of! {
    schema_of_json, "JSON";
    schema_of_csv, "CSV";
    schema_of_xml, "XML";
}

macro_rules! serialise_to {
    ($($name:ident, $what:literal;)*) => {$(
        #[doc = concat!(
            "Serialises a struct (or array, map, variant where Spark allows) column to ", $what,
            ", with optional options: PySpark's `", stringify!($name), "`."
        )]
        pub fn $name(col: impl IntoColumn, options: Option<&[(&str, &str)]>) -> Column {
            with_options(stringify!($name), vec![col.into_column()], options)
        }
    )*};
}
serialise_to! {
    to_json, "JSON";
    to_csv, "CSV";
    to_xml, "XML";
}

/// The functions of PySpark 4.3's `pyspark.sql.functions` that this module has, by PySpark
/// name (the Python-UDF builders aside): those generated from the table and those written by
/// hand.
pub fn pyspark_function_names() -> Vec<&'static str> {
    let mut names: Vec<&'static str> = TABLE
        .lines()
        .filter_map(|l| {
            let rest = l.split("\"name\": \"").nth(1)?;
            rest.split('"').next()
        })
        .collect();
    names.sort_unstable();
    names
}

const TABLE: &str = include_str!("table.jsonl");

#[cfg(test)]
mod tests {
    use super::*;
    use sc_proto::spark::connect::expression::ExprType;

    fn call_of(c: &Column) -> (String, usize) {
        let Some(ExprType::UnresolvedFunction(f)) = &c.expr.expr_type else {
            panic!("not a function: {c:?}");
        };
        (f.function_name.clone(), f.arguments.len())
    }

    #[test]
    fn names_map_to_spark_functions() {
        assert_eq!(call_of(&struct_(["a", "b"])), ("struct".to_string(), 2));
        assert_eq!(call_of(&typeof_("a")), ("typeof".to_string(), 1));
    }

    #[test]
    fn optional_arguments_follow_pyspark() {
        // instr: a skipped `start` is filled with 1 when `occurrence` is given, else left out.
        assert_eq!(call_of(&instr("s", "x", None, None)).1, 2);
        assert_eq!(call_of(&instr("s", "x", 2, None)).1, 3);
        assert_eq!(call_of(&instr("s", "x", None, 3)).1, 4);
        // lag: the offset defaults to 1 and is always sent.
        assert_eq!(call_of(&lag("a", None, None)).1, 2);
        // rand: a seed is drawn when none is given.
        assert_eq!(call_of(&rand(None)).1, 1);
    }

    #[test]
    fn every_table_function_exists() {
        let names = pyspark_function_names();
        assert_eq!(
            names.len(),
            547,
            "PySpark 4.3 has 547 functions besides the UDF builders"
        );
    }
}
