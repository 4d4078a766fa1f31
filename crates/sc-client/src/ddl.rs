//! DDL strings and typed schemas converted into each other by the server (PySpark's
//! `_parse_ddl` and `_to_ddl`): [`SparkSession::parse_ddl`] and [`SparkSession::to_ddl`].

use sc_proto::spark::connect as pb;
use sc_proto::spark::connect::analyze_plan_request::Analyze;
use sc_proto::spark::connect::analyze_plan_response::Result as Answer;

use crate::error::{Error, Result};
use crate::session::SparkSession;
use crate::types::{DataType, StructType};

impl SparkSession {
    /// The data type a DDL string stands for, parsed by the server: a schema
    /// (`"a INT, b STRING"` is a struct) or a single type (`"array<int>"`).
    ///
    /// ```no_run
    /// # async fn run(spark: sc_client::SparkSession) -> sc_client::Result<()> {
    /// use sc_client::types::DataType;
    /// let t = spark.parse_ddl("id BIGINT NOT NULL, tags ARRAY<STRING>").await?;
    /// assert!(matches!(t, DataType::Struct(_)));
    /// # Ok(()) }
    /// ```
    pub async fn parse_ddl(&self, ddl: &str) -> Result<DataType> {
        match self
            .client
            .analyze(Analyze::DdlParse(pb::analyze_plan_request::DdlParse {
                ddl_string: ddl.to_string(),
            }))
            .await?
        {
            Answer::DdlParse(p) => DataType::from_proto(
                p.parsed
                    .as_ref()
                    .ok_or_else(|| Error::Protocol("DDLParse returned no type".into()))?,
            ),
            other => Err(Error::Protocol(format!(
                "expected a parsed DDL type, got {other:?}"
            ))),
        }
    }

    /// The DDL string of a schema (`"id BIGINT NOT NULL,name STRING"`), written by the server.
    pub async fn to_ddl(&self, schema: &StructType) -> Result<String> {
        match self
            .client
            .analyze(Analyze::JsonToDdl(pb::analyze_plan_request::JsonToDdl {
                json_string: schema.json(),
            }))
            .await?
        {
            Answer::JsonToDdl(d) => Ok(d.ddl_string),
            other => Err(Error::Protocol(format!(
                "expected a DDL string, got {other:?}"
            ))),
        }
    }
}
