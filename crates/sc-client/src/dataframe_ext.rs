//! More of PySpark's DataFrame surface: `transpose`, `lateral_join`, `grouping_sets`,
//! `repartition_by_range`, `col_regex`, `metadata_column`, `to(schema)`, `with_metadata`,
//! `transform`, `dtypes`, and `checkpoint` / `local_checkpoint`.

use sc_proto::spark::connect as pb;
use sc_proto::spark::connect::expression::ExprType;
use sc_proto::spark::connect::relation::RelType;

use crate::column::{Column, IntoColumn};
use crate::dataframe::{DataFrame, GroupedData, JoinType, StorageLevel};
use crate::error::{Error, Result};
use crate::types::{StructType, write_python_json};

fn sort_expr(c: Column) -> pb::Expression {
    pb::Expression {
        common: None,
        expr_type: Some(ExprType::SortOrder(Box::new(c.into_sort_order()))),
    }
}

impl DataFrame {
    /// Transposes: the values of the first column become the column names and every other
    /// column becomes a row (its name in a column named `key`).
    pub fn transpose(&self) -> DataFrame {
        self.transpose_impl(vec![])
    }

    /// Transposes with `index_column`'s values as the new column names.
    pub fn transpose_with_index(&self, index_column: impl IntoColumn) -> DataFrame {
        self.transpose_impl(vec![index_column.into_column().into_proto()])
    }

    fn transpose_impl(&self, index_columns: Vec<pb::Expression>) -> DataFrame {
        self.wrap(RelType::Transpose(Box::new(pb::Transpose {
            input: Some(Box::new(self.plan.clone())),
            index_columns,
        })))
    }

    /// A lateral join: `other` may refer to this DataFrame's columns (with
    /// [`Column::outer`]), as SQL's `JOIN LATERAL`. `how` is [`JoinType::Inner`],
    /// [`JoinType::LeftOuter`] or [`JoinType::Cross`].
    ///
    /// ```no_run
    /// # async fn run(spark: sc_client::SparkSession) -> sc_client::Result<()> {
    /// use sc_client::JoinType;
    /// use sc_client::functions::{col, lit};
    /// let t = spark.range(0, 3).alias("t");
    /// let per_row = spark.range(0, 2).select([(col("id") + col("t.id").outer()).alias("v")]);
    /// let joined = t.lateral_join(&per_row, None, JoinType::Inner)?;
    /// # Ok(()) }
    /// ```
    pub fn lateral_join(
        &self,
        other: &DataFrame,
        on: Option<Column>,
        how: JoinType,
    ) -> Result<DataFrame> {
        let join_type = match how {
            JoinType::Inner => pb::join::JoinType::Inner,
            JoinType::LeftOuter => pb::join::JoinType::LeftOuter,
            JoinType::Cross => pb::join::JoinType::Cross,
            other => {
                return Err(Error::InvalidArgument(format!(
                    "a lateral join cannot be {other:?}: use Inner, LeftOuter or Cross"
                )));
            }
        };
        Ok(self.wrap(RelType::LateralJoin(Box::new(pb::LateralJoin {
            left: Some(Box::new(self.plan.clone())),
            right: Some(Box::new(other.plan.clone())),
            join_condition: on.map(Column::into_proto),
            join_type: join_type as i32,
        }))))
    }

    /// Groups by several grouping sets at once (SQL `GROUPING SETS`): each set is a list of
    /// columns; `cols` are the grouping columns of the result (usually every column used in a
    /// set).
    ///
    /// ```no_run
    /// # async fn run(df: sc_client::DataFrame) -> sc_client::Result<()> {
    /// use sc_client::functions::sum;
    /// let totals = df
    ///     .grouping_sets(vec![vec!["city", "year"], vec!["city"], vec![]], ["city", "year"])
    ///     .agg([sum("sales")]);
    /// # Ok(()) }
    /// ```
    pub fn grouping_sets<S, C, D>(
        &self,
        sets: impl IntoIterator<Item = S>,
        cols: impl IntoIterator<Item = D>,
    ) -> GroupedData
    where
        S: IntoIterator<Item = C>,
        C: IntoColumn,
        D: IntoColumn,
    {
        let sets = sets
            .into_iter()
            .map(|s| pb::aggregate::GroupingSets {
                grouping_set: s
                    .into_iter()
                    .map(|c| c.into_column().into_proto())
                    .collect(),
            })
            .collect();
        GroupedData::with_grouping_sets(self.clone(), cols, sets)
    }

    /// Redistributes by ranges of the sort order of `cols` (ascending unless a column is a
    /// sort order such as `col("a").desc()`), into `n` partitions or the session default.
    pub fn repartition_by_range<C: IntoColumn>(
        &self,
        cols: impl IntoIterator<Item = C>,
        n: Option<i32>,
    ) -> Result<DataFrame> {
        let exprs: Vec<pb::Expression> = cols
            .into_iter()
            .map(|c| sort_expr(c.into_column()))
            .collect();
        if exprs.is_empty() {
            return Err(Error::InvalidArgument(
                "repartition_by_range needs at least one column".into(),
            ));
        }
        if let Some(n) = n.filter(|n| *n <= 0) {
            return Err(Error::InvalidArgument(format!(
                "the number of partitions must be positive, got {n}"
            )));
        }
        Ok(self.wrap(RelType::RepartitionByExpression(Box::new(
            pb::RepartitionByExpression {
                input: Some(Box::new(self.plan.clone())),
                partition_exprs: exprs,
                num_partitions: n,
            },
        ))))
    }

    /// The columns whose names match the regular expression `pattern` (`` "`(id|name)`" ``,
    /// quoted in backticks as in Spark), bound to this DataFrame.
    pub fn col_regex(&self, pattern: &str) -> Column {
        Column::from_proto(pb::Expression {
            common: None,
            expr_type: Some(ExprType::UnresolvedRegex(pb::expression::UnresolvedRegex {
                col_name: pattern.to_string(),
                plan_id: self.plan.common.as_ref().and_then(|c| c.plan_id),
            })),
        })
    }

    /// A metadata column of the source (for example `_metadata` of a file source), bound to
    /// this DataFrame.
    pub fn metadata_column(&self, name: &str) -> Column {
        Column::from_proto(pb::Expression {
            common: None,
            expr_type: Some(ExprType::UnresolvedAttribute(
                pb::expression::UnresolvedAttribute {
                    unparsed_identifier: name.to_string(),
                    plan_id: self.plan.common.as_ref().and_then(|c| c.plan_id),
                    is_metadata_column: Some(true),
                },
            )),
        })
    }

    /// Reconciles the DataFrame with `schema`: columns are matched by name and reordered,
    /// cast where Spark allows it, missing nullable columns fail and extra columns are dropped
    /// (Spark's `to`).
    pub fn to(&self, schema: &StructType) -> DataFrame {
        self.wrap(RelType::ToSchema(Box::new(pb::ToSchema {
            input: Some(Box::new(self.plan.clone())),
            schema: Some(schema.to_proto()),
        })))
    }

    /// Sets the metadata of column `name` (a JSON object, such as `{"comment": "..."}`).
    pub fn with_metadata(
        &self,
        name: &str,
        metadata: serde_json::Map<String, serde_json::Value>,
    ) -> DataFrame {
        let mut json = String::new();
        write_python_json(&mut json, &serde_json::Value::Object(metadata));
        self.wrap(RelType::WithColumns(Box::new(pb::WithColumns {
            input: Some(Box::new(self.plan.clone())),
            aliases: vec![pb::expression::Alias {
                expr: Some(Box::new(self.col(name).into_proto())),
                name: vec![name.to_string()],
                metadata: Some(json),
            }],
        })))
    }

    /// Applies `f` to this DataFrame: chains custom transformations fluently.
    ///
    /// ```no_run
    /// # async fn run(spark: sc_client::SparkSession) -> sc_client::Result<()> {
    /// use sc_client::DataFrame;
    /// use sc_client::functions::col;
    /// fn evens(df: &DataFrame) -> DataFrame {
    ///     df.filter((col("id") % 2).eq(0))
    /// }
    /// let df = spark.range(0, 10).transform(evens).limit(3);
    /// # Ok(()) }
    /// ```
    pub fn transform<F>(&self, f: F) -> DataFrame
    where
        F: FnOnce(&DataFrame) -> DataFrame,
    {
        f(self)
    }

    /// The schema as a typed [`StructType`] (asks the server).
    pub async fn struct_type(&self) -> Result<StructType> {
        StructType::from_proto(&self.spark_schema().await?)
    }

    /// Every column's name and type as Spark writes it (`("id", "bigint")`,
    /// `("tags", "array<string>")`).
    pub async fn dtypes(&self) -> Result<Vec<(String, String)>> {
        Ok(self
            .struct_type()
            .await?
            .fields
            .into_iter()
            .map(|f| {
                let t = f.data_type.simple_string();
                (f.name, t)
            })
            .collect())
    }

    // === checkpoints ===

    /// Checkpoints the DataFrame to the server's checkpoint directory (`spark.checkpoint.dir`)
    /// and returns a DataFrame reading the checkpointed data: its plan is cut there. With
    /// `eager`, the data is computed now; otherwise at the first action.
    pub async fn checkpoint(&self, eager: bool) -> Result<DataFrame> {
        self.checkpoint_impl(false, eager, None).await
    }

    /// Checkpoints the DataFrame in the executors' storage (faster, but lost with an executor),
    /// at `storage_level` (Spark's default for local checkpoints when `None`).
    pub async fn local_checkpoint(
        &self,
        eager: bool,
        storage_level: Option<StorageLevel>,
    ) -> Result<DataFrame> {
        self.checkpoint_impl(true, eager, storage_level).await
    }

    async fn checkpoint_impl(
        &self,
        local: bool,
        eager: bool,
        storage_level: Option<StorageLevel>,
    ) -> Result<DataFrame> {
        let responses = self
            .session
            .execute_command(pb::command::CommandType::CheckpointCommand(
                pb::CheckpointCommand {
                    relation: Some(self.plan.clone()),
                    local,
                    eager,
                    storage_level: storage_level.map(StorageLevel::to_proto),
                },
            ))
            .await?;
        let relation = responses
            .into_iter()
            .find_map(|r| match r.response_type {
                Some(pb::execute_plan_response::ResponseType::CheckpointCommandResult(c)) => {
                    c.relation
                }
                _ => None,
            })
            .ok_or_else(|| {
                Error::Protocol("the server answered a checkpoint without its result".into())
            })?;
        let rel = self
            .session
            .relation(RelType::CachedRemoteRelation(relation));
        Ok(DataFrame::new(self.session.clone(), rel))
    }

    /// Frees the server-side data of a DataFrame returned by [`checkpoint`](Self::checkpoint)
    /// or [`local_checkpoint`](Self::local_checkpoint) (the server also frees it when the
    /// session ends). Fails for any other DataFrame.
    pub async fn release_checkpoint(&self) -> Result<()> {
        let Some(RelType::CachedRemoteRelation(r)) = &self.plan.rel_type else {
            return Err(Error::InvalidArgument(
                "release_checkpoint needs a DataFrame returned by checkpoint or local_checkpoint"
                    .into(),
            ));
        };
        self.session
            .execute_command(pb::command::CommandType::RemoveCachedRemoteRelationCommand(
                pb::RemoveCachedRemoteRelationCommand {
                    relation: Some(r.clone()),
                },
            ))
            .await?;
        Ok(())
    }
}
