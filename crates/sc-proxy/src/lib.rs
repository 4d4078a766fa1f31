//! sc-proxy
