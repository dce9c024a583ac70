//! SQLite statements run on the connection's own handle, on the calling thread.
//!
//! sqlx keeps each SQLite connection on a thread of its own and hands every statement to it
//! and back: two thread wake-ups per statement, most of what a short statement costs. A hot
//! transaction of many statements locks the handle once and runs them here with `rusqlite`
//! on the same libsqlite3, the same connection and the same open transaction, so it pays for
//! one hand-off instead of one per statement.

use std::borrow::Cow;
use std::fmt;

use rusqlite::types::ToSql;
use rusqlite::{ffi, Row, Statement, TransactionBehavior};
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

/// Runs `work` as a transaction of its own on `conn`'s handle, in one hand-off: committed
/// when `work` returns `Ok`, rolled back when it returns `Err` or panics. `conn` must have no
/// transaction open. The transaction takes the write lock at once (`begin immediate`), as
/// its first statement is a write anyway.
pub async fn transaction<T, E: From<sqlx::Error>>(
    conn: &mut SqliteConnection,
    work: impl FnOnce(&rusqlite::Connection) -> Result<T, E>,
) -> Result<T, E> {
    on_handle(conn, |c| {
        let tx = rusqlite::Transaction::new_unchecked(c, TransactionBehavior::Immediate)?;
        let out = work(c);
        if out.is_ok() {
            tx.commit()?;
        }
        // Dropped uncommitted, `tx` rolls back.
        Ok(out)
    })
    .await?
}

/// `sql` prepared on `c` with `args` bound to `$1`, `$2` … by name, so that a statement may
/// use them in any order and more than once, as with sqlx: the SQL constants are shared.
pub fn bound<'c>(
    c: &'c rusqlite::Connection,
    sql: &str,
    args: &[&dyn ToSql],
) -> rusqlite::Result<Statement<'c>> {
    let mut stmt = c.prepare(sql)?;
    // Each of the statement's parameters by its number: no name built per argument, and a
    // parameter without its argument is an error rather than a silent null.
    for index in 1..=stmt.parameter_count() {
        let name = stmt.parameter_name(index).unwrap_or("?");
        let arg = name
            .strip_prefix('$')
            .and_then(|n| n.parse::<usize>().ok())
            .and_then(|n| args.get(n.checked_sub(1)?));
        match arg {
            Some(arg) => stmt.raw_bind_parameter(index, *arg)?,
            None => return Err(rusqlite::Error::InvalidParameterName(name.to_owned())),
        }
    }
    Ok(stmt)
}

/// Runs a statement that returns no rows; the number of rows it changed.
pub fn execute(
    c: &rusqlite::Connection,
    sql: &str,
    args: &[&dyn ToSql],
) -> rusqlite::Result<usize> {
    bound(c, sql, args)?.raw_execute()
}

/// The first row of a statement (e.g. an `update … returning`), read by `read`.
pub fn query_row<T>(
    c: &rusqlite::Connection,
    sql: &str,
    args: &[&dyn ToSql],
    read: impl FnOnce(&Row<'_>) -> rusqlite::Result<T>,
) -> rusqlite::Result<Option<T>> {
    let mut stmt = bound(c, sql, args)?;
    let mut rows = stmt.raw_query();
    match rows.next()? {
        Some(row) => read(row).map(Some),
        None => Ok(None),
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

    #[tokio::test]
    async fn a_transaction_commits_on_ok_and_rolls_back_on_err() {
        let mut conn = SqliteConnection::connect("sqlite::memory:").await.unwrap();
        sqlx::query("create table t (k integer primary key, v text)")
            .execute(&mut conn)
            .await
            .unwrap();

        let kept: Result<_, sqlx::Error> = transaction(&mut conn, |c| {
            // Numbered out of order, and one used twice.
            execute(c, "insert into t (v, k) values ($2 || $2, $1)", &[&1, &"a"]).map_err(into_sqlx)
        })
        .await;
        assert_eq!(kept.unwrap(), 1);
        let dropped: Result<(), sqlx::Error> = transaction(&mut conn, |c| {
            execute(c, "insert into t (k, v) values ($1, $2)", &[&2, &"b"]).map_err(into_sqlx)?;
            execute(c, "insert into t (k, v) values ($1, $2)", &[&1, &"c"]).map_err(into_sqlx)?;
            Ok(())
        })
        .await;
        assert!(crate::db::is_unique_violation(&dropped.unwrap_err()));

        let rows: Vec<(i64, String)> = sqlx::query_as("select k, v from t order by k")
            .fetch_all(&mut conn)
            .await
            .unwrap();
        assert_eq!(rows, vec![(1, "aa".to_owned())]);
        let version = on_handle(&mut conn, |c| {
            query_row(c, "select v from t where k = $1", &[&1], |r| {
                r.get::<_, String>(0)
            })
        })
        .await
        .unwrap();
        assert_eq!(version.as_deref(), Some("aa"));
    }

    #[test]
    fn a_parameter_without_its_argument_is_refused() {
        let c = rusqlite::Connection::open_in_memory().unwrap();
        let err = bound(&c, "select $1, $2", &[&1]).expect_err("refused");
        assert!(
            matches!(&err, rusqlite::Error::InvalidParameterName(name) if name == "$2"),
            "{err}"
        );
        let v: i64 = query_row(&c, "select $2 - $1", &[&1, &5], |r| r.get(0))
            .unwrap()
            .unwrap();
        assert_eq!(v, 4, "bound by number, whatever the order they appear in");
    }
}
