//! Column expressions: references, literals, operators, casts, sort orders and windows.
//!
//! A [`Column`] is an unresolved Spark expression; the server resolves it against the
//! DataFrame it is used in. Expressions are built exactly as PySpark builds them, so the same
//! code produces the same plan.

use std::ops;

use sc_proto::spark::connect as pb;
use sc_proto::spark::connect::expression::{self as ex, ExprType};

use crate::window::WindowSpec;

/// A column expression.
#[derive(Debug, Clone, PartialEq)]
pub struct Column {
    pub(crate) expr: pb::Expression,
}

fn expr(e: ExprType) -> pb::Expression {
    pb::Expression {
        common: None,
        expr_type: Some(e),
    }
}

impl Column {
    /// Wraps a raw protobuf expression.
    pub fn from_proto(expr: pb::Expression) -> Self {
        Self { expr }
    }

    /// The protobuf expression this column stands for.
    pub fn to_proto(&self) -> pb::Expression {
        self.expr.clone()
    }

    /// Consumes the column and returns its protobuf expression.
    pub fn into_proto(self) -> pb::Expression {
        self.expr
    }

    /// A reference to a column by name (`"a"`, `"t.a"`, `` "`a.b`" ``); `"*"` and `"t.*"` are
    /// stars.
    pub fn name(name: &str) -> Self {
        if name == "*" {
            return Self::from_proto(expr(ExprType::UnresolvedStar(ex::UnresolvedStar {
                unparsed_target: None,
                plan_id: None,
            })));
        }
        if let Some(target) = name.strip_suffix(".*") {
            return Self::from_proto(expr(ExprType::UnresolvedStar(ex::UnresolvedStar {
                unparsed_target: Some(format!("{target}.*")),
                plan_id: None,
            })));
        }
        Self::attribute(name, None)
    }

    pub(crate) fn attribute(name: &str, plan_id: Option<i64>) -> Self {
        Self::from_proto(expr(ExprType::UnresolvedAttribute(
            ex::UnresolvedAttribute {
                unparsed_identifier: name.to_string(),
                plan_id,
                is_metadata_column: Some(false),
            },
        )))
    }

    /// A call of the Spark SQL function `name` on `args`.
    pub fn call(name: &str, args: impl IntoIterator<Item = Column>) -> Self {
        Self::call_distinct(name, args, false)
    }

    pub(crate) fn call_distinct(
        name: &str,
        args: impl IntoIterator<Item = Column>,
        is_distinct: bool,
    ) -> Self {
        Self::from_proto(expr(ExprType::UnresolvedFunction(ex::UnresolvedFunction {
            function_name: name.to_string(),
            arguments: args.into_iter().map(|c| c.expr).collect(),
            is_distinct,
            is_user_defined_function: false,
            is_internal: None,
        })))
    }

    /// A call of a function by name, resolved by the server among built-in and registered
    /// functions (`CallFunction`).
    pub fn call_function(name: &str, args: impl IntoIterator<Item = Column>) -> Self {
        Self::from_proto(expr(ExprType::CallFunction(pb::CallFunction {
            function_name: name.to_string(),
            arguments: args.into_iter().map(|c| c.expr).collect(),
        })))
    }

    /// A SQL expression string, parsed by the server (`"a + 1 as b"`).
    pub fn sql_expr(sql: &str) -> Self {
        Self::from_proto(expr(ExprType::ExpressionString(ex::ExpressionString {
            expression: sql.to_string(),
        })))
    }

    fn bin(self, name: &str, other: impl IntoExpr) -> Self {
        Column::call(name, [self, other.into_expr()])
    }

    // === comparison ===

    /// `self = other`.
    pub fn eq(self, other: impl IntoExpr) -> Self {
        self.bin("==", other)
    }
    /// `self != other` (built as `NOT (self = other)`, as PySpark does).
    pub fn ne(self, other: impl IntoExpr) -> Self {
        !self.bin("==", other)
    }
    /// `self > other`.
    pub fn gt(self, other: impl IntoExpr) -> Self {
        self.bin(">", other)
    }
    /// `self >= other`.
    pub fn ge(self, other: impl IntoExpr) -> Self {
        self.bin(">=", other)
    }
    /// `self < other`.
    pub fn lt(self, other: impl IntoExpr) -> Self {
        self.bin("<", other)
    }
    /// `self <= other`.
    pub fn le(self, other: impl IntoExpr) -> Self {
        self.bin("<=", other)
    }
    /// Null-safe equality, `self <=> other`.
    pub fn eq_null_safe(self, other: impl IntoExpr) -> Self {
        self.bin("<=>", other)
    }
    /// `lower <= self AND self <= upper`.
    pub fn between(self, lower: impl IntoExpr, upper: impl IntoExpr) -> Self {
        self.clone().ge(lower).and(self.le(upper))
    }
    /// `self IN (values...)`.
    pub fn isin<T: IntoExpr>(self, values: impl IntoIterator<Item = T>) -> Self {
        let mut args = vec![self];
        args.extend(values.into_iter().map(IntoExpr::into_expr));
        Column::call("in", args)
    }

    // === boolean and bitwise ===

    /// Logical `AND`.
    pub fn and(self, other: impl IntoExpr) -> Self {
        self.bin("and", other)
    }
    /// Logical `OR`.
    pub fn or(self, other: impl IntoExpr) -> Self {
        self.bin("or", other)
    }
    /// Bitwise `|`.
    pub fn bitwise_or(self, other: impl IntoExpr) -> Self {
        self.bin("|", other)
    }
    /// Bitwise `&`.
    pub fn bitwise_and(self, other: impl IntoExpr) -> Self {
        self.bin("&", other)
    }
    /// Bitwise `^`.
    pub fn bitwise_xor(self, other: impl IntoExpr) -> Self {
        self.bin("^", other)
    }
    /// `self` raised to `other`.
    pub fn pow(self, other: impl IntoExpr) -> Self {
        self.bin("power", other)
    }

    // === null and NaN tests ===

    /// `self IS NULL`.
    pub fn is_null(self) -> Self {
        Column::call("isNull", [self])
    }
    /// `self IS NOT NULL`.
    pub fn is_not_null(self) -> Self {
        Column::call("isNotNull", [self])
    }
    /// Whether `self` is NaN.
    pub fn is_nan(self) -> Self {
        Column::call("isNaN", [self])
    }

    // === strings ===

    /// SQL `LIKE` with `pattern`.
    pub fn like(self, pattern: &str) -> Self {
        self.bin("like", pattern)
    }
    /// Case-insensitive `ILIKE` with `pattern`.
    pub fn ilike(self, pattern: &str) -> Self {
        self.bin("ilike", pattern)
    }
    /// Regular-expression match (`RLIKE`).
    pub fn rlike(self, pattern: &str) -> Self {
        self.bin("rlike", pattern)
    }
    /// Whether the string contains `other`.
    pub fn contains(self, other: impl IntoExpr) -> Self {
        self.bin("contains", other)
    }
    /// Whether the string starts with `other`.
    pub fn starts_with(self, other: impl IntoExpr) -> Self {
        self.bin("startsWith", other)
    }
    /// Whether the string ends with `other`.
    pub fn ends_with(self, other: impl IntoExpr) -> Self {
        self.bin("endsWith", other)
    }
    /// The substring starting at `pos` (1-based) of length `len`.
    pub fn substr(self, pos: impl IntoExpr, len: impl IntoExpr) -> Self {
        Column::call("substr", [self, pos.into_expr(), len.into_expr()])
    }

    // === structure ===

    /// `self[key]`: an array element, a map value or a struct field.
    pub fn get_item(self, key: impl IntoExpr) -> Self {
        Self::from_proto(expr(ExprType::UnresolvedExtractValue(Box::new(
            ex::UnresolvedExtractValue {
                child: Some(Box::new(self.expr)),
                extraction: Some(Box::new(key.into_expr().expr)),
            },
        ))))
    }
    /// The struct field `name`.
    pub fn get_field(self, name: &str) -> Self {
        self.get_item(name)
    }
    /// Adds or replaces the struct field `name` with `value`.
    pub fn with_field(self, name: &str, value: Column) -> Self {
        Self::from_proto(expr(ExprType::UpdateFields(Box::new(ex::UpdateFields {
            struct_expression: Some(Box::new(self.expr)),
            field_name: name.to_string(),
            value_expression: Some(Box::new(value.expr)),
        }))))
    }
    /// Drops the struct fields `names`.
    pub fn drop_fields<'a>(self, names: impl IntoIterator<Item = &'a str>) -> Self {
        names.into_iter().fold(self, |acc, n| {
            Self::from_proto(expr(ExprType::UpdateFields(Box::new(ex::UpdateFields {
                struct_expression: Some(Box::new(acc.expr)),
                field_name: n.to_string(),
                value_expression: None,
            }))))
        })
    }

    // === naming and types ===

    /// Renames the column.
    pub fn alias(self, name: &str) -> Self {
        Self::from_proto(expr(ExprType::Alias(Box::new(ex::Alias {
            expr: Some(Box::new(self.expr)),
            name: vec![name.to_string()],
            metadata: None,
        }))))
    }
    /// Same as [`alias`](Self::alias).
    pub fn as_(self, name: &str) -> Self {
        self.alias(name)
    }
    /// Names the parts of a multi-column expression (for example `explode` of a map).
    pub fn alias_multi<'a>(self, names: impl IntoIterator<Item = &'a str>) -> Self {
        Self::from_proto(expr(ExprType::Alias(Box::new(ex::Alias {
            expr: Some(Box::new(self.expr)),
            name: names.into_iter().map(str::to_string).collect(),
            metadata: None,
        }))))
    }
    /// Casts to a type given as a Spark type string (`"int"`, `"decimal(10,2)"`,
    /// `"array<string>"`).
    pub fn cast(self, type_str: &str) -> Self {
        self.cast_mode(type_str, None)
    }
    /// Casts like [`cast`](Self::cast) but yields null instead of failing.
    pub fn try_cast(self, type_str: &str) -> Self {
        self.cast_mode(type_str, Some(ex::cast::EvalMode::Try))
    }
    /// Casts to a protobuf data type.
    pub fn cast_to(self, data_type: pb::DataType) -> Self {
        Self::from_proto(expr(ExprType::Cast(Box::new(ex::Cast {
            expr: Some(Box::new(self.expr)),
            eval_mode: 0,
            cast_to_type: Some(ex::cast::CastToType::Type(data_type)),
        }))))
    }
    fn cast_mode(self, type_str: &str, mode: Option<ex::cast::EvalMode>) -> Self {
        Self::from_proto(expr(ExprType::Cast(Box::new(ex::Cast {
            expr: Some(Box::new(self.expr)),
            eval_mode: mode.map(|m| m as i32).unwrap_or(0),
            cast_to_type: Some(ex::cast::CastToType::TypeStr(type_str.to_string())),
        }))))
    }

    // === conditionals ===

    /// Adds a `WHEN condition THEN value` branch to a column made by
    /// [`functions::when`](crate::functions::when).
    ///
    /// On any other column this starts a new `CASE` whose first branch is this one (so it never
    /// panics); the server then rejects nothing, but the result is probably not what you meant.
    pub fn when(self, condition: Column, value: impl IntoExpr) -> Self {
        match self.expr.expr_type {
            Some(ExprType::UnresolvedFunction(mut f))
                if f.function_name == "when" && f.arguments.len() % 2 == 0 =>
            {
                f.arguments.push(condition.expr);
                f.arguments.push(value.into_expr().expr);
                Self::from_proto(expr(ExprType::UnresolvedFunction(f)))
            }
            _ => crate::functions::when(condition, value),
        }
    }
    /// Adds the `ELSE value` of a `CASE` made by [`functions::when`](crate::functions::when).
    pub fn otherwise(self, value: impl IntoExpr) -> Self {
        match self.expr.expr_type {
            Some(ExprType::UnresolvedFunction(mut f))
                if f.function_name == "when" && f.arguments.len() % 2 == 0 =>
            {
                f.arguments.push(value.into_expr().expr);
                Self::from_proto(expr(ExprType::UnresolvedFunction(f)))
            }
            other => Self::from_proto(pb::Expression {
                common: None,
                expr_type: other,
            }),
        }
    }

    // === sort orders ===

    fn sort(self, ascending: bool, nulls_first: bool) -> Self {
        use ex::sort_order::{NullOrdering, SortDirection};
        Self::from_proto(expr(ExprType::SortOrder(Box::new(ex::SortOrder {
            child: Some(Box::new(self.expr)),
            direction: if ascending {
                SortDirection::Ascending as i32
            } else {
                SortDirection::Descending as i32
            },
            null_ordering: if nulls_first {
                NullOrdering::SortNullsFirst as i32
            } else {
                NullOrdering::SortNullsLast as i32
            },
        }))))
    }
    /// Ascending, nulls first.
    pub fn asc(self) -> Self {
        self.sort(true, true)
    }
    /// Ascending, nulls first.
    pub fn asc_nulls_first(self) -> Self {
        self.sort(true, true)
    }
    /// Ascending, nulls last.
    pub fn asc_nulls_last(self) -> Self {
        self.sort(true, false)
    }
    /// Descending, nulls last.
    pub fn desc(self) -> Self {
        self.sort(false, false)
    }
    /// Descending, nulls first.
    pub fn desc_nulls_first(self) -> Self {
        self.sort(false, true)
    }
    /// Descending, nulls last.
    pub fn desc_nulls_last(self) -> Self {
        self.sort(false, false)
    }

    pub(crate) fn into_sort_order(self) -> ex::SortOrder {
        match self.expr.expr_type {
            Some(ExprType::SortOrder(s)) => *s,
            other => match Column::from_proto(pb::Expression {
                common: self.expr.common,
                expr_type: other,
            })
            .asc()
            .expr
            .expr_type
            {
                Some(ExprType::SortOrder(s)) => *s,
                _ => ex::SortOrder::default(),
            },
        }
    }

    // === windows ===

    /// Evaluates this (window or aggregate) function over `window`, given by value or by
    /// reference.
    pub fn over(self, window: impl std::borrow::Borrow<WindowSpec>) -> Self {
        window.borrow().apply(self)
    }
}

// === IntoColumn ===

/// Something that names or is a column: a [`Column`] or a column name (`&str`, `String`).
///
/// Functions that take columns accept these, as PySpark's `ColumnOrName`.
pub trait IntoColumn {
    /// Converts to a column; strings become column references.
    fn into_column(self) -> Column;
}

impl IntoColumn for Column {
    fn into_column(self) -> Column {
        self
    }
}
impl IntoColumn for &Column {
    fn into_column(self) -> Column {
        self.clone()
    }
}
impl IntoColumn for &str {
    fn into_column(self) -> Column {
        Column::name(self)
    }
}
impl IntoColumn for String {
    fn into_column(self) -> Column {
        Column::name(&self)
    }
}
impl IntoColumn for &String {
    fn into_column(self) -> Column {
        Column::name(self)
    }
}

/// A column name converts to a column reference, so a list can mix names and columns:
/// `[col("a"), "b".into()]` (or use [`cols!`](crate::cols)).
impl From<&str> for Column {
    fn from(name: &str) -> Self {
        Column::name(name)
    }
}
impl From<String> for Column {
    fn from(name: String) -> Self {
        Column::name(&name)
    }
}

/// A list of columns from a mix of column names and [`Column`]s, for `select`, `group_by`,
/// `order_by` and every other method that takes columns: PySpark's `df.select("a", col("b"))`
/// is `df.select(cols!["a", col("b")])`.
///
/// ```
/// use sc_client::{cols, functions::{col, upper}};
/// let list = cols!["id", col("name"), upper("name").alias("shout")];
/// assert_eq!(list.len(), 3);
/// ```
#[macro_export]
macro_rules! cols {
    ($($c:expr),* $(,)?) => {
        ::std::vec![$($crate::IntoColumn::into_column($c)),*] as ::std::vec::Vec<$crate::Column>
    };
}

// === IntoExpr and literals ===

/// Something usable as an operand: a [`Column`] or a literal value (strings are literals here).
pub trait IntoExpr {
    /// Converts to a column; plain values become literals.
    fn into_expr(self) -> Column;
}

impl IntoExpr for Column {
    fn into_expr(self) -> Column {
        self
    }
}
impl IntoExpr for &Column {
    fn into_expr(self) -> Column {
        self.clone()
    }
}

fn literal(l: ex::literal::LiteralType) -> Column {
    Column::from_proto(expr(ExprType::Literal(ex::Literal {
        data_type: None,
        literal_type: Some(l),
    })))
}

macro_rules! lit_impl {
    ($($t:ty => |$v:ident| $e:expr),* $(,)?) => {$(
        impl IntoExpr for $t {
            fn into_expr(self) -> Column {
                let $v = self;
                literal($e)
            }
        }
    )*};
}

use ex::literal::LiteralType as L;
lit_impl! {
    bool => |v| L::Boolean(v),
    i8 => |v| L::Byte(i32::from(v)),
    i16 => |v| L::Short(i32::from(v)),
    i32 => |v| L::Integer(v),
    i64 => |v| L::Long(v),
    u8 => |v| L::Short(i32::from(v)),
    u16 => |v| L::Integer(i32::from(v)),
    u32 => |v| L::Long(i64::from(v)),
    f32 => |v| L::Float(v),
    f64 => |v| L::Double(v),
    &str => |v| L::String(v.to_string()),
    String => |v| L::String(v),
    &String => |v| L::String(v.clone()),
    Vec<u8> => |v| L::Binary(v.into()),
    &[u8] => |v| L::Binary(bytes::Bytes::copy_from_slice(v)),
    bytes::Bytes => |v| L::Binary(v),
}

impl<T: IntoExpr> IntoExpr for Option<T> {
    fn into_expr(self) -> Column {
        match self {
            Some(v) => v.into_expr(),
            None => null_literal(),
        }
    }
}

/// A typed SQL `NULL` of type `NullType`, as PySpark's `lit(None)`.
pub(crate) fn null_literal() -> Column {
    literal(L::Null(pb::DataType {
        kind: Some(pb::data_type::Kind::Null(pb::data_type::Null::default())),
    }))
}

/// A decimal literal, given as its exact string (`"12.50"`), with precision and scale.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decimal {
    /// The value, for example `"12.50"`.
    pub value: String,
    /// Total number of digits.
    pub precision: i32,
    /// Digits after the point.
    pub scale: i32,
}

impl IntoExpr for Decimal {
    fn into_expr(self) -> Column {
        literal(L::Decimal(ex::literal::Decimal {
            value: self.value,
            precision: Some(self.precision),
            scale: Some(self.scale),
        }))
    }
}

/// A date literal: days since 1970-01-01.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Date(pub i32);
impl IntoExpr for Date {
    fn into_expr(self) -> Column {
        literal(L::Date(self.0))
    }
}

/// A timestamp literal (with the session time zone): microseconds since the epoch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timestamp(pub i64);
impl IntoExpr for Timestamp {
    fn into_expr(self) -> Column {
        literal(L::Timestamp(self.0))
    }
}

/// A timestamp literal without time zone: microseconds since the epoch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimestampNtz(pub i64);
impl IntoExpr for TimestampNtz {
    fn into_expr(self) -> Column {
        literal(L::TimestampNtz(self.0))
    }
}

// === operators ===

macro_rules! binop {
    ($tr:ident, $m:ident, $name:literal) => {
        impl<T: IntoExpr> ops::$tr<T> for Column {
            type Output = Column;
            fn $m(self, rhs: T) -> Column {
                self.bin($name, rhs)
            }
        }
        impl<T: IntoExpr> ops::$tr<T> for &Column {
            type Output = Column;
            fn $m(self, rhs: T) -> Column {
                self.clone().bin($name, rhs)
            }
        }
    };
}
binop!(Add, add, "+");
binop!(Sub, sub, "-");
binop!(Mul, mul, "*");
binop!(Div, div, "/");
binop!(Rem, rem, "%");
binop!(BitAnd, bitand, "and");
binop!(BitOr, bitor, "or");
binop!(BitXor, bitxor, "^");

macro_rules! rev_binop {
    ($($t:ty),*) => {$(
        impl ops::Add<Column> for $t { type Output = Column; fn add(self, rhs: Column) -> Column { Column::call("+", [self.into_expr(), rhs]) } }
        impl ops::Sub<Column> for $t { type Output = Column; fn sub(self, rhs: Column) -> Column { Column::call("-", [self.into_expr(), rhs]) } }
        impl ops::Mul<Column> for $t { type Output = Column; fn mul(self, rhs: Column) -> Column { Column::call("*", [self.into_expr(), rhs]) } }
        impl ops::Div<Column> for $t { type Output = Column; fn div(self, rhs: Column) -> Column { Column::call("/", [self.into_expr(), rhs]) } }
        impl ops::Rem<Column> for $t { type Output = Column; fn rem(self, rhs: Column) -> Column { Column::call("%", [self.into_expr(), rhs]) } }
    )*};
}
rev_binop!(i32, i64, f32, f64);

impl ops::Neg for Column {
    type Output = Column;
    fn neg(self) -> Column {
        Column::call("negative", [self])
    }
}
impl ops::Not for Column {
    type Output = Column;
    fn not(self) -> Column {
        Column::call("not", [self])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn operators_build_functions() {
        let c = (Column::name("a") + 1).gt(Column::name("b") * 2.5);
        let Some(ExprType::UnresolvedFunction(f)) = c.expr.expr_type else {
            panic!("not a function");
        };
        assert_eq!(f.function_name, ">");
        assert_eq!(f.arguments.len(), 2);
    }

    #[test]
    fn when_otherwise_chain() {
        let c = crate::functions::when(Column::name("a").gt(1), "x")
            .when(Column::name("a").gt(0), "y")
            .otherwise("z");
        let Some(ExprType::UnresolvedFunction(f)) = c.expr.expr_type else {
            panic!("not a function");
        };
        assert_eq!(f.function_name, "when");
        assert_eq!(f.arguments.len(), 5);
    }
}
