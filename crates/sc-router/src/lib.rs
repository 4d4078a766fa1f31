//! sc-router
