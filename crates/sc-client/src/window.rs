//! Window specifications: partitioning, ordering and frames for window functions.

use sc_proto::spark::connect as pb;
use sc_proto::spark::connect::expression::window::{WindowFrame, window_frame};
use sc_proto::spark::connect::expression::{self as ex, ExprType};

use crate::column::{Column, IntoColumn};

/// Window frame boundary helpers and the entry point to build a [`WindowSpec`].
///
/// ```
/// use sc_client::functions::{col, row_number, sum};
/// use sc_client::Window;
/// let w = Window::partition_by(["dept"]).order_by([col("salary").desc()]);
/// let ranked = row_number().over(&w);
/// let running = sum("salary").over(w.clone().rows_between(Window::UNBOUNDED_PRECEDING, Window::CURRENT_ROW));
/// # let _ = (ranked, running);
/// ```
#[derive(Debug, Clone, Copy)]
pub struct Window;

impl Window {
    /// The frame starts at the partition's first row.
    pub const UNBOUNDED_PRECEDING: i64 = i64::MIN;
    /// The frame ends at the partition's last row.
    pub const UNBOUNDED_FOLLOWING: i64 = i64::MAX;
    /// The current row.
    pub const CURRENT_ROW: i64 = 0;

    /// A window partitioned by `cols`.
    pub fn partition_by<C: IntoColumn>(cols: impl IntoIterator<Item = C>) -> WindowSpec {
        WindowSpec::default().partition_by(cols)
    }

    /// A window ordered by `cols` (plain columns sort ascending).
    pub fn order_by<C: IntoColumn>(cols: impl IntoIterator<Item = C>) -> WindowSpec {
        WindowSpec::default().order_by(cols)
    }

    /// A window with a row frame.
    pub fn rows_between(start: i64, end: i64) -> WindowSpec {
        WindowSpec::default().rows_between(start, end)
    }

    /// A window with a range frame.
    pub fn range_between(start: i64, end: i64) -> WindowSpec {
        WindowSpec::default().range_between(start, end)
    }
}

/// A window: partitioning, ordering and an optional frame.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct WindowSpec {
    partition: Vec<pb::Expression>,
    order: Vec<ex::SortOrder>,
    frame: Option<(bool, i64, i64)>,
}

const PRECEDING_THRESHOLD: i64 = -i64::MAX;

impl WindowSpec {
    /// Sets the partitioning columns.
    pub fn partition_by<C: IntoColumn>(mut self, cols: impl IntoIterator<Item = C>) -> Self {
        self.partition = cols.into_iter().map(|c| c.into_column().expr).collect();
        self
    }

    /// Sets the ordering; plain columns sort ascending with nulls first.
    pub fn order_by<C: IntoColumn>(mut self, cols: impl IntoIterator<Item = C>) -> Self {
        self.order = cols
            .into_iter()
            .map(|c| c.into_column().into_sort_order())
            .collect();
        self
    }

    /// A frame of rows relative to the current one (negative is before); use
    /// [`Window::UNBOUNDED_PRECEDING`], [`Window::CURRENT_ROW`] and
    /// [`Window::UNBOUNDED_FOLLOWING`] for the edges.
    pub fn rows_between(mut self, start: i64, end: i64) -> Self {
        self.frame = Some((true, clamp_start(start), clamp_end(end)));
        self
    }

    /// A frame of values of the ordering column relative to the current row's.
    pub fn range_between(mut self, start: i64, end: i64) -> Self {
        self.frame = Some((false, clamp_start(start), clamp_end(end)));
        self
    }

    pub(crate) fn apply(&self, function: Column) -> Column {
        let frame_spec = self.frame.map(|(rows, start, end)| {
            let bound = |v: i64, unbounded_at: i64| {
                let b = if v == 0 {
                    window_frame::frame_boundary::Boundary::CurrentRow(true)
                } else if v == unbounded_at {
                    window_frame::frame_boundary::Boundary::Unbounded(true)
                } else {
                    let lit = if rows {
                        // Row offsets are ints in Spark; out-of-range values are clamped.
                        ex::literal::LiteralType::Integer(
                            v.clamp(i64::from(i32::MIN), i64::from(i32::MAX)) as i32,
                        )
                    } else {
                        ex::literal::LiteralType::Long(v)
                    };
                    window_frame::frame_boundary::Boundary::Value(Box::new(pb::Expression {
                        common: None,
                        expr_type: Some(ExprType::Literal(ex::Literal {
                            data_type: None,
                            literal_type: Some(lit),
                        })),
                    }))
                };
                Box::new(window_frame::FrameBoundary { boundary: Some(b) })
            };
            Box::new(WindowFrame {
                frame_type: if rows {
                    window_frame::FrameType::Row as i32
                } else {
                    window_frame::FrameType::Range as i32
                },
                lower: Some(bound(start, i64::MIN)),
                upper: Some(bound(end, i64::MAX)),
            })
        });
        Column::from_proto(pb::Expression {
            common: None,
            expr_type: Some(ExprType::Window(Box::new(ex::Window {
                window_function: Some(Box::new(function.expr)),
                partition_spec: self.partition.clone(),
                order_spec: self.order.clone(),
                frame_spec,
            }))),
        })
    }
}

fn clamp_start(v: i64) -> i64 {
    if v <= PRECEDING_THRESHOLD {
        i64::MIN
    } else {
        v
    }
}

fn clamp_end(v: i64) -> i64 {
    v
}
