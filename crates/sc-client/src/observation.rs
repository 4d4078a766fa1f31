//! Observed metrics: [`DataFrame::observe`] with an [`Observation`] (or a name), and the
//! metrics the server sends back in `ExecutePlanResponse.observed_metrics` when an action runs.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, Weak};

use sc_proto::spark::connect as pb;
use sc_proto::spark::connect::expression::literal::LiteralType;
use sc_proto::spark::connect::relation::RelType;
use tokio::sync::watch;

use crate::column::Column;
use crate::dataframe::DataFrame;
use crate::error::{Error, Result, SparkError};

// === MetricValue ===

/// One value of observed metrics, decoded from the literal the server sends.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum MetricValue {
    /// `NULL`.
    Null,
    /// A boolean.
    Boolean(bool),
    /// An integer of any width (`tinyint` to `bigint`).
    Int(i64),
    /// A `float` or `double`.
    Float(f64),
    /// A decimal, as its exact decimal string.
    Decimal(String),
    /// A string.
    String(String),
    /// Bytes.
    Binary(Vec<u8>),
    /// A date, in days since 1970-01-01.
    Date(i32),
    /// A timestamp, in microseconds since the epoch (UTC).
    Timestamp(i64),
    /// A timestamp without time zone, in microseconds since the epoch.
    TimestampNtz(i64),
    /// A time of day, in nanoseconds since midnight.
    Time(i64),
    /// A calendar interval.
    CalendarInterval {
        /// Months.
        months: i32,
        /// Days.
        days: i32,
        /// Microseconds.
        microseconds: i64,
    },
    /// A year-month interval, in months.
    YearMonthInterval(i32),
    /// A day-time interval, in microseconds.
    DayTimeInterval(i64),
    /// An array.
    Array(Vec<MetricValue>),
    /// A map, as key-value pairs in the server's order.
    Map(Vec<(MetricValue, MetricValue)>),
    /// A struct's field values, in order.
    Struct(Vec<MetricValue>),
}

impl MetricValue {
    /// Decodes a literal.
    pub fn from_literal(l: &pb::expression::Literal) -> MetricValue {
        let list =
            |ls: &[pb::expression::Literal]| ls.iter().map(MetricValue::from_literal).collect();
        match &l.literal_type {
            None | Some(LiteralType::Null(_)) => MetricValue::Null,
            Some(LiteralType::Binary(b)) => MetricValue::Binary(b.to_vec()),
            Some(LiteralType::Boolean(b)) => MetricValue::Boolean(*b),
            Some(LiteralType::Byte(v) | LiteralType::Short(v) | LiteralType::Integer(v)) => {
                MetricValue::Int(i64::from(*v))
            }
            Some(LiteralType::Long(v)) => MetricValue::Int(*v),
            Some(LiteralType::Float(v)) => MetricValue::Float(f64::from(*v)),
            Some(LiteralType::Double(v)) => MetricValue::Float(*v),
            Some(LiteralType::Decimal(d)) => MetricValue::Decimal(d.value.clone()),
            Some(LiteralType::String(s)) => MetricValue::String(s.clone()),
            Some(LiteralType::Date(d)) => MetricValue::Date(*d),
            Some(LiteralType::Timestamp(t)) => MetricValue::Timestamp(*t),
            Some(LiteralType::TimestampNtz(t)) => MetricValue::TimestampNtz(*t),
            Some(LiteralType::TimestampLtzNanos(t)) => MetricValue::Timestamp(t.epoch_micros),
            Some(LiteralType::TimestampNtzNanos(t)) => MetricValue::TimestampNtz(t.epoch_micros),
            Some(LiteralType::Time(t)) => MetricValue::Time(t.nano),
            Some(LiteralType::CalendarInterval(i)) => MetricValue::CalendarInterval {
                months: i.months,
                days: i.days,
                microseconds: i.microseconds,
            },
            Some(LiteralType::YearMonthInterval(m)) => MetricValue::YearMonthInterval(*m),
            Some(LiteralType::DayTimeInterval(m)) => MetricValue::DayTimeInterval(*m),
            Some(LiteralType::Array(a)) => MetricValue::Array(list(&a.elements)),
            Some(LiteralType::Struct(s)) => MetricValue::Struct(list(&s.elements)),
            Some(LiteralType::Map(m)) => MetricValue::Map(
                m.keys
                    .iter()
                    .zip(&m.values)
                    .map(|(k, v)| (MetricValue::from_literal(k), MetricValue::from_literal(v)))
                    .collect(),
            ),
            Some(LiteralType::SpecializedArray(a)) => {
                use pb::expression::literal::specialized_array::ValueType as V;
                MetricValue::Array(match &a.value_type {
                    None => vec![],
                    Some(V::Bools(b)) => {
                        b.values.iter().map(|v| MetricValue::Boolean(*v)).collect()
                    }
                    Some(V::Ints(b)) => b
                        .values
                        .iter()
                        .map(|v| MetricValue::Int(i64::from(*v)))
                        .collect(),
                    Some(V::Longs(b)) => b.values.iter().map(|v| MetricValue::Int(*v)).collect(),
                    Some(V::Floats(b)) => b
                        .values
                        .iter()
                        .map(|v| MetricValue::Float(f64::from(*v)))
                        .collect(),
                    Some(V::Doubles(b)) => {
                        b.values.iter().map(|v| MetricValue::Float(*v)).collect()
                    }
                    Some(V::Strings(b)) => b
                        .values
                        .iter()
                        .map(|v| MetricValue::String(v.clone()))
                        .collect(),
                })
            }
        }
    }

    /// Whether the value is `NULL`.
    pub fn is_null(&self) -> bool {
        matches!(self, MetricValue::Null)
    }

    /// The value as an integer, if it is one.
    pub fn as_i64(&self) -> Option<i64> {
        match self {
            MetricValue::Int(v) => Some(*v),
            _ => None,
        }
    }

    /// The value as a float; integers and decimals convert.
    pub fn as_f64(&self) -> Option<f64> {
        match self {
            MetricValue::Float(v) => Some(*v),
            MetricValue::Int(v) => Some(*v as f64),
            MetricValue::Decimal(d) => d.parse().ok(),
            _ => None,
        }
    }

    /// The value as a string slice, for strings and decimals.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            MetricValue::String(s) | MetricValue::Decimal(s) => Some(s),
            _ => None,
        }
    }

    /// The value as a boolean, if it is one.
    pub fn as_bool(&self) -> Option<bool> {
        match self {
            MetricValue::Boolean(b) => Some(*b),
            _ => None,
        }
    }
}

// === ObservedMetrics ===

/// The metrics of one observation, as one execution reported them.
#[derive(Debug, Clone, PartialEq)]
pub struct ObservedMetrics {
    /// The observation's name.
    pub name: String,
    /// The plan id of the observed DataFrame.
    pub plan_id: i64,
    /// The metric names (the expressions' aliases), in order.
    pub keys: Vec<String>,
    /// The metric values, in the order of `keys`.
    pub values: Vec<MetricValue>,
    /// The error Spark met while collecting the metrics, if any.
    pub error: Option<SparkError>,
}

impl ObservedMetrics {
    /// Decodes the metrics of an ExecutePlan response.
    pub fn from_proto(m: &pb::execute_plan_response::ObservedMetrics) -> Self {
        let error = m.root_error_idx.map(|idx| {
            let mut e = SparkError {
                grpc_code: tonic::Code::Internal,
                exception_class: String::new(),
                exception_classes: vec![],
                error_class: None,
                sql_state: None,
                message_parameters: Default::default(),
                message: format!("collecting the observed metrics '{}' failed", m.name),
                error_id: None,
                stack_trace: vec![],
                causes: vec![],
            };
            e.apply_details(&pb::FetchErrorDetailsResponse {
                server_side_session_id: String::new(),
                session_id: String::new(),
                root_error_idx: Some(idx),
                errors: m.errors.clone(),
            });
            e
        });
        Self {
            name: m.name.clone(),
            plan_id: m.plan_id,
            keys: m.keys.clone(),
            values: m.values.iter().map(MetricValue::from_literal).collect(),
            error,
        }
    }

    /// The value of the metric `key`.
    pub fn get(&self, key: &str) -> Option<&MetricValue> {
        self.keys
            .iter()
            .position(|k| k == key)
            .and_then(|i| self.values.get(i))
    }

    /// `(name, value)` pairs, in order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &MetricValue)> {
        self.keys.iter().map(String::as_str).zip(&self.values)
    }

    /// The number of metrics.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// Whether there are no metrics.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }
}

// === Observation ===

#[derive(Debug)]
struct ObservationState {
    name: String,
    attached: AtomicBool,
    result: watch::Sender<Option<ObservedMetrics>>,
}

/// A named set of metrics computed while a DataFrame runs, as PySpark's `Observation`.
///
/// Attach it with [`DataFrame::observe`]; when an action (`collect`, `count`, a write, ...) runs
/// the observed DataFrame, the server sends the metrics and they become readable here.
///
/// ```no_run
/// # async fn run(spark: sc_client::SparkSession) -> sc_client::Result<()> {
/// use sc_client::Observation;
/// use sc_client::functions::{col, count, lit, max};
/// let obs = Observation::new("stats");
/// let df = spark
///     .range(0, 100)
///     .observe(&obs, [count(lit(1)).alias("rows"), max("id").alias("top")])?;
/// df.collect().await?;
/// let m = obs.get()?;
/// assert_eq!(m.get("rows").and_then(|v| v.as_i64()), Some(100));
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct Observation {
    inner: Arc<ObservationState>,
}

impl Observation {
    /// An observation named `name` (names must be unique among the observations of one query).
    pub fn new(name: impl Into<String>) -> Self {
        let (tx, _) = watch::channel(None);
        Self {
            inner: Arc::new(ObservationState {
                name: name.into(),
                attached: AtomicBool::new(false),
                result: tx,
            }),
        }
    }

    /// An observation with a random unique name.
    pub fn unnamed() -> Self {
        Self::new(uuid::Uuid::new_v4().to_string())
    }

    /// The observation's name.
    pub fn name(&self) -> &str {
        &self.inner.name
    }

    /// The metrics of the last execution of the observed DataFrame.
    ///
    /// Fails when no action has run it yet (PySpark's `NO_OBSERVE_BEFORE_GET`), or with the
    /// error Spark met while collecting the metrics.
    pub fn get(&self) -> Result<ObservedMetrics> {
        let Some(m) = self.inner.result.borrow().clone() else {
            return Err(Error::InvalidArgument(format!(
                "observation '{}' has no metrics yet: run an action on the observed DataFrame first",
                self.inner.name
            )));
        };
        match m.error {
            Some(e) => Err(Error::Spark(Box::new(e))),
            None => Ok(m),
        }
    }

    /// Waits until an execution of the observed DataFrame has reported the metrics, then returns
    /// them as [`get`](Self::get) does.
    pub async fn wait(&self) -> Result<ObservedMetrics> {
        let mut rx = self.inner.result.subscribe();
        // The sender lives as long as `self`, so waiting cannot fail for a closed channel.
        let _ = rx.wait_for(Option::is_some).await;
        self.get()
    }
}

/// The observations of one session waiting for metrics, by name.
#[derive(Debug, Default)]
pub(crate) struct Observations {
    by_name: Mutex<HashMap<String, Weak<ObservationState>>>,
}

impl Observations {
    fn register(&self, o: &Observation) {
        if let Ok(mut m) = self.by_name.lock() {
            m.retain(|_, w| w.strong_count() > 0);
            m.insert(o.inner.name.clone(), Arc::downgrade(&o.inner));
        }
    }

    /// Hands the metrics of a response to the observations waiting for them.
    pub(crate) fn deliver(&self, metrics: &[pb::execute_plan_response::ObservedMetrics]) {
        let Ok(m) = self.by_name.lock() else {
            return;
        };
        for om in metrics {
            if let Some(state) = m.get(&om.name).and_then(Weak::upgrade) {
                state
                    .result
                    .send_replace(Some(ObservedMetrics::from_proto(om)));
            }
        }
    }
}

// === impl DataFrame ===

fn metric_exprs(exprs: impl IntoIterator<Item = Column>) -> Result<Vec<Column>> {
    let exprs: Vec<Column> = exprs.into_iter().collect();
    if exprs.is_empty() {
        return Err(Error::InvalidArgument(
            "observe needs at least one metric expression".into(),
        ));
    }
    Ok(exprs)
}

impl DataFrame {
    /// Computes the aggregate `exprs` (named with [`Column::alias`]) over the rows as they pass
    /// while an action runs this DataFrame, and hands them to `observation`.
    ///
    /// Fails when `exprs` is empty, the observation's name is empty, or the observation was
    /// already attached to a DataFrame.
    pub fn observe(
        &self,
        observation: &Observation,
        exprs: impl IntoIterator<Item = Column>,
    ) -> Result<DataFrame> {
        let exprs = metric_exprs(exprs)?;
        if observation.name().is_empty() {
            return Err(Error::InvalidArgument(
                "an observation needs a non-empty name (or use Observation::unnamed)".into(),
            ));
        }
        if observation.inner.attached.swap(true, Ordering::AcqRel) {
            return Err(Error::InvalidArgument(format!(
                "observation '{}' is already attached to a DataFrame; use a new Observation",
                observation.name()
            )));
        }
        self.session
            .client
            .shared
            .observations
            .register(observation);
        Ok(self.collect_metrics(observation.name(), exprs))
    }

    /// Like [`observe`](Self::observe) with a plain name: the metrics arrive with the result and
    /// are read from [`BatchStream::observed_metrics`](crate::BatchStream::observed_metrics).
    pub fn observe_named(
        &self,
        name: &str,
        exprs: impl IntoIterator<Item = Column>,
    ) -> Result<DataFrame> {
        Ok(self.collect_metrics(name, metric_exprs(exprs)?))
    }

    fn collect_metrics(&self, name: &str, exprs: Vec<Column>) -> DataFrame {
        self.wrap(RelType::CollectMetrics(Box::new(pb::CollectMetrics {
            input: Some(Box::new(self.plan.clone())),
            name: name.to_string(),
            metrics: exprs.into_iter().map(Column::into_proto).collect(),
        })))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn lit(t: LiteralType) -> pb::expression::Literal {
        pb::expression::Literal {
            literal_type: Some(t),
            data_type: None,
        }
    }

    #[test]
    fn decodes_metrics() {
        let m = pb::execute_plan_response::ObservedMetrics {
            name: "m".into(),
            values: vec![
                lit(LiteralType::Long(100)),
                lit(LiteralType::Double(2.5)),
                lit(LiteralType::String("x".into())),
            ],
            keys: vec!["n".into(), "avg".into(), "s".into()],
            plan_id: 3,
            root_error_idx: None,
            errors: vec![],
        };
        let o = ObservedMetrics::from_proto(&m);
        assert_eq!(o.get("n").and_then(MetricValue::as_i64), Some(100));
        assert_eq!(o.get("avg").and_then(MetricValue::as_f64), Some(2.5));
        assert_eq!(o.get("s").and_then(MetricValue::as_str), Some("x"));
        assert!(o.get("nope").is_none());
        assert!(o.error.is_none());
    }

    #[test]
    fn observation_gets_delivered_metrics() {
        let reg = Observations::default();
        let obs = Observation::new("m");
        assert!(obs.get().is_err());
        reg.register(&obs);
        reg.deliver(&[pb::execute_plan_response::ObservedMetrics {
            name: "m".into(),
            values: vec![lit(LiteralType::Integer(7))],
            keys: vec!["n".into()],
            plan_id: 0,
            root_error_idx: None,
            errors: vec![],
        }]);
        assert_eq!(obs.get().unwrap().get("n"), Some(&MetricValue::Int(7)));
    }

    #[tokio::test]
    async fn observe_refuses_bad_arguments() {
        let spark = crate::SparkSession::builder()
            .remote("sc://127.0.0.1:1")
            .build()
            .await
            .unwrap();
        let df = spark.range(0, 1);
        let one = || [crate::functions::lit(1).alias("one")];
        assert!(df.observe(&Observation::new(""), one()).is_err());
        assert!(
            df.observe(&Observation::unnamed(), Vec::<Column>::new())
                .is_err()
        );
        assert!(df.observe_named("m", Vec::<Column>::new()).is_err());
        let obs = Observation::unnamed();
        assert!(df.observe(&obs, one()).is_ok());
        assert!(df.observe(&obs, one()).is_err(), "attached twice");
    }

    #[test]
    fn metric_errors_surface() {
        let reg = Observations::default();
        let obs = Observation::new("bad");
        reg.register(&obs);
        reg.deliver(&[pb::execute_plan_response::ObservedMetrics {
            name: "bad".into(),
            values: vec![],
            keys: vec![],
            plan_id: 0,
            root_error_idx: Some(0),
            errors: vec![pb::fetch_error_details_response::Error {
                error_type_hierarchy: vec!["org.apache.spark.SparkException".into()],
                message: "division by zero".into(),
                ..Default::default()
            }],
        }]);
        let err = obs.get().unwrap_err();
        assert!(err.to_string().contains("division by zero"), "{err}");
    }
}
