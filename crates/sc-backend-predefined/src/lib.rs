//! sc-backend-predefined
