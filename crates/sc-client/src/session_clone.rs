//! [`SparkSession::new_session`] and [`SparkSession::clone_session`]: more sessions on the same
//! connection, empty or copied from this one on the server (CloneSession, Spark 4.1+).

use crate::error::{Error, Result};
use crate::session::SparkSession;

impl SparkSession {
    /// A new, independent session on the same connection (same server, settings and headers)
    /// with a fresh session id: it shares no temporary views, configuration or cache with this
    /// one. The server creates it on its first call.
    ///
    /// ```no_run
    /// # async fn run(spark: sc_client::SparkSession) -> sc_client::Result<()> {
    /// spark.range(0, 3).create_or_replace_temp_view("v").await?;
    /// let other = spark.new_session();
    /// assert!(!other.catalog().table_exists("v").await?);
    /// # Ok(()) }
    /// ```
    pub fn new_session(&self) -> SparkSession {
        self.sibling(uuid::Uuid::new_v4())
    }

    /// A copy of this session made by the server (the CloneSession call of Spark 4.1+): the new
    /// session starts with this one's SQL configuration, temporary views, registered functions
    /// and current catalog and database, then the two evolve independently. `new_session_id`
    /// (a UUID) names the copy; a random one when `None`. The request always names the copy, so
    /// a gateway in front of several servers (this project's proxy) can route the copy to the
    /// server that holds it.
    ///
    /// A server older than 4.1 answers `UNIMPLEMENTED`, returned as [`Error::Rpc`].
    pub async fn clone_session(&self, new_session_id: Option<&str>) -> Result<SparkSession> {
        let want = match new_session_id {
            Some(id) => uuid::Uuid::parse_str(id).map_err(|_| {
                Error::InvalidArgument(format!("the new session id must be a UUID, got '{id}'"))
            })?,
            None => uuid::Uuid::new_v4(),
        };
        let resp = self
            .client
            .clone_session(Some(want.to_string()))
            .await
            .map_err(|e| match e {
                Error::Rpc {
                    code: tonic::Code::Unimplemented,
                    message,
                } => Error::Rpc {
                    code: tonic::Code::Unimplemented,
                    message: format!(
                        "the server does not support CloneSession (Spark 4.1 or later needed): {message}"
                    ),
                },
                other => other,
            })?;
        let id = uuid::Uuid::parse_str(&resp.new_session_id).map_err(|_| {
            Error::Protocol(format!(
                "CloneSession returned a session id that is not a UUID: '{}'",
                resp.new_session_id
            ))
        })?;
        if want != id {
            return Err(Error::Protocol(format!(
                "CloneSession returned session {id}, not the requested {want}"
            )));
        }
        Ok(self.sibling(id))
    }
}
