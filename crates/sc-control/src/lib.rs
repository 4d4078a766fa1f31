//! sc-control
