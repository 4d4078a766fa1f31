//! Subquery expressions: [`DataFrame::scalar`], [`DataFrame::exists`] and
//! [`Column::isin_subquery`], sent as PySpark 4.x sends them: a `SubqueryExpression` naming the
//! subquery's plan id, and the plan that uses it wrapped in `WithRelations` carrying the
//! subquery plans as references.
//!
//! A [`Column`] holds only its protobuf expression, so the subquery DataFrames it refers to are
//! remembered by the session (plan id → plan) until the session ends; a transformation whose
//! expressions name one of them gets the `WithRelations` wrapper. Use a subquery column with
//! DataFrames of the session it came from.

use std::collections::HashMap;
use std::sync::Mutex;

use sc_proto::spark::connect as pb;
use sc_proto::spark::connect::expression::ExprType;
use sc_proto::spark::connect::relation::RelType;
use sc_proto::spark::connect::subquery_expression::SubqueryType;

use crate::column::Column;
use crate::dataframe::DataFrame;
use crate::session::SparkSession;

/// The DataFrames referred to by subquery expressions of one session, by plan id.
#[derive(Debug, Default)]
pub(crate) struct SubqueryPlans {
    plans: Mutex<HashMap<i64, pb::Relation>>,
}

impl SubqueryPlans {
    fn remember(&self, plan_id: i64, plan: &pb::Relation) {
        if let Ok(mut p) = self.plans.lock() {
            p.entry(plan_id).or_insert_with(|| plan.clone());
        }
    }

    fn is_empty(&self) -> bool {
        self.plans.lock().map(|p| p.is_empty()).unwrap_or(true)
    }

    fn get(&self, plan_id: i64) -> Option<pb::Relation> {
        self.plans.lock().ok()?.get(&plan_id).cloned()
    }
}

fn subquery(df: &DataFrame, kind: SubqueryType, values: Vec<pb::Expression>) -> Column {
    let plan_id = df
        .plan
        .common
        .as_ref()
        .and_then(|c| c.plan_id)
        .unwrap_or_default();
    df.session
        .client
        .shared
        .subqueries
        .remember(plan_id, &df.plan);
    Column::from_proto(pb::Expression {
        common: None,
        expr_type: Some(ExprType::SubqueryExpression(pb::SubqueryExpression {
            plan_id,
            subquery_type: kind as i32,
            table_arg_options: None,
            in_subquery_values: values,
        })),
    })
}

// === impl DataFrame ===

impl DataFrame {
    /// This DataFrame as a scalar subquery: a column whose value is the single value of its
    /// single row (`NULL` when it has no row). Correlated subqueries refer to the outer
    /// DataFrame's columns with [`Column::outer`].
    ///
    /// ```no_run
    /// # async fn run(spark: sc_client::SparkSession) -> sc_client::Result<()> {
    /// use sc_client::functions::{col, max};
    /// let emp = spark.table("employees");
    /// let top = emp.filter(col("salary").eq(emp.select([max("salary")]).scalar()));
    /// # Ok(()) }
    /// ```
    pub fn scalar(&self) -> Column {
        subquery(self, SubqueryType::Scalar, vec![])
    }

    /// `EXISTS (this DataFrame)`: a boolean column, true when it has at least one row.
    ///
    /// ```no_run
    /// # async fn run(spark: sc_client::SparkSession) -> sc_client::Result<()> {
    /// use sc_client::functions::col;
    /// let (c, o) = (spark.table("customers").alias("c"), spark.table("orders").alias("o"));
    /// let with_orders = c.filter(
    ///     o.filter(col("o.customer_id").eq(col("c.id").outer())).exists(),
    /// );
    /// # Ok(()) }
    /// ```
    pub fn exists(&self) -> Column {
        subquery(self, SubqueryType::Exists, vec![])
    }
}

// === impl Column ===

impl Column {
    /// `self IN (subquery)`: whether the value is among the rows of a one-column DataFrame.
    /// A `struct(a, b)` column compares several columns with a DataFrame of as many columns,
    /// as PySpark's `isin` does with a DataFrame.
    pub fn isin_subquery(self, df: &DataFrame) -> Column {
        let values = match self.expr.expr_type {
            Some(ExprType::UnresolvedFunction(f)) if f.function_name == "struct" => f.arguments,
            other => vec![pb::Expression {
                common: self.expr.common,
                expr_type: other,
            }],
        };
        subquery(df, SubqueryType::In, values)
    }

    /// Marks a column of a subquery as a reference to the outer query (correlation). The plan
    /// is the same: Spark resolves the column in the outer query when the subquery does not
    /// have it.
    pub fn outer(self) -> Column {
        self
    }
}

// === WithRelations ===

impl SparkSession {
    /// Wraps `rel` in `WithRelations` when the expressions of its top node refer to subqueries
    /// of this session, as PySpark does: the wrapper gets the next plan id.
    pub(crate) fn with_subquery_references(&self, rel: pb::Relation) -> pb::Relation {
        let registry = &self.client.shared.subqueries;
        if registry.is_empty() {
            return rel;
        }
        let mut ids = Vec::new();
        if let Some(r) = &rel.rel_type {
            for e in node_expressions(r) {
                visit(e, &mut |s| ids.push(s.plan_id));
            }
        }
        let references: Vec<pb::Relation> =
            ids.into_iter().filter_map(|id| registry.get(id)).collect();
        if references.is_empty() {
            return rel;
        }
        self.relation(RelType::WithRelations(Box::new(pb::WithRelations {
            root: Some(Box::new(rel)),
            references,
        })))
    }
}

/// The expressions of a relation's own node (not of its inputs), in the order PySpark collects
/// subquery references from them.
fn node_expressions(rel: &RelType) -> Vec<&pb::Expression> {
    match rel {
        RelType::Project(p) => p.expressions.iter().collect(),
        RelType::WithColumns(w) => w.aliases.iter().filter_map(|a| a.expr.as_deref()).collect(),
        RelType::Hint(h) => h.parameters.iter().collect(),
        RelType::Filter(f) => f.condition.iter().collect(),
        RelType::Sort(s) => s.order.iter().filter_map(|o| o.child.as_deref()).collect(),
        RelType::Drop(d) => d.columns.iter().collect(),
        RelType::Aggregate(a) => a
            .grouping_expressions
            .iter()
            .chain(&a.aggregate_expressions)
            .chain(a.pivot.iter().filter_map(|p| p.col.as_ref()))
            .chain(a.grouping_sets.iter().flat_map(|g| &g.grouping_set))
            .collect(),
        RelType::Join(j) => j.join_condition.iter().collect(),
        RelType::LateralJoin(j) => j.join_condition.iter().collect(),
        RelType::RepartitionByExpression(r) => r.partition_exprs.iter().collect(),
        RelType::Unpivot(u) => u
            .ids
            .iter()
            .chain(u.values.iter().flat_map(|v| &v.values))
            .collect(),
        RelType::Transpose(t) => t.index_columns.iter().collect(),
        RelType::UnresolvedTableValuedFunction(t) => t.arguments.iter().collect(),
        RelType::CollectMetrics(c) => c.metrics.iter().collect(),
        RelType::SampleBy(s) => s.col.iter().collect(),
        _ => Vec::new(),
    }
}

/// Calls `f` for every subquery expression in `e`, in pre-order (PySpark's `foreach`), without
/// descending into a subquery's own values.
fn visit(e: &pb::Expression, f: &mut dyn FnMut(&pb::SubqueryExpression)) {
    use sc_proto::spark::connect::expression::window::window_frame::frame_boundary::Boundary;
    let Some(t) = &e.expr_type else {
        return;
    };
    let each = |es: &[pb::Expression], f: &mut dyn FnMut(&pb::SubqueryExpression)| {
        for c in es {
            visit(c, f);
        }
    };
    match t {
        ExprType::SubqueryExpression(s) => f(s),
        ExprType::UnresolvedFunction(u) => each(&u.arguments, f),
        ExprType::CallFunction(c) => each(&c.arguments, f),
        ExprType::CommonInlineUserDefinedFunction(u) => each(&u.arguments, f),
        ExprType::Alias(a) => a.expr.iter().for_each(|c| visit(c, f)),
        ExprType::Cast(c) => c.expr.iter().for_each(|c| visit(c, f)),
        ExprType::SortOrder(s) => s.child.iter().for_each(|c| visit(c, f)),
        ExprType::DirectShufflePartitionId(d) => d.child.iter().for_each(|c| visit(c, f)),
        ExprType::NamedArgumentExpression(n) => n.value.iter().for_each(|c| visit(c, f)),
        ExprType::UnresolvedExtractValue(x) => {
            x.child.iter().for_each(|c| visit(c, f));
            x.extraction.iter().for_each(|c| visit(c, f));
        }
        ExprType::UpdateFields(u) => {
            u.struct_expression.iter().for_each(|c| visit(c, f));
            u.value_expression.iter().for_each(|c| visit(c, f));
        }
        ExprType::LambdaFunction(l) => l.function.iter().for_each(|c| visit(c, f)),
        ExprType::Window(w) => {
            w.window_function.iter().for_each(|c| visit(c, f));
            each(&w.partition_spec, f);
            for o in &w.order_spec {
                o.child.iter().for_each(|c| visit(c, f));
            }
            if let Some(frame) = &w.frame_spec {
                for b in [&frame.lower, &frame.upper].into_iter().flatten() {
                    if let Some(Boundary::Value(v)) = &b.boundary {
                        visit(v, f);
                    }
                }
            }
        }
        ExprType::MergeAction(m) => {
            m.condition.iter().for_each(|c| visit(c, f));
            for a in &m.assignments {
                a.key.iter().for_each(|c| visit(c, f));
                a.value.iter().for_each(|c| visit(c, f));
            }
        }
        _ => {}
    }
}
