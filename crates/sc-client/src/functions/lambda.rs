//! Higher-order functions with Rust closures: `transform`, `filter`, `aggregate`, ...
//!
//! A closure receives [`Column`]s standing for the lambda's variables and returns the body; the
//! call becomes a Spark `LambdaFunction` whose variables are named as PySpark names them
//! (`x_N`, `y_N`, `z_N`, numbered by one process-wide counter), so plans match PySpark's.

use std::sync::atomic::{AtomicU64, Ordering};

use sc_proto::spark::connect as pb;
use sc_proto::spark::connect::expression::{self as ex, ExprType};

use crate::column::{Column, IntoColumn};

/// The next lambda variable number, shared by the whole process as in PySpark.
static NEXT_VARIABLE: AtomicU64 = AtomicU64::new(0);

/// Restarts the numbering of lambda variables at 0.
///
/// Only for reproducing PySpark's plans byte for byte in tests (PySpark's counter starts at 0
/// in a fresh interpreter): names stay unique within one expression only if no other thread
/// builds lambdas while this runs.
#[doc(hidden)]
pub fn reset_lambda_variable_ids() {
    NEXT_VARIABLE.store(0, Ordering::SeqCst);
}

fn variable(prefix: &str) -> ex::UnresolvedNamedLambdaVariable {
    let id = NEXT_VARIABLE.fetch_add(1, Ordering::SeqCst);
    ex::UnresolvedNamedLambdaVariable {
        name_parts: vec![format!("{prefix}_{id}")],
    }
}

fn var_column(v: &ex::UnresolvedNamedLambdaVariable) -> Column {
    Column::from_proto(pb::Expression {
        common: None,
        expr_type: Some(ExprType::UnresolvedNamedLambdaVariable(v.clone())),
    })
}

fn lambda(vars: Vec<ex::UnresolvedNamedLambdaVariable>, body: Column) -> Column {
    Column::from_proto(pb::Expression {
        common: None,
        expr_type: Some(ExprType::LambdaFunction(Box::new(ex::LambdaFunction {
            function: Some(Box::new(body.into_proto())),
            arguments: vars,
        }))),
    })
}

fn lambda1(f: impl FnOnce(Column) -> Column) -> Column {
    let x = variable("x");
    let body = f(var_column(&x));
    lambda(vec![x], body)
}

fn lambda2(f: impl FnOnce(Column, Column) -> Column) -> Column {
    let (x, y) = (variable("x"), variable("y"));
    let body = f(var_column(&x), var_column(&y));
    lambda(vec![x, y], body)
}

fn lambda3(f: impl FnOnce(Column, Column, Column) -> Column) -> Column {
    let (x, y, z) = (variable("x"), variable("y"), variable("z"));
    let body = f(var_column(&x), var_column(&y), var_column(&z));
    lambda(vec![x, y, z], body)
}

/// The array with `f` applied to each element: PySpark's `transform(col, lambda x: ...)`.
pub fn transform(col: impl IntoColumn, f: impl FnOnce(Column) -> Column) -> Column {
    Column::call("transform", [col.into_column(), lambda1(f)])
}

/// The array with `f(element, index)` applied to each element: PySpark's
/// `transform(col, lambda x, i: ...)`.
pub fn transform_with_index(
    col: impl IntoColumn,
    f: impl FnOnce(Column, Column) -> Column,
) -> Column {
    Column::call("transform", [col.into_column(), lambda2(f)])
}

/// The elements for which `f` is true: PySpark's `filter(col, lambda x: ...)`.
pub fn filter(col: impl IntoColumn, f: impl FnOnce(Column) -> Column) -> Column {
    Column::call("filter", [col.into_column(), lambda1(f)])
}

/// The elements for which `f(element, index)` is true: PySpark's `filter(col, lambda x, i: ...)`.
pub fn filter_with_index(col: impl IntoColumn, f: impl FnOnce(Column, Column) -> Column) -> Column {
    Column::call("filter", [col.into_column(), lambda2(f)])
}

/// Whether `f` is true for some element: PySpark's `exists`.
pub fn exists(col: impl IntoColumn, f: impl FnOnce(Column) -> Column) -> Column {
    Column::call("exists", [col.into_column(), lambda1(f)])
}

/// Whether `f` is true for every element: PySpark's `forall`.
pub fn forall(col: impl IntoColumn, f: impl FnOnce(Column) -> Column) -> Column {
    Column::call("forall", [col.into_column(), lambda1(f)])
}

/// Folds the array from `initial_value` with `merge(accumulator, element)`: PySpark's
/// `aggregate(col, initialValue, merge)`.
pub fn aggregate(
    col: impl IntoColumn,
    initial_value: impl IntoColumn,
    merge: impl FnOnce(Column, Column) -> Column,
) -> Column {
    Column::call(
        "aggregate",
        [
            col.into_column(),
            initial_value.into_column(),
            lambda2(merge),
        ],
    )
}

/// Like [`aggregate`], then applies `finish` to the result: PySpark's
/// `aggregate(col, initialValue, merge, finish)`.
pub fn aggregate_with_finish(
    col: impl IntoColumn,
    initial_value: impl IntoColumn,
    merge: impl FnOnce(Column, Column) -> Column,
    finish: impl FnOnce(Column) -> Column,
) -> Column {
    let merge = lambda2(merge);
    let finish = lambda1(finish);
    Column::call(
        "aggregate",
        [
            col.into_column(),
            initial_value.into_column(),
            merge,
            finish,
        ],
    )
}

/// Same as [`aggregate`], as the Spark SQL function `reduce`: PySpark's `reduce`.
pub fn reduce(
    col: impl IntoColumn,
    initial_value: impl IntoColumn,
    merge: impl FnOnce(Column, Column) -> Column,
) -> Column {
    Column::call(
        "reduce",
        [
            col.into_column(),
            initial_value.into_column(),
            lambda2(merge),
        ],
    )
}

/// Same as [`aggregate_with_finish`], as the Spark SQL function `reduce`.
pub fn reduce_with_finish(
    col: impl IntoColumn,
    initial_value: impl IntoColumn,
    merge: impl FnOnce(Column, Column) -> Column,
    finish: impl FnOnce(Column) -> Column,
) -> Column {
    let merge = lambda2(merge);
    let finish = lambda1(finish);
    Column::call(
        "reduce",
        [
            col.into_column(),
            initial_value.into_column(),
            merge,
            finish,
        ],
    )
}

/// Merges two arrays element by element with `f(left, right)`: PySpark's `zip_with`.
pub fn zip_with(
    left: impl IntoColumn,
    right: impl IntoColumn,
    f: impl FnOnce(Column, Column) -> Column,
) -> Column {
    Column::call(
        "zip_with",
        [left.into_column(), right.into_column(), lambda2(f)],
    )
}

/// The entries of a map for which `f(key, value)` is true: PySpark's `map_filter`.
pub fn map_filter(col: impl IntoColumn, f: impl FnOnce(Column, Column) -> Column) -> Column {
    Column::call("map_filter", [col.into_column(), lambda2(f)])
}

/// Merges two maps by key with `f(key, value1, value2)`: PySpark's `map_zip_with`.
pub fn map_zip_with(
    col1: impl IntoColumn,
    col2: impl IntoColumn,
    f: impl FnOnce(Column, Column, Column) -> Column,
) -> Column {
    Column::call(
        "map_zip_with",
        [col1.into_column(), col2.into_column(), lambda3(f)],
    )
}

/// The map with each key replaced by `f(key, value)`: PySpark's `transform_keys`.
pub fn transform_keys(col: impl IntoColumn, f: impl FnOnce(Column, Column) -> Column) -> Column {
    Column::call("transform_keys", [col.into_column(), lambda2(f)])
}

/// The map with each value replaced by `f(key, value)`: PySpark's `transform_values`.
pub fn transform_values(col: impl IntoColumn, f: impl FnOnce(Column, Column) -> Column) -> Column {
    Column::call("transform_values", [col.into_column(), lambda2(f)])
}

/// Sorts an array ascending, nulls last: PySpark's `array_sort(col)`.
pub fn array_sort(col: impl IntoColumn) -> Column {
    Column::call("array_sort", [col.into_column()])
}

/// Sorts an array with `comparator(a, b)`, which returns a negative integer, zero or a positive
/// integer as `a` sorts before, level with or after `b`: PySpark's `array_sort(col, comparator)`.
pub fn array_sort_by(
    col: impl IntoColumn,
    comparator: impl FnOnce(Column, Column) -> Column,
) -> Column {
    Column::call("array_sort", [col.into_column(), lambda2(comparator)])
}
