//! [`DataFrame`]: lazy transformations that build a plan, and async actions that run it.

use std::collections::VecDeque;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use arrow_array::{Array, RecordBatch};
use arrow_schema::SchemaRef;
use futures_core::Stream;
use futures_util::StreamExt;
use sc_proto::spark::connect as pb;
use sc_proto::spark::connect::relation::RelType;

use crate::client::ExecuteStream;
use crate::column::{Column, IntoColumn, IntoExpr};
use crate::error::{Error, Result};
use crate::functions::lit;
use crate::session::SparkSession;
use crate::writer::DataFrameWriter;

/// A lazily evaluated, distributed table: a plan plus the session that runs it.
///
/// Transformations return new DataFrames without talking to the server; actions (`collect`,
/// `count`, `show`, ...) are `async` and run the plan.
#[derive(Clone)]
pub struct DataFrame {
    pub(crate) session: SparkSession,
    pub(crate) plan: pb::Relation,
}

impl std::fmt::Debug for DataFrame {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DataFrame")
            .field("plan_id", &self.plan_id())
            .finish_non_exhaustive()
    }
}

/// How two DataFrames are joined.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum JoinType {
    /// Rows with a match on both sides.
    #[default]
    Inner,
    /// All rows of both sides.
    FullOuter,
    /// All left rows.
    LeftOuter,
    /// All right rows.
    RightOuter,
    /// Left rows without a match.
    LeftAnti,
    /// Left rows with a match, left columns only.
    LeftSemi,
    /// The cartesian product.
    Cross,
}

impl JoinType {
    fn to_proto(self) -> pb::join::JoinType {
        use pb::join::JoinType as J;
        match self {
            JoinType::Inner => J::Inner,
            JoinType::FullOuter => J::FullOuter,
            JoinType::LeftOuter => J::LeftOuter,
            JoinType::RightOuter => J::RightOuter,
            JoinType::LeftAnti => J::LeftAnti,
            JoinType::LeftSemi => J::LeftSemi,
            JoinType::Cross => J::Cross,
        }
    }
}

impl std::str::FromStr for JoinType {
    type Err = Error;
    /// Parses the names PySpark accepts (`inner`, `outer`, `full`, `left_outer`, `semi`, ...).
    fn from_str(s: &str) -> Result<Self> {
        Ok(match s.to_ascii_lowercase().replace('_', "").as_str() {
            "inner" => JoinType::Inner,
            "outer" | "full" | "fullouter" => JoinType::FullOuter,
            "left" | "leftouter" => JoinType::LeftOuter,
            "right" | "rightouter" => JoinType::RightOuter,
            "leftanti" | "anti" => JoinType::LeftAnti,
            "leftsemi" | "semi" => JoinType::LeftSemi,
            "cross" => JoinType::Cross,
            _ => {
                return Err(Error::InvalidArgument(format!(
                    "unsupported join type '{s}'"
                )));
            }
        })
    }
}

/// What two DataFrames are joined on.
#[derive(Debug, Clone, PartialEq)]
pub enum JoinOn {
    /// No condition (a cross join unless the type says otherwise).
    Nothing,
    /// A boolean expression over both sides.
    Expr(Box<Column>),
    /// Columns of the same name on both sides, kept once in the result.
    Using(Vec<String>),
}

impl From<Column> for JoinOn {
    fn from(c: Column) -> Self {
        JoinOn::Expr(Box::new(c))
    }
}
impl From<&str> for JoinOn {
    fn from(c: &str) -> Self {
        JoinOn::Using(vec![c.to_string()])
    }
}
impl<const N: usize> From<[&str; N]> for JoinOn {
    fn from(c: [&str; N]) -> Self {
        JoinOn::Using(c.iter().map(|s| s.to_string()).collect())
    }
}
impl From<Vec<String>> for JoinOn {
    fn from(c: Vec<String>) -> Self {
        JoinOn::Using(c)
    }
}

/// A filter condition: a boolean [`Column`] or a SQL string (`"a > 1"`).
pub trait IntoCondition {
    /// Converts into a boolean column.
    fn into_condition(self) -> Column;
}
impl IntoCondition for Column {
    fn into_condition(self) -> Column {
        self
    }
}
impl IntoCondition for &str {
    fn into_condition(self) -> Column {
        Column::sql_expr(self)
    }
}
impl IntoCondition for String {
    fn into_condition(self) -> Column {
        Column::sql_expr(&self)
    }
}

/// How a cached DataFrame is stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StorageLevel {
    /// Spill to disk.
    pub use_disk: bool,
    /// Keep in memory.
    pub use_memory: bool,
    /// Keep off the JVM heap.
    pub use_off_heap: bool,
    /// Keep as objects rather than serialised.
    pub deserialized: bool,
    /// Number of copies.
    pub replication: i32,
}

impl StorageLevel {
    /// Memory, spilling to disk, as objects: the default of `cache()`.
    pub const MEMORY_AND_DISK_DESER: StorageLevel = StorageLevel {
        use_disk: true,
        use_memory: true,
        use_off_heap: false,
        deserialized: true,
        replication: 1,
    };
    /// Memory only, as objects.
    pub const MEMORY_ONLY: StorageLevel = StorageLevel {
        use_disk: false,
        use_memory: true,
        use_off_heap: false,
        deserialized: false,
        replication: 1,
    };
    /// Disk only.
    pub const DISK_ONLY: StorageLevel = StorageLevel {
        use_disk: true,
        use_memory: false,
        use_off_heap: false,
        deserialized: false,
        replication: 1,
    };
    pub(crate) fn to_proto(self) -> pb::StorageLevel {
        pb::StorageLevel {
            use_disk: self.use_disk,
            use_memory: self.use_memory,
            use_off_heap: self.use_off_heap,
            deserialized: self.deserialized,
            replication: self.replication,
        }
    }
}

/// The level of detail of [`DataFrame::explain`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ExplainMode {
    /// The physical plan.
    #[default]
    Simple,
    /// Logical and physical plans.
    Extended,
    /// Generated code.
    Codegen,
    /// Logical plan with statistics.
    Cost,
    /// Physical plan outline and node details.
    Formatted,
}

fn boxed(rel: &pb::Relation) -> Option<Box<pb::Relation>> {
    Some(Box::new(rel.clone()))
}

// === impl DataFrame: construction ===

impl DataFrame {
    pub(crate) fn new(session: SparkSession, plan: pb::Relation) -> Self {
        Self { session, plan }
    }

    /// A DataFrame for a raw protobuf relation.
    pub fn from_relation(session: &SparkSession, plan: pb::Relation) -> Self {
        Self::new(session.clone(), plan)
    }

    /// The protobuf relation this DataFrame runs.
    pub fn relation(&self) -> &pb::Relation {
        &self.plan
    }

    /// The plan sent to the server to run this DataFrame.
    pub fn to_plan(&self) -> pb::Plan {
        pb::Plan {
            op_type: Some(pb::plan::OpType::Root(self.plan.clone())),
        }
    }

    /// The session of this DataFrame.
    pub fn session(&self) -> &SparkSession {
        &self.session
    }

    fn plan_id(&self) -> Option<i64> {
        self.plan.common.as_ref().and_then(|c| c.plan_id)
    }

    /// A DataFrame of a new plan node over this one (in `WithRelations` when its expressions
    /// use subqueries).
    pub(crate) fn wrap(&self, rel: RelType) -> DataFrame {
        let rel = self.session.relation(rel);
        DataFrame::new(
            self.session.clone(),
            self.session.with_subquery_references(rel),
        )
    }

    /// A column of this DataFrame, bound to it (so it stays unambiguous in a self-join).
    pub fn col(&self, name: &str) -> Column {
        if name == "*" {
            return Column::from_proto(pb::Expression {
                common: None,
                expr_type: Some(pb::expression::ExprType::UnresolvedStar(
                    pb::expression::UnresolvedStar {
                        unparsed_target: None,
                        plan_id: self.plan_id(),
                    },
                )),
            });
        }
        Column::attribute(name, self.plan_id())
    }

    // === transformations ===

    /// Projects columns or expressions.
    pub fn select<C: IntoColumn>(&self, cols: impl IntoIterator<Item = C>) -> DataFrame {
        self.wrap(RelType::Project(Box::new(pb::Project {
            input: boxed(&self.plan),
            expressions: cols.into_iter().map(|c| c.into_column().expr).collect(),
        })))
    }

    /// Projects SQL expressions (`"a * 2 as b"`).
    pub fn select_expr<'a>(&self, exprs: impl IntoIterator<Item = &'a str>) -> DataFrame {
        self.select(exprs.into_iter().map(Column::sql_expr))
    }

    /// Keeps rows where `condition` holds; a string is parsed as SQL.
    pub fn filter(&self, condition: impl IntoCondition) -> DataFrame {
        self.wrap(RelType::Filter(Box::new(pb::Filter {
            input: boxed(&self.plan),
            condition: Some(condition.into_condition().expr),
        })))
    }

    /// Same as [`filter`](Self::filter).
    pub fn where_(&self, condition: impl IntoCondition) -> DataFrame {
        self.filter(condition)
    }

    /// Adds or replaces the column `name`.
    pub fn with_column(&self, name: &str, col: Column) -> DataFrame {
        self.with_columns([(name, col)])
    }

    /// Adds or replaces several columns at once.
    pub fn with_columns<'a>(&self, cols: impl IntoIterator<Item = (&'a str, Column)>) -> DataFrame {
        self.wrap(RelType::WithColumns(Box::new(pb::WithColumns {
            input: boxed(&self.plan),
            aliases: cols
                .into_iter()
                .map(|(n, c)| pb::expression::Alias {
                    expr: Some(Box::new(c.expr)),
                    name: vec![n.to_string()],
                    metadata: None,
                })
                .collect(),
        })))
    }

    /// Renames a column (no-op if it does not exist).
    pub fn with_column_renamed(&self, existing: &str, new: &str) -> DataFrame {
        self.with_columns_renamed([(existing, new)])
    }

    /// Renames several columns.
    pub fn with_columns_renamed<'a>(
        &self,
        renames: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) -> DataFrame {
        self.wrap(RelType::WithColumnsRenamed(Box::new(
            pb::WithColumnsRenamed {
                input: boxed(&self.plan),
                renames: renames
                    .into_iter()
                    .map(|(a, b)| pb::with_columns_renamed::Rename {
                        col_name: a.into(),
                        new_col_name: b.into(),
                    })
                    .collect(),
                ..Default::default()
            },
        )))
    }

    /// Renames every column, in order.
    pub fn to_df<'a>(&self, names: impl IntoIterator<Item = &'a str>) -> DataFrame {
        self.wrap(RelType::ToDf(Box::new(pb::ToDf {
            input: boxed(&self.plan),
            column_names: names.into_iter().map(str::to_string).collect(),
        })))
    }

    /// Drops columns by name.
    pub fn drop<'a>(&self, names: impl IntoIterator<Item = &'a str>) -> DataFrame {
        self.wrap(RelType::Drop(Box::new(pb::Drop {
            input: boxed(&self.plan),
            columns: vec![],
            column_names: names.into_iter().map(str::to_string).collect(),
        })))
    }

    /// Drops columns given as expressions (for example `df.col("a")` after a join).
    pub fn drop_columns(&self, cols: impl IntoIterator<Item = Column>) -> DataFrame {
        self.wrap(RelType::Drop(Box::new(pb::Drop {
            input: boxed(&self.plan),
            columns: cols.into_iter().map(|c| c.expr).collect(),
            column_names: vec![],
        })))
    }

    /// Groups rows by columns for aggregation.
    pub fn group_by<C: IntoColumn>(&self, cols: impl IntoIterator<Item = C>) -> GroupedData {
        GroupedData::new(self.clone(), pb::aggregate::GroupType::Groupby, cols)
    }

    /// Groups by a rollup of the columns (subtotals per prefix and a grand total).
    pub fn rollup<C: IntoColumn>(&self, cols: impl IntoIterator<Item = C>) -> GroupedData {
        GroupedData::new(self.clone(), pb::aggregate::GroupType::Rollup, cols)
    }

    /// Groups by a cube of the columns (every combination).
    pub fn cube<C: IntoColumn>(&self, cols: impl IntoIterator<Item = C>) -> GroupedData {
        GroupedData::new(self.clone(), pb::aggregate::GroupType::Cube, cols)
    }

    /// Aggregates over the whole DataFrame (no grouping).
    pub fn agg(&self, exprs: impl IntoIterator<Item = Column>) -> DataFrame {
        self.group_by(Vec::<Column>::new()).agg(exprs)
    }

    fn sort_impl<C: IntoColumn>(
        &self,
        cols: impl IntoIterator<Item = C>,
        global: bool,
    ) -> DataFrame {
        self.wrap(RelType::Sort(Box::new(pb::Sort {
            input: boxed(&self.plan),
            order: cols
                .into_iter()
                .map(|c| c.into_column().into_sort_order())
                .collect(),
            is_global: Some(global),
        })))
    }

    /// Sorts globally; plain columns sort ascending, use [`Column::desc`] for descending.
    pub fn order_by<C: IntoColumn>(&self, cols: impl IntoIterator<Item = C>) -> DataFrame {
        self.sort_impl(cols, true)
    }

    /// Same as [`order_by`](Self::order_by).
    pub fn sort<C: IntoColumn>(&self, cols: impl IntoIterator<Item = C>) -> DataFrame {
        self.sort_impl(cols, true)
    }

    /// Sorts each partition separately.
    pub fn sort_within_partitions<C: IntoColumn>(
        &self,
        cols: impl IntoIterator<Item = C>,
    ) -> DataFrame {
        self.sort_impl(cols, false)
    }

    /// The first `n` rows.
    pub fn limit(&self, n: i32) -> DataFrame {
        self.wrap(RelType::Limit(Box::new(pb::Limit {
            input: boxed(&self.plan),
            limit: n,
        })))
    }

    /// Skips the first `n` rows.
    pub fn offset(&self, n: i32) -> DataFrame {
        self.wrap(RelType::Offset(Box::new(pb::Offset {
            input: boxed(&self.plan),
            offset: n,
        })))
    }

    /// Distinct rows.
    pub fn distinct(&self) -> DataFrame {
        self.wrap(RelType::Deduplicate(Box::new(pb::Deduplicate {
            input: boxed(&self.plan),
            column_names: vec![],
            all_columns_as_keys: Some(true),
            within_watermark: Some(false),
        })))
    }

    /// Removes rows that repeat the values of `subset` (all columns when empty).
    pub fn drop_duplicates<'a>(&self, subset: impl IntoIterator<Item = &'a str>) -> DataFrame {
        let cols: Vec<String> = subset.into_iter().map(str::to_string).collect();
        if cols.is_empty() {
            return self.distinct();
        }
        self.wrap(RelType::Deduplicate(Box::new(pb::Deduplicate {
            input: boxed(&self.plan),
            column_names: cols,
            all_columns_as_keys: Some(false),
            within_watermark: Some(false),
        })))
    }

    /// Joins with `other` on an expression or `using` columns.
    ///
    /// ```no_run
    /// # async fn run(spark: sc_client::SparkSession) -> sc_client::Result<()> {
    /// use sc_client::{JoinType, functions::col};
    /// let a = spark.range(0, 10);
    /// let b = spark.range(5, 15);
    /// let using = a.join(&b, "id", JoinType::Inner);
    /// let on = a.join(&b, a.col("id").eq(b.col("id")), JoinType::LeftOuter);
    /// # Ok(()) }
    /// ```
    pub fn join(&self, other: &DataFrame, on: impl Into<JoinOn>, how: JoinType) -> DataFrame {
        let (cond, using) = match on.into() {
            JoinOn::Nothing => (None, vec![]),
            JoinOn::Expr(c) => (Some(c.expr), vec![]),
            JoinOn::Using(u) => (None, u),
        };
        self.wrap(RelType::Join(Box::new(pb::Join {
            left: boxed(&self.plan),
            right: boxed(&other.plan),
            join_condition: cond,
            join_type: how.to_proto() as i32,
            using_columns: using,
            join_data_type: None,
        })))
    }

    /// The cartesian product with `other`.
    pub fn cross_join(&self, other: &DataFrame) -> DataFrame {
        self.join(other, JoinOn::Nothing, JoinType::Cross)
    }

    fn set_op(
        &self,
        other: &DataFrame,
        kind: pb::set_operation::SetOpType,
        is_all: bool,
        by_name: bool,
        allow_missing: bool,
    ) -> DataFrame {
        self.wrap(RelType::SetOp(Box::new(pb::SetOperation {
            left_input: boxed(&self.plan),
            right_input: boxed(&other.plan),
            set_op_type: kind as i32,
            is_all: Some(is_all),
            by_name: Some(by_name),
            allow_missing_columns: Some(allow_missing),
        })))
    }

    /// Rows of both (keeping duplicates), matched by position.
    pub fn union(&self, other: &DataFrame) -> DataFrame {
        self.set_op(
            other,
            pb::set_operation::SetOpType::Union,
            true,
            false,
            false,
        )
    }

    /// Same as [`union`](Self::union).
    pub fn union_all(&self, other: &DataFrame) -> DataFrame {
        self.union(other)
    }

    /// Rows of both, matched by column name; missing columns become null when allowed.
    pub fn union_by_name(&self, other: &DataFrame, allow_missing_columns: bool) -> DataFrame {
        self.set_op(
            other,
            pb::set_operation::SetOpType::Union,
            true,
            true,
            allow_missing_columns,
        )
    }

    /// Distinct rows present in both.
    pub fn intersect(&self, other: &DataFrame) -> DataFrame {
        self.set_op(
            other,
            pb::set_operation::SetOpType::Intersect,
            false,
            false,
            false,
        )
    }

    /// Rows present in both, keeping duplicates.
    pub fn intersect_all(&self, other: &DataFrame) -> DataFrame {
        self.set_op(
            other,
            pb::set_operation::SetOpType::Intersect,
            true,
            false,
            false,
        )
    }

    /// Distinct rows of this DataFrame not in `other` (SQL `EXCEPT`).
    pub fn except(&self, other: &DataFrame) -> DataFrame {
        self.set_op(
            other,
            pb::set_operation::SetOpType::Except,
            false,
            false,
            false,
        )
    }

    /// Same as [`except`](Self::except).
    pub fn subtract(&self, other: &DataFrame) -> DataFrame {
        self.except(other)
    }

    /// Rows of this DataFrame not in `other`, keeping duplicates.
    pub fn except_all(&self, other: &DataFrame) -> DataFrame {
        self.set_op(
            other,
            pb::set_operation::SetOpType::Except,
            true,
            false,
            false,
        )
    }

    /// A random sample of about `fraction` of the rows (a random seed when `None`).
    pub fn sample(&self, fraction: f64, with_replacement: bool, seed: Option<i64>) -> DataFrame {
        self.wrap(RelType::Sample(Box::new(pb::Sample {
            input: boxed(&self.plan),
            lower_bound: 0.0,
            upper_bound: fraction,
            with_replacement: Some(with_replacement),
            seed: Some(seed.unwrap_or_else(random_seed)),
            deterministic_order: false,
        })))
    }

    /// Splits randomly into parts of about the given relative weights.
    pub fn random_split(&self, weights: &[f64], seed: Option<i64>) -> Result<Vec<DataFrame>> {
        if weights.iter().any(|w| !w.is_finite() || *w < 0.0) {
            return Err(Error::InvalidArgument(
                "weights must be finite and non-negative".into(),
            ));
        }
        let total: f64 = weights.iter().sum();
        if total <= 0.0 {
            return Err(Error::InvalidArgument(
                "weights must sum to more than 0".into(),
            ));
        }
        let seed = seed.unwrap_or_else(random_seed);
        let mut lower = 0.0;
        let mut out = Vec::with_capacity(weights.len());
        for w in weights {
            let upper = lower + w / total;
            out.push(self.wrap(RelType::Sample(Box::new(pb::Sample {
                input: boxed(&self.plan),
                lower_bound: lower,
                upper_bound: upper,
                with_replacement: Some(false),
                seed: Some(seed),
                deterministic_order: true,
            }))));
            lower = upper;
        }
        Ok(out)
    }

    /// Redistributes into `n` partitions (with a shuffle).
    pub fn repartition(&self, n: i32) -> DataFrame {
        self.wrap(RelType::Repartition(Box::new(pb::Repartition {
            input: boxed(&self.plan),
            num_partitions: n,
            shuffle: Some(true),
        })))
    }

    /// Redistributes by the hash of columns, into `n` partitions or the default.
    pub fn repartition_by<C: IntoColumn>(
        &self,
        cols: impl IntoIterator<Item = C>,
        n: Option<i32>,
    ) -> DataFrame {
        self.wrap(RelType::RepartitionByExpression(Box::new(
            pb::RepartitionByExpression {
                input: boxed(&self.plan),
                partition_exprs: cols.into_iter().map(|c| c.into_column().expr).collect(),
                num_partitions: n,
            },
        )))
    }

    /// Reduces to `n` partitions without a shuffle.
    pub fn coalesce(&self, n: i32) -> DataFrame {
        self.wrap(RelType::Repartition(Box::new(pb::Repartition {
            input: boxed(&self.plan),
            num_partitions: n,
            shuffle: Some(false),
        })))
    }

    /// Count, mean, stddev, min and max of the columns (all numeric and string columns when
    /// empty).
    pub fn describe<'a>(&self, cols: impl IntoIterator<Item = &'a str>) -> DataFrame {
        self.wrap(RelType::Describe(Box::new(pb::StatDescribe {
            input: boxed(&self.plan),
            cols: cols.into_iter().map(str::to_string).collect(),
        })))
    }

    /// The given statistics (`count`, `mean`, `stddev`, `min`, `25%`, ..., `max`), or the
    /// default set when empty.
    pub fn summary<'a>(&self, statistics: impl IntoIterator<Item = &'a str>) -> DataFrame {
        self.wrap(RelType::Summary(Box::new(pb::StatSummary {
            input: boxed(&self.plan),
            statistics: statistics.into_iter().map(str::to_string).collect(),
        })))
    }

    /// Functions for missing values: fill, drop, replace.
    pub fn na(&self) -> NaFunctions {
        NaFunctions { df: self.clone() }
    }

    /// Gives the DataFrame a name to qualify its columns with (`alias("t")` then `col("t.a")`).
    pub fn alias(&self, name: &str) -> DataFrame {
        self.wrap(RelType::SubqueryAlias(Box::new(pb::SubqueryAlias {
            input: boxed(&self.plan),
            alias: name.to_string(),
            qualifier: vec![],
        })))
    }

    /// Adds an optimizer hint (`"broadcast"`, `"repartition"`, ...), with parameters.
    pub fn hint<T: IntoExpr>(&self, name: &str, params: impl IntoIterator<Item = T>) -> DataFrame {
        self.wrap(RelType::Hint(Box::new(pb::Hint {
            input: boxed(&self.plan),
            name: name.to_string(),
            parameters: params.into_iter().map(|p| p.into_expr().expr).collect(),
        })))
    }

    /// Turns columns into rows: keeps `ids`, and for each of `values` emits a row of
    /// (`variable`, `value`).
    pub fn unpivot(
        &self,
        ids: impl IntoIterator<Item = Column>,
        values: Option<Vec<Column>>,
        variable_column_name: &str,
        value_column_name: &str,
    ) -> DataFrame {
        self.wrap(RelType::Unpivot(Box::new(pb::Unpivot {
            input: boxed(&self.plan),
            ids: ids.into_iter().map(|c| c.expr).collect(),
            values: values.map(|v| pb::unpivot::Values {
                values: v.into_iter().map(|c| c.expr).collect(),
            }),
            variable_column_name: variable_column_name.to_string(),
            value_column_name: value_column_name.to_string(),
        })))
    }

    // === actions ===

    fn root_plan(&self) -> pb::Plan {
        self.to_plan()
    }

    /// Runs the plan and streams its result batch by batch.
    ///
    /// Memory stays bounded by about one server response (one Arrow batch, 4 MiB by default in
    /// Spark) plus the HTTP/2 flow-control window, however large the result: the next response
    /// is only read when the stream is polled. Dropping the stream early releases the execution
    /// on the server.
    pub async fn to_stream(&self) -> Result<BatchStream> {
        let stream = self.session.client.execute(self.root_plan())?;
        Ok(BatchStream::new(stream))
    }

    /// Runs the plan and returns every result batch.
    pub async fn collect(&self) -> Result<Vec<RecordBatch>> {
        let mut s = self.to_stream().await?;
        let mut out = Vec::new();
        while let Some(b) = s.next().await {
            out.push(b?);
        }
        Ok(out)
    }

    /// Runs the plan and returns its result as one batch (empty batches of the result's schema
    /// when there are no rows).
    pub async fn collect_batch(&self) -> Result<RecordBatch> {
        let mut s = self.to_stream().await?;
        let mut out = Vec::new();
        while let Some(b) = s.next().await {
            out.push(b?);
        }
        let schema = match (out.first(), s.schema()) {
            (Some(b), _) => b.schema(),
            (None, Some(s)) => s,
            (None, None) => self.schema().await?,
        };
        Ok(arrow_select_concat(&schema, &out)?)
    }

    /// The number of rows.
    pub async fn count(&self) -> Result<i64> {
        let df = self.agg([Column::call("count", [lit(1)])]);
        let batch = df.collect_batch().await?;
        batch
            .columns()
            .first()
            .and_then(|c| c.as_any().downcast_ref::<arrow_array::Int64Array>())
            .filter(|a| !a.is_empty())
            .map(|a| a.value(0))
            .ok_or_else(|| Error::Protocol("count returned no value".into()))
    }

    /// The first `n` rows, as one batch.
    pub async fn head(&self, n: i32) -> Result<RecordBatch> {
        self.limit(n).collect_batch().await
    }

    /// Same as [`head`](Self::head).
    pub async fn take(&self, n: i32) -> Result<RecordBatch> {
        self.head(n).await
    }

    /// The first row as a one-row batch, or `None` when there are no rows.
    pub async fn first(&self) -> Result<Option<RecordBatch>> {
        let b = self.head(1).await?;
        Ok((b.num_rows() > 0).then_some(b))
    }

    /// The last `n` rows.
    pub async fn tail(&self, n: i32) -> Result<RecordBatch> {
        self.wrap(RelType::Tail(Box::new(pb::Tail {
            input: boxed(&self.plan),
            limit: n,
        })))
        .collect_batch()
        .await
    }

    /// Whether there are no rows.
    pub async fn is_empty(&self) -> Result<bool> {
        Ok(self.limit(1).collect_batch().await?.num_rows() == 0)
    }

    /// The table Spark prints for `show(n, truncate, vertical)`: `truncate` cuts cells to that
    /// many characters (0 for no cut).
    pub async fn show_string(&self, n: i32, truncate: i32, vertical: bool) -> Result<String> {
        let df = self.wrap(RelType::ShowString(Box::new(pb::ShowString {
            input: boxed(&self.plan),
            num_rows: n,
            truncate,
            vertical,
        })));
        let batch = df.collect_batch().await?;
        let col = batch
            .columns()
            .first()
            .ok_or_else(|| Error::Protocol("show returned no column".into()))?;
        let strings = arrow_cast::cast(col, &arrow_schema::DataType::Utf8)?;
        let s = strings
            .as_any()
            .downcast_ref::<arrow_array::StringArray>()
            .filter(|a| !a.is_empty())
            .map(|a| a.value(0).to_string())
            .ok_or_else(|| Error::Protocol("show returned no value".into()))?;
        Ok(s)
    }

    /// Prints the first `n` rows as Spark does (cells cut at 20 characters).
    pub async fn show(&self, n: i32) -> Result<()> {
        print!("{}", self.show_string(n, 20, false).await?);
        Ok(())
    }

    async fn analyze(
        &self,
        a: pb::analyze_plan_request::Analyze,
    ) -> Result<pb::analyze_plan_response::Result> {
        self.session.client.analyze(a).await
    }

    /// The Spark schema of the result, as the protobuf data type.
    pub async fn spark_schema(&self) -> Result<pb::DataType> {
        match self
            .analyze(pb::analyze_plan_request::Analyze::Schema(
                pb::analyze_plan_request::Schema {
                    plan: Some(self.root_plan()),
                },
            ))
            .await?
        {
            pb::analyze_plan_response::Result::Schema(s) => s
                .schema
                .ok_or_else(|| Error::Protocol("schema missing".into())),
            other => Err(Error::Protocol(format!("expected a schema, got {other:?}"))),
        }
    }

    /// The schema of the result, as Arrow types.
    pub async fn schema(&self) -> Result<SchemaRef> {
        let dt = self.spark_schema().await?;
        Ok(Arc::new(crate::types::to_arrow_schema(&dt, "UTC")))
    }

    /// The column names.
    pub async fn columns(&self) -> Result<Vec<String>> {
        Ok(self
            .schema()
            .await?
            .fields()
            .iter()
            .map(|f| f.name().clone())
            .collect())
    }

    /// The schema as Spark prints it (`root\n |-- id: long (nullable = false)`).
    pub async fn tree_string(&self) -> Result<String> {
        match self
            .analyze(pb::analyze_plan_request::Analyze::TreeString(
                pb::analyze_plan_request::TreeString {
                    plan: Some(self.root_plan()),
                    level: None,
                },
            ))
            .await?
        {
            pb::analyze_plan_response::Result::TreeString(s) => Ok(s.tree_string),
            other => Err(Error::Protocol(format!(
                "expected a tree string, got {other:?}"
            ))),
        }
    }

    /// Prints the schema tree.
    pub async fn print_schema(&self) -> Result<()> {
        print!("{}", self.tree_string().await?);
        Ok(())
    }

    /// The query plans as Spark explains them.
    pub async fn explain_string(&self, mode: ExplainMode) -> Result<String> {
        use pb::analyze_plan_request::explain::ExplainMode as M;
        let m = match mode {
            ExplainMode::Simple => M::Simple,
            ExplainMode::Extended => M::Extended,
            ExplainMode::Codegen => M::Codegen,
            ExplainMode::Cost => M::Cost,
            ExplainMode::Formatted => M::Formatted,
        };
        match self
            .analyze(pb::analyze_plan_request::Analyze::Explain(
                pb::analyze_plan_request::Explain {
                    plan: Some(self.root_plan()),
                    explain_mode: m as i32,
                },
            ))
            .await?
        {
            pb::analyze_plan_response::Result::Explain(e) => Ok(e.explain_string),
            other => Err(Error::Protocol(format!(
                "expected an explanation, got {other:?}"
            ))),
        }
    }

    /// Prints the query plans.
    pub async fn explain(&self, mode: ExplainMode) -> Result<()> {
        println!("{}", self.explain_string(mode).await?);
        Ok(())
    }

    /// Whether the plan reads a streaming source.
    pub async fn is_streaming(&self) -> Result<bool> {
        match self
            .analyze(pb::analyze_plan_request::Analyze::IsStreaming(
                pb::analyze_plan_request::IsStreaming {
                    plan: Some(self.root_plan()),
                },
            ))
            .await?
        {
            pb::analyze_plan_response::Result::IsStreaming(s) => Ok(s.is_streaming),
            other => Err(Error::Protocol(format!(
                "expected is_streaming, got {other:?}"
            ))),
        }
    }

    /// Caches the result in memory, spilling to disk.
    pub async fn cache(&self) -> Result<DataFrame> {
        self.persist(StorageLevel::MEMORY_AND_DISK_DESER).await
    }

    /// Caches the result with a storage level.
    pub async fn persist(&self, level: StorageLevel) -> Result<DataFrame> {
        self.analyze(pb::analyze_plan_request::Analyze::Persist(
            pb::analyze_plan_request::Persist {
                relation: Some(self.plan.clone()),
                storage_level: Some(level.to_proto()),
            },
        ))
        .await?;
        Ok(self.clone())
    }

    /// Drops the cached result.
    pub async fn unpersist(&self, blocking: bool) -> Result<DataFrame> {
        self.analyze(pb::analyze_plan_request::Analyze::Unpersist(
            pb::analyze_plan_request::Unpersist {
                relation: Some(self.plan.clone()),
                blocking: Some(blocking),
            },
        ))
        .await?;
        Ok(self.clone())
    }

    /// The storage level of the cached result (all false when not cached).
    pub async fn storage_level(&self) -> Result<StorageLevel> {
        match self
            .analyze(pb::analyze_plan_request::Analyze::GetStorageLevel(
                pb::analyze_plan_request::GetStorageLevel {
                    relation: Some(self.plan.clone()),
                },
            ))
            .await?
        {
            pb::analyze_plan_response::Result::GetStorageLevel(s) => {
                let l = s.storage_level.unwrap_or_default();
                Ok(StorageLevel {
                    use_disk: l.use_disk,
                    use_memory: l.use_memory,
                    use_off_heap: l.use_off_heap,
                    deserialized: l.deserialized,
                    replication: l.replication,
                })
            }
            other => Err(Error::Protocol(format!(
                "expected a storage level, got {other:?}"
            ))),
        }
    }

    /// Registers the DataFrame as a temporary view (replacing one of the same name).
    pub async fn create_or_replace_temp_view(&self, name: &str) -> Result<()> {
        self.create_view(name, false, true).await
    }

    /// Registers the DataFrame as a temporary view; fails if it exists.
    pub async fn create_temp_view(&self, name: &str) -> Result<()> {
        self.create_view(name, false, false).await
    }

    /// Registers the DataFrame as a global temporary view (in `global_temp`).
    pub async fn create_or_replace_global_temp_view(&self, name: &str) -> Result<()> {
        self.create_view(name, true, true).await
    }

    async fn create_view(&self, name: &str, global: bool, replace: bool) -> Result<()> {
        self.session
            .execute_command(pb::command::CommandType::CreateDataframeView(
                pb::CreateDataFrameViewCommand {
                    input: Some(self.plan.clone()),
                    name: name.to_string(),
                    is_global: global,
                    replace,
                },
            ))
            .await?;
        Ok(())
    }

    /// A writer that saves this DataFrame.
    pub fn write(&self) -> DataFrameWriter {
        DataFrameWriter::new(self.clone())
    }
}

fn random_seed() -> i64 {
    (uuid::Uuid::new_v4().as_u128() as i64) & i64::MAX
}

fn arrow_select_concat(
    schema: &SchemaRef,
    batches: &[RecordBatch],
) -> std::result::Result<RecordBatch, arrow_schema::ArrowError> {
    match batches {
        [] => Ok(RecordBatch::new_empty(schema.clone())),
        [one] => Ok(one.clone()),
        // Batches whose schema differs from the first one's are an error, not a panic.
        [first, ..] => arrow_select::concat::concat_batches(&first.schema(), batches),
    }
}

// === GroupedData ===

/// A grouped DataFrame, waiting for aggregations.
#[derive(Debug, Clone)]
pub struct GroupedData {
    df: DataFrame,
    kind: pb::aggregate::GroupType,
    grouping: Vec<pb::Expression>,
    pivot: Option<pb::aggregate::Pivot>,
    grouping_sets: Vec<pb::aggregate::GroupingSets>,
}

impl GroupedData {
    fn new<C: IntoColumn>(
        df: DataFrame,
        kind: pb::aggregate::GroupType,
        cols: impl IntoIterator<Item = C>,
    ) -> Self {
        Self {
            df,
            kind,
            grouping: cols.into_iter().map(|c| c.into_column().expr).collect(),
            pivot: None,
            grouping_sets: vec![],
        }
    }

    /// Grouping by `sets` (SQL `GROUPING SETS`), with `cols` as the grouping columns.
    pub(crate) fn with_grouping_sets<C: IntoColumn>(
        df: DataFrame,
        cols: impl IntoIterator<Item = C>,
        sets: Vec<pb::aggregate::GroupingSets>,
    ) -> Self {
        Self {
            grouping_sets: sets,
            ..Self::new(df, pb::aggregate::GroupType::GroupingSets, cols)
        }
    }

    /// Computes the aggregate expressions per group.
    pub fn agg(&self, exprs: impl IntoIterator<Item = Column>) -> DataFrame {
        self.df.wrap(RelType::Aggregate(Box::new(pb::Aggregate {
            input: boxed(&self.df.plan),
            group_type: self.kind as i32,
            grouping_expressions: self.grouping.clone(),
            aggregate_expressions: exprs.into_iter().map(|c| c.expr).collect(),
            pivot: self.pivot.clone(),
            grouping_sets: self.grouping_sets.clone(),
        })))
    }

    /// Pivots on the column `name` of the grouped DataFrame: each of `values` (or every
    /// distinct value when `None`) becomes a column.
    ///
    /// The values must be literals (`"x"`, `1`, `lit(2.5)`); any other column is an
    /// [`Error::InvalidArgument`], as PySpark refuses it.
    pub fn pivot<T: IntoExpr>(&self, name: &str, values: Option<Vec<T>>) -> Result<GroupedData> {
        let col = self.df.col(name);
        self.pivot_column(col, values)
    }

    /// Pivots on an expression; the values must be literals, as for [`pivot`](Self::pivot).
    pub fn pivot_column<T: IntoExpr>(
        &self,
        col: Column,
        values: Option<Vec<T>>,
    ) -> Result<GroupedData> {
        let values = values
            .unwrap_or_default()
            .into_iter()
            .enumerate()
            .map(|(i, v)| match v.into_expr().expr.expr_type {
                Some(pb::expression::ExprType::Literal(l)) => Ok(l),
                other => Err(Error::InvalidArgument(format!(
                    "pivot value {i} is not a literal but {}: give literal values (strings, numbers, lit(...))",
                    other.map_or("an empty expression", |e| match e {
                        pb::expression::ExprType::UnresolvedAttribute(_) => "a column reference",
                        pb::expression::ExprType::UnresolvedFunction(_) => "a function call",
                        _ => "an expression",
                    })
                ))),
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(GroupedData {
            df: self.df.clone(),
            kind: pb::aggregate::GroupType::Pivot,
            grouping: self.grouping.clone(),
            pivot: Some(pb::aggregate::Pivot {
                col: Some(col.expr),
                values,
            }),
            grouping_sets: vec![],
        })
    }

    /// Rows per group, in a column named `count`.
    pub fn count(&self) -> DataFrame {
        self.agg([Column::call("count", [lit(1)]).alias("count")])
    }

    fn each<'a>(&self, f: &str, cols: impl IntoIterator<Item = &'a str>) -> DataFrame {
        self.agg(cols.into_iter().map(|c| Column::call(f, [Column::name(c)])))
    }

    /// Sum of each column per group.
    pub fn sum<'a>(&self, cols: impl IntoIterator<Item = &'a str>) -> DataFrame {
        self.each("sum", cols)
    }
    /// Average of each column per group.
    pub fn avg<'a>(&self, cols: impl IntoIterator<Item = &'a str>) -> DataFrame {
        self.each("avg", cols)
    }
    /// Same as [`avg`](Self::avg).
    pub fn mean<'a>(&self, cols: impl IntoIterator<Item = &'a str>) -> DataFrame {
        self.each("avg", cols)
    }
    /// Minimum of each column per group.
    pub fn min<'a>(&self, cols: impl IntoIterator<Item = &'a str>) -> DataFrame {
        self.each("min", cols)
    }
    /// Maximum of each column per group.
    pub fn max<'a>(&self, cols: impl IntoIterator<Item = &'a str>) -> DataFrame {
        self.each("max", cols)
    }
}

// === NaFunctions ===

/// Missing-value functions of a DataFrame (`df.na()`).
#[derive(Debug, Clone)]
pub struct NaFunctions {
    df: DataFrame,
}

fn literal_of(v: impl IntoExpr) -> Result<pb::expression::Literal> {
    match v.into_expr().expr.expr_type {
        Some(pb::expression::ExprType::Literal(l)) => Ok(l),
        _ => Err(Error::InvalidArgument("expected a literal value".into())),
    }
}

/// Integers widen to `bigint`, as PySpark's `fillna` sends them.
fn fill_literal(v: impl IntoExpr) -> Result<pb::expression::Literal> {
    use pb::expression::literal::LiteralType as L;
    let mut l = literal_of(v)?;
    l.literal_type = match l.literal_type {
        Some(L::Byte(i) | L::Short(i) | L::Integer(i)) => Some(L::Long(i64::from(i))),
        other => other,
    };
    Ok(l)
}

/// Numbers become `double`, as PySpark's `replace` sends them.
fn replace_literal(v: impl IntoExpr) -> Result<pb::expression::Literal> {
    use pb::expression::literal::LiteralType as L;
    let mut l = literal_of(v)?;
    l.literal_type = match l.literal_type {
        Some(L::Byte(i) | L::Short(i) | L::Integer(i)) => Some(L::Double(f64::from(i))),
        Some(L::Long(i)) => Some(L::Double(i as f64)),
        Some(L::Float(f)) => Some(L::Double(f64::from(f))),
        other => other,
    };
    Ok(l)
}

impl NaFunctions {
    /// Replaces nulls in `subset` (all compatible columns when empty) with `value`.
    pub fn fill<'a>(
        &self,
        value: impl IntoExpr,
        subset: impl IntoIterator<Item = &'a str>,
    ) -> Result<DataFrame> {
        Ok(self.df.wrap(RelType::FillNa(Box::new(pb::NaFill {
            input: boxed(&self.df.plan),
            cols: subset.into_iter().map(str::to_string).collect(),
            values: vec![fill_literal(value)?],
        }))))
    }

    /// Replaces nulls per column: each `(column, value)` pair.
    pub fn fill_map<'a, V: IntoExpr>(
        &self,
        values: impl IntoIterator<Item = (&'a str, V)>,
    ) -> Result<DataFrame> {
        let mut cols = Vec::new();
        let mut vals = Vec::new();
        for (c, v) in values {
            cols.push(c.to_string());
            vals.push(fill_literal(v)?);
        }
        Ok(self.df.wrap(RelType::FillNa(Box::new(pb::NaFill {
            input: boxed(&self.df.plan),
            cols,
            values: vals,
        }))))
    }

    /// Drops rows with nulls: with `how_all`, only rows whose `subset` values are all null; with
    /// `thresh`, rows with fewer than that many non-null values (overrides `how_all`).
    pub fn drop<'a>(
        &self,
        how_all: bool,
        thresh: Option<i32>,
        subset: impl IntoIterator<Item = &'a str>,
    ) -> DataFrame {
        let min_non_nulls = thresh.or(if how_all { Some(1) } else { None });
        self.df.wrap(RelType::DropNa(Box::new(pb::NaDrop {
            input: boxed(&self.df.plan),
            cols: subset.into_iter().map(str::to_string).collect(),
            min_non_nulls,
        })))
    }

    /// Replaces values: each `(old, new)` pair, in `subset` (all compatible columns when empty).
    pub fn replace<'a, V: IntoExpr>(
        &self,
        replacements: impl IntoIterator<Item = (V, V)>,
        subset: impl IntoIterator<Item = &'a str>,
    ) -> Result<DataFrame> {
        let mut reps = Vec::new();
        for (old, new) in replacements {
            reps.push(pb::na_replace::Replacement {
                old_value: Some(replace_literal(old)?),
                new_value: Some(replace_literal(new)?),
            });
        }
        Ok(self.df.wrap(RelType::Replace(Box::new(pb::NaReplace {
            input: boxed(&self.df.plan),
            cols: subset.into_iter().map(str::to_string).collect(),
            replacements: reps,
        }))))
    }
}

// === BatchStream ===

/// A stream of result batches (see [`DataFrame::to_stream`]).
pub struct BatchStream {
    inner: ExecuteStream,
    pending: VecDeque<RecordBatch>,
    schema: Option<SchemaRef>,
    done: bool,
    bytes_received: u64,
    observed: Vec<crate::observation::ObservedMetrics>,
}

impl BatchStream {
    fn new(inner: ExecuteStream) -> Self {
        Self {
            inner,
            pending: VecDeque::new(),
            schema: None,
            done: false,
            bytes_received: 0,
            observed: Vec::new(),
        }
    }

    /// The observed metrics received so far ([`DataFrame::observe`] and
    /// [`DataFrame::observe_named`]); the server sends them when the result is complete.
    pub fn observed_metrics(&self) -> &[crate::observation::ObservedMetrics] {
        &self.observed
    }

    /// Bytes of Arrow IPC data received so far.
    pub fn bytes_received(&self) -> u64 {
        self.bytes_received
    }

    /// The server-side operation id of this execution.
    pub fn operation_id(&self) -> &str {
        self.inner.operation_id()
    }

    /// The Arrow schema, once the first batch has arrived.
    pub fn schema(&self) -> Option<SchemaRef> {
        self.schema.clone()
    }
}

impl Stream for BatchStream {
    type Item = Result<RecordBatch>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        loop {
            if let Some(b) = self.pending.pop_front() {
                return Poll::Ready(Some(Ok(b)));
            }
            if self.done {
                return Poll::Ready(None);
            }
            match self.inner.poll_next_unpin(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(None) => {
                    self.done = true;
                }
                Poll::Ready(Some(Err(e))) => {
                    self.done = true;
                    return Poll::Ready(Some(Err(e)));
                }
                Poll::Ready(Some(Ok(resp))) => {
                    self.observed.extend(
                        resp.observed_metrics
                            .iter()
                            .map(crate::observation::ObservedMetrics::from_proto),
                    );
                    if let Some(pb::execute_plan_response::ResponseType::ArrowBatch(b)) =
                        resp.response_type
                    {
                        self.bytes_received += b.data.len() as u64;
                        let reader = match arrow_ipc::reader::StreamReader::try_new(
                            std::io::Cursor::new(b.data),
                            None,
                        ) {
                            Ok(r) => r,
                            Err(e) => {
                                self.done = true;
                                return Poll::Ready(Some(Err(e.into())));
                            }
                        };
                        if self.schema.is_none() {
                            self.schema = Some(reader.schema());
                        }
                        for batch in reader {
                            match batch {
                                Ok(batch) => self.pending.push_back(batch),
                                Err(e) => {
                                    self.done = true;
                                    return Poll::Ready(Some(Err(e.into())));
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}
