//! Typed errors: the server maps them to HTTP statuses and `Refused` reasons,
//! so each failure the caller can act on has its own variant.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot create data directory {path}: {source}")]
    DataDir {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot open database {path}: {source}")]
    Open {
        path: PathBuf,
        source: rusqlite::Error,
    },
    #[error("database error: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error(
        "database schema version {found} is newer than this collector understands \
         ({supported}); run a newer collector or restore a backup"
    )]
    SchemaTooNew { found: i64, supported: i64 },
    #[error("a writer is already open on this store (only one may exist)")]
    WriterInUse,
    #[error("unknown agency {0:?}")]
    UnknownAgency(String),
    #[error("unknown node {0:?}")]
    UnknownNode(String),
    #[error("invalid {what} {value:?}: {reason}")]
    Invalid {
        what: &'static str,
        value: String,
        reason: &'static str,
    },
    /// A stored value that this code could not have written.
    #[error("corrupt row in {table}: {detail}")]
    Corrupt { table: &'static str, detail: String },
    #[error("stored value of an unexpected type: {0}")]
    Type(#[from] rusqlite::types::FromSqlError),
    #[error("cannot encode health as JSON: {0}")]
    Json(#[from] serde_json::Error),
    /// The PostgreSQL control store (`store/postgres`) failed or refused.
    #[error("PostgreSQL: {0}")]
    Postgres(String),
    /// The ClickHouse flow store (`store/clickhouse`) failed or refused.
    #[error("ClickHouse at {url}: {detail}")]
    ClickHouse { url: String, detail: String },
}

/// Why an agent's enrollment or login was refused. The `Display` text is sent
/// to the agent as the `Refused` reason, so it says what the operator must fix.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("unknown enrollment token")]
    UnknownToken,
    #[error("enrollment token already used; ask the NOC for a new one")]
    TokenUsed,
    #[error("enrollment token expired; ask the NOC for a new one")]
    TokenExpired,
    #[error("enrollment token was issued for another node id")]
    TokenForOtherNode,
    #[error("unknown node id {0:?}; enroll it first")]
    UnknownNode(String),
    #[error("node {0:?} is revoked")]
    Revoked(String),
    #[error("wrong credential for node {0:?}")]
    BadCredential(String),
    /// Not the agent's fault: the server should close without blaming it.
    #[error("storage failure: {0}")]
    Store(#[from] StoreError),
}

impl From<rusqlite::Error> for AuthError {
    fn from(e: rusqlite::Error) -> Self {
        AuthError::Store(StoreError::Sqlite(e))
    }
}
