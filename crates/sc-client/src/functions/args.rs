//! Argument kinds of the Spark SQL functions, and the assembly of a call from its arguments.
//!
//! PySpark's parameters come in a few kinds; each has a trait here so a Rust call reads like
//! the Python one:
//!
//! | PySpark                       | Rust                                   | a string is      |
//! |-------------------------------|----------------------------------------|------------------|
//! | `ColumnOrName`                | [`IntoColumn`]                         | a column name    |
//! | `Column` or a literal, `Any`  | [`IntoExpr`]                           | a literal        |
//! | `ColumnOrName` or a number    | [`IntoColumnOrLiteral`]                | a column name    |
//! | optional `ColumnOrName`       | [`IntoOptionalColumn`] (or `None`)     | a column name    |
//! | optional `Column` or literal  | [`IntoOptionalExpr`] (or `None`)       | a literal        |
//! | optional name or number       | [`IntoOptionalColumnOrLiteral`]        | a column name    |
//! | optional `int`, `str`, ...    | `impl Into<Option<i64>>`, ...          | a literal        |

use crate::column::{Column, Date, Decimal, IntoColumn, IntoExpr, Timestamp, TimestampNtz};

use super::lit;

/// A value that is a column when it names one (a string or a [`Column`]) and a literal when it
/// is a number or a boolean: PySpark's `Union[ColumnOrName, int]` and the like.
pub trait IntoColumnOrLiteral {
    /// Converts to a column: names become references, numbers and booleans literals.
    fn into_column_or_literal(self) -> Column;
}

/// An optional [`IntoColumn`]: a column, a column name, or `None` (PySpark's
/// `Optional[ColumnOrName]`).
pub trait IntoOptionalColumn {
    /// The column, if one is given.
    fn into_optional_column(self) -> Option<Column>;
}

/// An optional [`IntoExpr`]: a column, a literal value, or `None` (PySpark's
/// `Optional[Union[Column, int]]` and the like).
pub trait IntoOptionalExpr {
    /// The expression, if one is given.
    fn into_optional_expr(self) -> Option<Column>;
}

/// An optional [`IntoColumnOrLiteral`], or `None`.
pub trait IntoOptionalColumnOrLiteral {
    /// The column, if one is given.
    fn into_optional_column_or_literal(self) -> Option<Column>;
}

macro_rules! names {
    ($($t:ty),*) => {$(
        impl IntoColumnOrLiteral for $t {
            fn into_column_or_literal(self) -> Column { self.into_column() }
        }
        impl IntoOptionalColumn for $t {
            fn into_optional_column(self) -> Option<Column> { Some(self.into_column()) }
        }
        impl IntoOptionalColumnOrLiteral for $t {
            fn into_optional_column_or_literal(self) -> Option<Column> { Some(self.into_column()) }
        }
    )*};
}
names!(Column, &Column, &str, String, &String);

macro_rules! literals {
    ($($t:ty),*) => {$(
        impl IntoColumnOrLiteral for $t {
            fn into_column_or_literal(self) -> Column { self.into_expr() }
        }
        impl IntoOptionalColumnOrLiteral for $t {
            fn into_optional_column_or_literal(self) -> Option<Column> { Some(self.into_expr()) }
        }
    )*};
}
literals!(
    bool,
    i8,
    i16,
    i32,
    i64,
    u8,
    u16,
    u32,
    f32,
    f64,
    Decimal,
    Date,
    Timestamp,
    TimestampNtz
);

macro_rules! exprs {
    ($($t:ty),*) => {$(
        impl IntoOptionalExpr for $t {
            fn into_optional_expr(self) -> Option<Column> { Some(self.into_expr()) }
        }
    )*};
}
exprs!(
    Column,
    &Column,
    bool,
    i8,
    i16,
    i32,
    i64,
    u8,
    u16,
    u32,
    f32,
    f64,
    &str,
    String,
    &String,
    Vec<u8>,
    &[u8],
    bytes::Bytes,
    Decimal,
    Date,
    Timestamp,
    TimestampNtz
);

/// `None`: the argument is left to PySpark's default.
impl IntoOptionalColumn for Option<Column> {
    fn into_optional_column(self) -> Option<Column> {
        self
    }
}
/// `None`: the argument is left to PySpark's default.
impl IntoOptionalExpr for Option<Column> {
    fn into_optional_expr(self) -> Option<Column> {
        self
    }
}
/// `None`: the argument is left to PySpark's default.
impl IntoOptionalColumnOrLiteral for Option<Column> {
    fn into_optional_column_or_literal(self) -> Option<Column> {
        self
    }
}

/// An integer literal typed as PySpark types a Python `int`: `int` when it fits, else `bigint`.
pub(crate) fn int_lit(v: i64) -> Column {
    match i32::try_from(v) {
        Ok(small) => lit(small),
        Err(_) => lit(v),
    }
}

/// A fresh random seed, as PySpark draws one when a seed is not given: an integer in
/// `0..=i64::MAX`, typed like a Python `int`.
pub(crate) fn random_seed() -> Column {
    let (high, _) = uuid::Uuid::new_v4().as_u64_pair();
    int_lit(i64::try_from(high >> 1).unwrap_or(i64::MAX))
}

/// What stands in a call for an optional argument that is not given.
#[allow(clippy::large_enum_variant)] // built once per call and consumed at once
pub(crate) enum Fill {
    /// Nothing: the argument is left out.
    Drop,
    /// A constant (PySpark's default).
    Const(Column),
    /// A random seed drawn now.
    RandomSeed,
}

/// One argument position of a call.
#[allow(clippy::large_enum_variant)] // built once per call and consumed at once
pub(crate) enum Slot {
    /// A given argument.
    One(Column),
    /// The arguments of a variadic parameter.
    Many(Vec<Column>),
    /// An optional argument: `trailing` applies when no later argument is given, `middle`
    /// otherwise (PySpark fills a skipped argument with its default to keep later ones in
    /// place, and leaves out trailing ones).
    Optional {
        value: Option<Column>,
        trailing: Fill,
        middle: Fill,
    },
}

/// Builds the call of the Spark SQL function `name` from its argument slots.
pub(crate) fn invoke(name: &str, distinct: bool, slots: Vec<Slot>) -> Column {
    let mut args = Vec::with_capacity(slots.len());
    let mut tail = true;
    for slot in slots.into_iter().rev() {
        match slot {
            Slot::One(c) => {
                args.push(c);
                tail = false;
            }
            Slot::Many(cs) => {
                args.extend(cs.into_iter().rev());
                tail = false;
            }
            Slot::Optional { value: Some(c), .. } => {
                args.push(c);
                tail = false;
            }
            Slot::Optional {
                value: None,
                trailing,
                middle,
            } => match if tail { trailing } else { middle } {
                Fill::Drop => {}
                Fill::Const(c) => args.push(c),
                Fill::RandomSeed => args.push(random_seed()),
            },
        }
    }
    args.reverse();
    Column::call_distinct(name, args, distinct)
}
