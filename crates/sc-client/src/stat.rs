//! DataFrame statistics (`df.stat()`, PySpark's `DataFrameStatFunctions`): covariance,
//! correlation, approximate quantiles, contingency tables, frequent items and stratified
//! sampling.

use arrow_array::{Array, Float64Array, ListArray, RecordBatch};
use sc_proto::spark::connect as pb;
use sc_proto::spark::connect::relation::RelType;

use crate::column::{IntoColumn, IntoExpr};
use crate::dataframe::DataFrame;
use crate::error::{Error, Result};

/// Statistics functions of a DataFrame (`df.stat()`).
///
/// ```no_run
/// # async fn run(spark: sc_client::SparkSession) -> sc_client::Result<()> {
/// let df = spark.sql("select id, id * 2 as twice from range(100)").await?;
/// let c = df.stat().corr("id", "twice", None).await?;
/// assert!((c - 1.0).abs() < 1e-9);
/// let median = df.stat().approx_quantile(["id"], &[0.5], 0.0).await?;
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct DataFrameStatFunctions {
    df: DataFrame,
}

fn first_f64(batch: &RecordBatch, what: &str) -> Result<f64> {
    let col = batch
        .columns()
        .first()
        .filter(|c| !c.is_empty())
        .ok_or_else(|| Error::Protocol(format!("{what} returned no value")))?;
    let col = arrow_cast::cast(col, &arrow_schema::DataType::Float64)?;
    let values = col
        .as_any()
        .downcast_ref::<Float64Array>()
        .ok_or_else(|| Error::Protocol(format!("{what} returned a non-numeric value")))?;
    // Spark answers NULL where PySpark would give None (e.g. too few rows): NaN here.
    Ok(if values.is_null(0) {
        f64::NAN
    } else {
        values.value(0)
    })
}

fn parse_quantiles(batch: &RecordBatch) -> Result<Vec<Vec<f64>>> {
    let bad = || Error::Protocol("approx_quantile returned an unexpected result".into());
    let outer = batch
        .columns()
        .first()
        .and_then(|c| c.as_any().downcast_ref::<ListArray>())
        .filter(|c| !c.is_empty())
        .ok_or_else(bad)?;
    let per_col = outer.value(0);
    let per_col = per_col
        .as_any()
        .downcast_ref::<ListArray>()
        .ok_or_else(bad)?;
    let mut out = Vec::with_capacity(per_col.len());
    for i in 0..per_col.len() {
        let qs = per_col.value(i);
        let qs = arrow_cast::cast(&qs, &arrow_schema::DataType::Float64)?;
        let qs = qs.as_any().downcast_ref::<Float64Array>().ok_or_else(bad)?;
        out.push(
            (0..qs.len())
                .map(|j| if qs.is_null(j) { f64::NAN } else { qs.value(j) })
                .collect(),
        );
    }
    Ok(out)
}

impl DataFrameStatFunctions {
    fn input(&self) -> Option<Box<pb::Relation>> {
        Some(Box::new(self.df.plan.clone()))
    }

    /// Runs a statistic whose result is one number.
    async fn number(&self, rel: RelType, what: &str) -> Result<f64> {
        let batch = self.df.wrap(rel).collect_batch().await?;
        first_f64(&batch, what)
    }

    /// The sample covariance of two numeric columns.
    pub async fn cov(&self, col1: &str, col2: &str) -> Result<f64> {
        let rel = RelType::Cov(Box::new(pb::StatCov {
            input: self.input(),
            col1: col1.to_string(),
            col2: col2.to_string(),
        }));
        self.number(rel, "cov").await
    }

    /// The correlation coefficient of two numeric columns. `method` is `pearson` (the default
    /// and, as in PySpark, the only one supported).
    pub async fn corr(&self, col1: &str, col2: &str, method: Option<&str>) -> Result<f64> {
        let method = method.filter(|m| !m.is_empty()).unwrap_or("pearson");
        if method != "pearson" {
            return Err(Error::InvalidArgument(format!(
                "correlation method '{method}' is not supported; only 'pearson' is"
            )));
        }
        let rel = RelType::Corr(Box::new(pb::StatCorr {
            input: self.input(),
            col1: col1.to_string(),
            col2: col2.to_string(),
            method: Some(method.to_string()),
        }));
        self.number(rel, "corr").await
    }

    /// Approximate quantiles of numeric columns: for each column, the value at each
    /// probability (in `[0, 1]`), within `relative_error` (0 computes exact quantiles, at a
    /// higher cost). One vector per column, in the order given.
    pub async fn approx_quantile<'a>(
        &self,
        cols: impl IntoIterator<Item = &'a str>,
        probabilities: &[f64],
        relative_error: f64,
    ) -> Result<Vec<Vec<f64>>> {
        if let Some(p) = probabilities.iter().find(|p| !(0.0..=1.0).contains(*p)) {
            return Err(Error::InvalidArgument(format!(
                "probability {p} is outside [0, 1]"
            )));
        }
        if relative_error.is_nan() || relative_error < 0.0 {
            return Err(Error::InvalidArgument(format!(
                "relative_error must be 0 or more, got {relative_error}"
            )));
        }
        let batch = self
            .df
            .wrap(RelType::ApproxQuantile(Box::new(pb::StatApproxQuantile {
                input: self.input(),
                cols: cols.into_iter().map(str::to_string).collect(),
                probabilities: probabilities.to_vec(),
                relative_error,
            })))
            .collect_batch()
            .await?;
        parse_quantiles(&batch)
    }

    /// The contingency table of two columns: one row per distinct value of `col1` (in a column
    /// named `col1_col2`), one column per distinct value of `col2`, cells holding pair counts.
    pub fn crosstab(&self, col1: &str, col2: &str) -> DataFrame {
        self.df.wrap(RelType::Crosstab(Box::new(pb::StatCrosstab {
            input: self.input(),
            col1: col1.to_string(),
            col2: col2.to_string(),
        })))
    }

    /// Frequent items of columns (possibly with false positives): items that appear in more
    /// than `support` of the rows (0.01 when `None`), in a `{col}_freqItems` array column each.
    pub fn freq_items<'a>(
        &self,
        cols: impl IntoIterator<Item = &'a str>,
        support: Option<f64>,
    ) -> DataFrame {
        self.df.wrap(RelType::FreqItems(Box::new(pb::StatFreqItems {
            input: self.input(),
            cols: cols.into_iter().map(str::to_string).collect(),
            support: Some(support.filter(|s| *s != 0.0).unwrap_or(0.01)),
        })))
    }

    /// A stratified sample without replacement: rows whose `col` equals a stratum are kept with
    /// that stratum's fraction (strata not listed are dropped). A random seed when `None`.
    ///
    /// Strata must be literal values (numbers or strings).
    pub fn sample_by<K: IntoExpr>(
        &self,
        col: impl IntoColumn,
        fractions: impl IntoIterator<Item = (K, f64)>,
        seed: Option<i64>,
    ) -> Result<DataFrame> {
        let mut fs = Vec::new();
        for (k, fraction) in fractions {
            let stratum = match k.into_expr().into_proto().expr_type {
                Some(pb::expression::ExprType::Literal(l)) => l,
                _ => {
                    return Err(Error::InvalidArgument(
                        "sample_by strata must be literal values".into(),
                    ));
                }
            };
            if !(0.0..=1.0).contains(&fraction) {
                return Err(Error::InvalidArgument(format!(
                    "sample_by fraction {fraction} is outside [0, 1]"
                )));
            }
            fs.push(pb::stat_sample_by::Fraction {
                stratum: Some(stratum),
                fraction,
            });
        }
        let seed = seed.unwrap_or_else(|| (uuid::Uuid::new_v4().as_u128() as i64) & i64::MAX);
        Ok(self.df.wrap(RelType::SampleBy(Box::new(pb::StatSampleBy {
            input: self.input(),
            col: Some(col.into_column().into_proto()),
            fractions: fs,
            seed: Some(seed),
        }))))
    }
}

// === impl DataFrame ===

impl DataFrame {
    /// Statistics functions: [`cov`](DataFrameStatFunctions::cov),
    /// [`corr`](DataFrameStatFunctions::corr), [`approx_quantile`](DataFrameStatFunctions::approx_quantile),
    /// [`crosstab`](DataFrameStatFunctions::crosstab), [`freq_items`](DataFrameStatFunctions::freq_items),
    /// [`sample_by`](DataFrameStatFunctions::sample_by).
    pub fn stat(&self) -> DataFrameStatFunctions {
        DataFrameStatFunctions { df: self.clone() }
    }

    /// Same as [`DataFrameStatFunctions::cov`].
    pub async fn cov(&self, col1: &str, col2: &str) -> Result<f64> {
        self.stat().cov(col1, col2).await
    }

    /// Same as [`DataFrameStatFunctions::corr`].
    pub async fn corr(&self, col1: &str, col2: &str, method: Option<&str>) -> Result<f64> {
        self.stat().corr(col1, col2, method).await
    }

    /// Same as [`DataFrameStatFunctions::approx_quantile`].
    pub async fn approx_quantile<'a>(
        &self,
        cols: impl IntoIterator<Item = &'a str>,
        probabilities: &[f64],
        relative_error: f64,
    ) -> Result<Vec<Vec<f64>>> {
        self.stat()
            .approx_quantile(cols, probabilities, relative_error)
            .await
    }

    /// Same as [`DataFrameStatFunctions::crosstab`].
    pub fn crosstab(&self, col1: &str, col2: &str) -> DataFrame {
        self.stat().crosstab(col1, col2)
    }

    /// Same as [`DataFrameStatFunctions::freq_items`].
    pub fn freq_items<'a>(
        &self,
        cols: impl IntoIterator<Item = &'a str>,
        support: Option<f64>,
    ) -> DataFrame {
        self.stat().freq_items(cols, support)
    }

    /// Same as [`DataFrameStatFunctions::sample_by`].
    pub fn sample_by<K: IntoExpr>(
        &self,
        col: impl IntoColumn,
        fractions: impl IntoIterator<Item = (K, f64)>,
        seed: Option<i64>,
    ) -> Result<DataFrame> {
        self.stat().sample_by(col, fractions, seed)
    }
}
