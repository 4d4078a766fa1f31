//! [`MergeIntoWriter`] (`df.merge_into(table, condition)`): SQL `MERGE INTO` from a DataFrame,
//! with update, delete and insert actions for matched rows, unmatched source rows and unmatched
//! target rows.

use sc_proto::spark::connect as pb;
use sc_proto::spark::connect::merge_action::ActionType;

use crate::column::{Column, IntoExpr};
use crate::dataframe::DataFrame;
use crate::error::Result;

/// Merges a DataFrame (the source) into a table (the target), as SQL `MERGE INTO`.
///
/// Only tables whose catalog supports row-level changes can be merged into (Delta, Iceberg,
/// ...); Spark's built-in session catalog answers `UNSUPPORTED_FEATURE.TABLE_OPERATION`.
///
/// ```no_run
/// # async fn run(spark: sc_client::SparkSession) -> sc_client::Result<()> {
/// use sc_client::functions::{col, expr};
/// let updates = spark.table("updates").alias("s");
/// updates
///     .merge_into("target", expr("target.id = s.id"))
///     .when_matched(Some(col("s.deleted")))
///     .delete()
///     .when_matched(None)
///     .update_all()
///     .when_not_matched(None)
///     .insert_all()
///     .merge()
///     .await?;
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct MergeIntoWriter {
    df: DataFrame,
    table: String,
    condition: Column,
    schema_evolution: bool,
    matched: Vec<pb::Expression>,
    not_matched: Vec<pb::Expression>,
    not_matched_by_source: Vec<pb::Expression>,
}

fn action<K: AsRef<str>, V: IntoExpr>(
    kind: ActionType,
    condition: Option<Column>,
    assignments: Option<Vec<(K, V)>>,
) -> pb::Expression {
    pb::Expression {
        common: None,
        expr_type: Some(pb::expression::ExprType::MergeAction(Box::new(
            pb::MergeAction {
                action_type: kind as i32,
                condition: condition.map(|c| Box::new(c.into_proto())),
                assignments: assignments
                    .unwrap_or_default()
                    .into_iter()
                    .map(|(k, v)| pb::merge_action::Assignment {
                        key: Some(Column::sql_expr(k.as_ref()).into_proto()),
                        value: Some(v.into_expr().into_proto()),
                    })
                    .collect(),
            },
        ))),
    }
}

fn no_assignments() -> Option<Vec<(&'static str, Column)>> {
    None
}

impl MergeIntoWriter {
    /// Actions for target rows that match a source row (when `condition` also holds, if given).
    pub fn when_matched(self, condition: Option<Column>) -> WhenMatched {
        WhenMatched {
            writer: self,
            condition,
            clause: Clause::Matched,
        }
    }

    /// Actions for source rows that match no target row (when `condition` also holds).
    pub fn when_not_matched(self, condition: Option<Column>) -> WhenNotMatched {
        WhenNotMatched {
            writer: self,
            condition,
        }
    }

    /// Actions for target rows that match no source row (when `condition` also holds).
    pub fn when_not_matched_by_source(self, condition: Option<Column>) -> WhenNotMatchedBySource {
        WhenMatched {
            writer: self,
            condition,
            clause: Clause::NotMatchedBySource,
        }
    }

    /// Lets the merge add the source's new columns to the target's schema.
    pub fn with_schema_evolution(mut self) -> Self {
        self.schema_evolution = true;
        self
    }

    /// The `MergeIntoTableCommand` this writer sends.
    fn command(&self) -> pb::command::CommandType {
        pb::command::CommandType::MergeIntoTableCommand(pb::MergeIntoTableCommand {
            target_table_name: self.table.clone(),
            source_table_plan: Some(self.df.plan.clone()),
            merge_condition: Some(self.condition.clone().into_proto()),
            match_actions: self.matched.clone(),
            not_matched_actions: self.not_matched.clone(),
            not_matched_by_source_actions: self.not_matched_by_source.clone(),
            with_schema_evolution: self.schema_evolution,
        })
    }

    /// Runs the merge.
    pub async fn merge(&self) -> Result<()> {
        self.df.session.execute_command(self.command()).await?;
        Ok(())
    }
}

/// Which rows a merge action applies to.
#[derive(Debug, Clone, Copy)]
enum Clause {
    Matched,
    NotMatched,
    NotMatchedBySource,
}

impl MergeIntoWriter {
    fn add<K: AsRef<str>, V: IntoExpr>(
        mut self,
        clause: Clause,
        kind: ActionType,
        condition: Option<Column>,
        assignments: Option<Vec<(K, V)>>,
    ) -> MergeIntoWriter {
        let a = action(kind, condition, assignments);
        match clause {
            Clause::Matched => self.matched.push(a),
            Clause::NotMatched => self.not_matched.push(a),
            Clause::NotMatchedBySource => self.not_matched_by_source.push(a),
        }
        self
    }
}

/// The actions for matched target rows ([`MergeIntoWriter::when_matched`]), or for target rows
/// without a match in the source ([`MergeIntoWriter::when_not_matched_by_source`]).
#[derive(Debug, Clone)]
pub struct WhenMatched {
    writer: MergeIntoWriter,
    condition: Option<Column>,
    clause: Clause,
}

/// The actions for target rows without a match in the source: the same as for matched rows.
pub type WhenNotMatchedBySource = WhenMatched;

impl WhenMatched {
    /// Sets every target column to the source's column of the same name.
    pub fn update_all(self) -> MergeIntoWriter {
        self.writer.add(
            self.clause,
            ActionType::UpdateStar,
            self.condition,
            no_assignments(),
        )
    }

    /// Sets the target columns named by the keys (SQL names such as `"target.price"`) to the
    /// values.
    pub fn update<K: AsRef<str>, V: IntoExpr>(
        self,
        assignments: impl IntoIterator<Item = (K, V)>,
    ) -> MergeIntoWriter {
        let assignments = Some(assignments.into_iter().collect());
        self.writer
            .add(self.clause, ActionType::Update, self.condition, assignments)
    }

    /// Deletes the target row.
    pub fn delete(self) -> MergeIntoWriter {
        self.writer.add(
            self.clause,
            ActionType::Delete,
            self.condition,
            no_assignments(),
        )
    }
}

/// The actions for source rows without a match ([`MergeIntoWriter::when_not_matched`]).
#[derive(Debug, Clone)]
pub struct WhenNotMatched {
    writer: MergeIntoWriter,
    condition: Option<Column>,
}

impl WhenNotMatched {
    /// Inserts the source row, column by column of the same name.
    pub fn insert_all(self) -> MergeIntoWriter {
        self.writer.add(
            Clause::NotMatched,
            ActionType::InsertStar,
            self.condition,
            no_assignments(),
        )
    }

    /// Inserts a row with the target columns named by the keys set to the values.
    pub fn insert<K: AsRef<str>, V: IntoExpr>(
        self,
        assignments: impl IntoIterator<Item = (K, V)>,
    ) -> MergeIntoWriter {
        let assignments = Some(assignments.into_iter().collect());
        self.writer.add(
            Clause::NotMatched,
            ActionType::Insert,
            self.condition,
            assignments,
        )
    }
}

impl DataFrame {
    /// A merge of this DataFrame (the source) into `table` on `condition`; add actions with
    /// [`MergeIntoWriter::when_matched`] and the others, then run it with
    /// [`MergeIntoWriter::merge`].
    pub fn merge_into(&self, table: &str, condition: Column) -> MergeIntoWriter {
        MergeIntoWriter {
            df: self.clone(),
            table: table.to_string(),
            condition,
            schema_evolution: false,
            matched: vec![],
            not_matched: vec![],
            not_matched_by_source: vec![],
        }
    }
}
