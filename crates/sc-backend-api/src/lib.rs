//! sc-backend-api
