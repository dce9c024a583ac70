//! SQLite statements run on the connection's own handle, on the calling thread.
//!
//! sqlx keeps each SQLite connection on a thread of its own and hands every statement to it
//! and back: two thread wake-ups per statement, most of what a short statement costs. A hot
//! transaction of many statements locks the handle once and runs them here with `rusqlite`
//! on the same libsqlite3, the same connection and the same open transaction, so it pays for
//! one hand-off instead of one per statement.

use std::borrow::Cow;
use std::fmt;

use rusqlite::ffi;
use sqlx::error::{DatabaseError, ErrorKind};
use sqlx::sqlite::SqliteConnection;

/// Runs `work` on `conn`'s handle, inside whatever transaction `conn` has open.
///
/// The work blocks the calling thread. That is meant for statements that take microseconds
/// on the single writer connection, which no other connection of this process competes
/// with; a lock held by another process would be waited for here, up to the busy timeout.
pub async fn on_handle<R>(
    conn: &mut SqliteConnection,
    work: impl FnOnce(&rusqlite::Connection) -> rusqlite::Result<R>,
) -> Result<R, sqlx::Error> {
    let mut locked = conn.lock_handle().await?;
    // SAFETY: `locked` keeps sqlx's worker thread off the handle until it is dropped, and
    // the rusqlite connection made from it neither closes the handle (it does not own it)
    // nor outlives `locked`: it is dropped, with any statements it prepared, first.
    let raw = unsafe { rusqlite::Connection::from_handle(locked.as_raw_handle().as_ptr()) }
        .map_err(into_sqlx)?;
    let out = work(&raw).map_err(into_sqlx);
    drop(raw);
    drop(locked);
    out
}

/// Runs `work`, which blocks for a while, from inside an async task: on a multi-thread
/// runtime the worker first hands its other tasks to another thread (`block_in_place`); a
/// current-thread runtime (tests, tools) has no other thread to hand them to, and waits.
pub fn blocking<R>(work: impl FnOnce() -> R) -> R {
    let flavor = tokio::runtime::Handle::try_current().map(|rt| rt.runtime_flavor());
    match flavor {
        Ok(tokio::runtime::RuntimeFlavor::MultiThread) => tokio::task::block_in_place(work),
        _ => work(),
    }
}

/// A rusqlite error as sqlx reports a database error, so callers tell a unique violation
/// from the rest by `kind()` whichever way the statement ran.
pub fn into_sqlx(err: rusqlite::Error) -> sqlx::Error {
    sqlx::Error::Database(Box::new(RawError::from(err)))
}

/// A failure of a statement run through [`on_handle`].
#[derive(Debug)]
struct RawError {
    /// SQLite's extended result code, when the library returned one.
    code: Option<i32>,
    message: String,
    source: rusqlite::Error,
}

impl From<rusqlite::Error> for RawError {
    fn from(source: rusqlite::Error) -> Self {
        let code = match &source {
            rusqlite::Error::SqliteFailure(err, _) => Some(err.extended_code),
            _ => None,
        };
        RawError {
            code,
            message: source.to_string(),
            source,
        }
    }
}

impl fmt::Display for RawError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for RawError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.source)
    }
}

impl DatabaseError for RawError {
    fn message(&self) -> &str {
        &self.message
    }

    fn code(&self) -> Option<Cow<'_, str>> {
        self.code.map(|code| Cow::Owned(code.to_string()))
    }

    fn as_error(&self) -> &(dyn std::error::Error + Send + Sync + 'static) {
        self
    }

    fn as_error_mut(&mut self) -> &mut (dyn std::error::Error + Send + Sync + 'static) {
        self
    }

    fn into_error(self: Box<Self>) -> Box<dyn std::error::Error + Send + Sync + 'static> {
        self
    }

    fn kind(&self) -> ErrorKind {
        match self.code {
            Some(ffi::SQLITE_CONSTRAINT_UNIQUE | ffi::SQLITE_CONSTRAINT_PRIMARYKEY) => {
                ErrorKind::UniqueViolation
            }
            Some(ffi::SQLITE_CONSTRAINT_FOREIGNKEY) => ErrorKind::ForeignKeyViolation,
            Some(ffi::SQLITE_CONSTRAINT_NOTNULL) => ErrorKind::NotNullViolation,
            Some(ffi::SQLITE_CONSTRAINT_CHECK) => ErrorKind::CheckViolation,
            _ => ErrorKind::Other,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sqlx::Connection;

    #[tokio::test]
    async fn runs_inside_the_open_transaction_and_reports_violations_by_kind() {
        let mut conn = SqliteConnection::connect("sqlite::memory:").await.unwrap();
        sqlx::query("create table t (k integer primary key)")
            .execute(&mut conn)
            .await
            .unwrap();

        let mut tx = conn.begin().await.unwrap();
        on_handle(&mut tx, |c| c.execute("insert into t (k) values (1)", []))
            .await
            .unwrap();
        let err = on_handle(&mut tx, |c| c.execute("insert into t (k) values (1)", []))
            .await
            .unwrap_err();
        assert!(crate::db::is_unique_violation(&err), "{err}");
        tx.rollback().await.unwrap();

        let rows: i64 = sqlx::query_scalar("select count(*) from t")
            .fetch_one(&mut conn)
            .await
            .unwrap();
        assert_eq!(
            rows, 0,
            "the rollback took back the row written on the handle"
        );
    }
}
