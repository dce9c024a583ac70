//! The database: one enum over the SQLite and PostgreSQL pools, SQL written once.
//!
//! Queries use the common dialect (`$1` placeholders, `returning`, `on conflict`) and run on
//! either pool through [`db_run!`]. Times are stored as Unix milliseconds (`BIGINT`), money as
//! integer minor units, so the two engines compare and sum alike.

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgConnection, PgPool, PgPoolOptions};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteConnection, SqliteJournalMode, SqlitePool, SqlitePoolOptions,
    SqliteSynchronous,
};

use crate::error::Error;

pub mod chain;
pub mod log_sync;
pub mod raw;

pub use log_sync::{CommitCounter, LogSync};

/// Which engine a [`Db`] talks to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// A connection pool on one of the two supported engines.
///
/// SQLite takes one writer at a time: a second connection that tries to write sleeps in
/// SQLite's busy handler (1, 2, 5 … 100 ms) until the lock is free, which is what made write
/// latency spiky under load. So SQLite gets two pools on the same file: readers, and a single
/// writer connection for write transactions ([`db_write!`]), where writers wait their turn
/// in the pool's fair queue instead.
///
/// [`db_write!`]: crate::db_write!
#[derive(Clone, Debug)]
pub enum Db {
    Sqlite {
        read: SqlitePool,
        write: SqlitePool,
        /// Syncs the log before answers, when commits do not sync it themselves.
        log: Option<Arc<LogSync>>,
    },
    Postgres(PgPool),
}

/// Runs the same expression on whichever pool `db` holds, binding it to `$pool`.
///
/// The expression is compiled once per engine, so a query string and its binds are written
/// once and type-checked against both drivers.
#[macro_export]
macro_rules! db_run {
    ($db:expr, |$pool:ident| $body:expr) => {
        match $db {
            $crate::db::Db::Sqlite { read: $pool, .. } => $body,
            $crate::db::Db::Postgres($pool) => $body,
        }
    };
}

/// [`db_run!`] for a write transaction: on SQLite `$pool` is the single writer connection's
/// pool, so concurrent writers queue rather than collide; on PostgreSQL it is the one pool.
#[macro_export]
macro_rules! db_write {
    ($db:expr, |$pool:ident| $body:expr) => {
        match $db {
            $crate::db::Db::Sqlite { write: $pool, .. } => $body,
            $crate::db::Db::Postgres($pool) => $body,
        }
    };
}

/// A write transaction, `$body` being the inside of an async block that gets the open
/// transaction as `$tx` and ends with `$tx.commit()` (`?` and `return` leave the block; a
/// transaction not committed rolls back, and its writer is free again as soon as the
/// block is left). On SQLite it runs on the single writer connection, on PostgreSQL on the
/// pool, as with [`db_write!`].
///
/// [`db_write!`]: crate::db_write!
#[macro_export]
macro_rules! db_transaction {
    ($db:expr, |$tx:ident| $body:expr) => {
        $crate::db_write!($db, |pool| {
            async {
                let mut $tx = pool.begin().await?;
                $body
            }
            .await
        })
    };
}

/// How often the SQLite write-ahead log is copied back into the database file. Often, so
/// that each checkpoint has little to copy: its syncs hold up the writer's own writes to the
/// log while they last, and they last longer the more there is to sync. A checkpoint with
/// nothing to copy does no sync.
const CHECKPOINT_EVERY: Duration = Duration::from_millis(200);

/// Log frames (4 KiB pages) past which the log is started over: 64 MiB.
const RESTART_LOG_AT_FRAMES: i64 = 16_384;

/// How long a SQLite statement waits for a lock another connection holds.
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

/// How long the writer waits for readers on older snapshots before it gives up starting the
/// log over, until the next checkpoint: writes wait meanwhile.
const RESTART_WAIT_MS: u64 = 10;

/// What the log file is cut back to, in bytes, when it starts over.
const LOG_SIZE_LIMIT: &str = "67108864";

/// Copies the SQLite write-ahead log into the database file every [`CHECKPOINT_EVERY`] from
/// a reader connection, until the pool closes. SQLite would otherwise do it inside whichever
/// commit crosses 1,000 pages of log, and the writer — telemetry, rides, dispatch all queue
/// on it — would wait for the copy and its sync.
async fn checkpoint_wal(read: SqlitePool, write: SqlitePool) {
    loop {
        tokio::time::sleep(CHECKPOINT_EVERY).await;
        if read.is_closed() {
            return;
        }
        if let Err(err) = checkpoint_once(&read, &write, RESTART_LOG_AT_FRAMES).await {
            if read.is_closed() {
                return;
            }
            tracing::warn!(error = %err, "checkpointing the SQLite log failed");
        }
    }
}

/// One checkpoint beside the writer; and, once the log holds `restart_at` frames, one from
/// the writer's own connection that starts the log over. Returns whether it did that.
///
/// Under a steady stream of commits a checkpoint beside the writer never reaches the end of
/// the log, so SQLite never starts it over and it grows without bound (14 GB while a million
/// scooters changed state at closing time, with 27 MiB of its index mapped in memory). A
/// `restart` checkpoint on the writer's connection runs between two write transactions, waits
/// for the readers to move to the newest snapshot (at most [`RESTART_WAIT_MS`], then it tries
/// again at the next checkpoint), and copies what is left, so the next commit writes from
/// the log's start; `journal_size_limit` then shrinks the file.
async fn checkpoint_once(
    read: &SqlitePool,
    write: &SqlitePool,
    restart_at: i64,
) -> Result<bool, sqlx::Error> {
    let (_, log, _): (i64, i64, i64) = sqlx::query_as("pragma wal_checkpoint(passive)")
        .fetch_one(read)
        .await?;
    if log < restart_at {
        return Ok(false);
    }
    let mut writer = write.acquire().await?;
    let wait = |ms: u128| format!("pragma busy_timeout = {ms}");
    sqlx::query(&wait(u128::from(RESTART_WAIT_MS)))
        .execute(&mut *writer)
        .await?;
    let restarted: Result<(i64, i64, i64), _> = sqlx::query_as("pragma wal_checkpoint(restart)")
        .fetch_one(&mut *writer)
        .await;
    if let Err(err) = sqlx::query(&wait(BUSY_TIMEOUT.as_millis()))
        .execute(&mut *writer)
        .await
    {
        // Not left with the short wait: the pool opens a fresh writer instead.
        writer.close_on_drop();
        return Err(err);
    }
    let (busy, _, _) = restarted?;
    Ok(busy == 0)
}

/// A PostgreSQL connection idle for longer than this is pinged before it is handed out.
const PING_AFTER_IDLE: Duration = Duration::from_secs(10);

/// Pings a PostgreSQL connection before handing it out only when it sat idle for
/// [`PING_AFTER_IDLE`]: one that was in use a moment ago is alive, and a ping is a round trip
/// to the server before every query. A connection that fails its ping is closed, and the
/// pool opens another.
fn ping_if_idle(
    conn: &mut PgConnection,
    meta: sqlx::pool::PoolConnectionMetadata,
) -> futures_util::future::BoxFuture<'_, Result<bool, sqlx::Error>> {
    Box::pin(async move {
        if meta.idle_for >= PING_AFTER_IDLE {
            sqlx::Connection::ping(conn).await?;
        }
        Ok(true)
    })
}

/// Why a database URL could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    #[error("unsupported database URL scheme `{0}`: use sqlite://FILE or postgres://…")]
    UnknownScheme(String),
    #[error("could not connect to the database: {0}")]
    Connect(#[source] sqlx::Error),
    #[error("could not migrate the database: {0}")]
    Migrate(#[source] sqlx::migrate::MigrateError),
}

/// How SQLite's commits reach the disk. PostgreSQL always syncs its log at commit.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum SqliteSync {
    /// Commits return without syncing the log; every answer to a client waits for one
    /// sync of the log shared by all the commits before it ([`LogSync`]). Nothing is
    /// acknowledged before it would survive a power cut.
    #[default]
    Grouped,
    /// Each commit syncs the log before it returns (SQLite's `synchronous = FULL`): as
    /// durable, one sync per commit.
    Each,
    /// Commits return without syncing and answers do not wait (SQLite's `synchronous =
    /// NORMAL`): what was acknowledged survives the server crashing, not the machine.
    Normal,
}

impl Db {
    /// Opens a pool for `url`, refusing schemes other than `sqlite:` and `postgres(ql):`;
    /// SQLite commits sync the log before they return ([`SqliteSync::Each`]).
    ///
    /// A SQLite file is created when missing; anything else never silently becomes one.
    pub async fn connect(url: &str, max_connections: u32) -> Result<Self, ConnectError> {
        Self::connect_with(url, max_connections, SqliteSync::Each).await
    }

    /// [`Db::connect`], with SQLite's commits synced as `sync` says.
    pub async fn connect_with(
        url: &str,
        max_connections: u32,
        sync: SqliteSync,
    ) -> Result<Self, ConnectError> {
        let scheme = url.split_once(':').map(|(s, _)| s).unwrap_or("");
        match scheme {
            "sqlite" => {
                let options = SqliteConnectOptions::from_str(url)
                    .map_err(ConnectError::Connect)?
                    .create_if_missing(true)
                    .journal_mode(SqliteJournalMode::Wal)
                    .synchronous(match sync {
                        SqliteSync::Each => SqliteSynchronous::Full,
                        SqliteSync::Grouped | SqliteSync::Normal => SqliteSynchronous::Normal,
                    })
                    .busy_timeout(BUSY_TIMEOUT)
                    .foreign_keys(true);
                let file = options.get_filename().to_owned();
                let commits = log_sync::CommitCounter::new();
                // A SQLite connection is a thread in this process, not a link that can drop:
                // it is handed out without a ping, which is a round trip to that thread.
                let read = SqlitePoolOptions::new()
                    .max_connections(max_connections.max(1))
                    .test_before_acquire(false)
                    .connect_with(options.clone())
                    .await
                    .map_err(ConnectError::Connect)?;
                // An in-memory database exists once per connection: there, one pool does all.
                let write = if url.contains(":memory:") || url.contains("mode=memory") {
                    read.clone()
                } else {
                    // Checkpoints happen beside the writer, not inside one of its commits.
                    let write = SqlitePoolOptions::new()
                        .max_connections(1)
                        .test_before_acquire(false)
                        .acquire_timeout(Duration::from_secs(30))
                        .after_connect(move |conn, _| {
                            Box::pin(async move {
                                if sync == SqliteSync::Grouped {
                                    let mut handle = conn.lock_handle().await?;
                                    // SAFETY: the lock keeps sqlx's thread off the handle.
                                    unsafe {
                                        log_sync::count_commits(
                                            handle.as_raw_handle().as_ptr(),
                                            commits,
                                        )
                                    };
                                }
                                Ok(())
                            })
                        })
                        .connect_with(
                            options
                                .pragma("wal_autocheckpoint", "0")
                                .pragma("journal_size_limit", LOG_SIZE_LIMIT),
                        )
                        .await
                        .map_err(ConnectError::Connect)?;
                    tokio::spawn(checkpoint_wal(read.clone(), write.clone()));
                    write
                };
                let in_memory = url.contains(":memory:") || url.contains("mode=memory");
                let log = if sync == SqliteSync::Grouped && !in_memory {
                    // The commits are counted by the log's hook, which only a log has.
                    let mode: String = sqlx::query_scalar("pragma journal_mode")
                        .fetch_one(&write)
                        .await
                        .map_err(ConnectError::Connect)?;
                    if !mode.eq_ignore_ascii_case("wal") {
                        return Err(ConnectError::Connect(sqlx::Error::Configuration(
                            format!(
                                "grouped syncs need SQLite's WAL mode; {file:?} is in {mode} mode"
                            )
                            .into(),
                        )));
                    }
                    Some(
                        LogSync::start(file, commits)
                            .map_err(|err| ConnectError::Connect(sqlx::Error::Io(err)))?,
                    )
                } else {
                    None
                };
                Ok(Db::Sqlite { read, write, log })
            }
            "postgres" | "postgresql" => {
                let options = PgConnectOptions::from_str(url).map_err(ConnectError::Connect)?;
                let pool = PgPoolOptions::new()
                    .max_connections(max_connections.max(1))
                    .acquire_timeout(Duration::from_secs(10))
                    .test_before_acquire(false)
                    .before_acquire(ping_if_idle)
                    .connect_with(options)
                    .await
                    .map_err(ConnectError::Connect)?;
                Ok(Db::Postgres(pool))
            }
            other => Err(ConnectError::UnknownScheme(other.to_owned())),
        }
    }

    pub fn backend(&self) -> Backend {
        match self {
            Db::Sqlite { .. } => Backend::Sqlite,
            Db::Postgres(_) => Backend::Postgres,
        }
    }

    /// Applies the migrations of this engine (`migrations/sqlite` or `migrations/postgres`).
    pub async fn migrate(&self) -> Result<(), ConnectError> {
        match self {
            Db::Sqlite { write, .. } => sqlx::migrate!("migrations/sqlite").run(write).await,
            Db::Postgres(pool) => sqlx::migrate!("migrations/postgres").run(pool).await,
        }
        .map_err(ConnectError::Migrate)
    }

    /// Answers when the database does.
    pub async fn ping(&self) -> Result<(), sqlx::Error> {
        db_run!(self, |pool| sqlx::query("select 1")
            .execute(pool)
            .await
            .map(|_| ()))
    }

    /// Returns once every commit made before the call would survive a power cut: at once
    /// on PostgreSQL and when SQLite's commits sync themselves, after the shared sync of the
    /// log otherwise ([`SqliteSync::Grouped`]). Call it before acknowledging a write.
    pub async fn durable(&self) -> std::io::Result<()> {
        match self {
            Db::Sqlite { log: Some(log), .. } => log.durable().await,
            _ => Ok(()),
        }
    }

    pub async fn close(&self) {
        match self {
            Db::Sqlite { read, write, .. } => {
                write.close().await;
                read.close().await;
            }
            Db::Postgres(pool) => pool.close().await,
        }
    }

    /// Reads a server setting kept in the database.
    pub async fn setting(&self, key: &str) -> Result<Option<String>, sqlx::Error> {
        db_run!(self, |pool| {
            sqlx::query_scalar("select value from settings where key = $1")
                .bind(key)
                .fetch_optional(pool)
                .await
        })
    }

    /// Stores `value` under `key` unless a value is already there; returns the value kept.
    ///
    /// Several servers starting at once on one database all end up with the same value.
    pub async fn setting_or_insert(&self, key: &str, value: &str) -> Result<String, sqlx::Error> {
        db_write!(self, |pool| {
            sqlx::query(
                "insert into settings (key, value) values ($1, $2) on conflict (key) do nothing",
            )
            .bind(key)
            .bind(value)
            .execute(pool)
            .await?;
            sqlx::query_scalar("select value from settings where key = $1")
                .bind(key)
                .fetch_one(pool)
                .await
        })
    }

    /// Stores `value` under `key`, replacing any previous value.
    pub async fn set_setting(&self, key: &str, value: &str) -> Result<(), sqlx::Error> {
        db_write!(self, |pool| {
            sqlx::query(
                "insert into settings (key, value) values ($1, $2) \
                 on conflict (key) do update set value = excluded.value",
            )
            .bind(key)
            .bind(value)
            .execute(pool)
            .await
            .map(|_| ())
        })
    }
}

/// One connection on either engine — usually `&mut *tx` of a transaction someone else
/// opened — so SQL of one domain can join another domain's transaction and commit with it.
///
/// Inside `db_run!(db, |pool| { let mut tx = pool.begin().await?; … })`, `Conn::from(&mut *tx)`
/// compiles in both arms, each picking its engine.
#[derive(Debug)]
pub enum Conn<'c> {
    Sqlite(&'c mut SqliteConnection),
    Postgres(&'c mut PgConnection),
}

impl<'c> From<&'c mut SqliteConnection> for Conn<'c> {
    fn from(conn: &'c mut SqliteConnection) -> Self {
        Conn::Sqlite(conn)
    }
}

impl<'c> From<&'c mut PgConnection> for Conn<'c> {
    fn from(conn: &'c mut PgConnection) -> Self {
        Conn::Postgres(conn)
    }
}

/// Runs the same expression on whichever connection a `&mut Conn` holds, binding it to `$c`
/// (a `&mut SqliteConnection` or `&mut PgConnection`; pass it to queries as `&mut *$c`).
#[macro_export]
macro_rules! conn_run {
    ($conn:expr, |$c:ident| $body:expr) => {
        match $conn {
            $crate::db::Conn::Sqlite(inner) => {
                let $c = &mut **inner;
                $body
            }
            $crate::db::Conn::Postgres(inner) => {
                let $c = &mut **inner;
                $body
            }
        }
    };
}

/// How often writers may race for the next version number of a versioned table before
/// [`insert_next_version`] gives up.
const VERSION_ATTEMPTS: usize = 5;

/// Runs `attempt` — an insert that takes `max(version) + 1` and returns it — until it wins
/// the number: when two writers race for it, the loser gets a unique violation and tries the
/// next one, so nothing is lost or numbered twice. `what` names the table in the error.
pub async fn insert_next_version<F, Fut>(what: &str, mut attempt: F) -> Result<i64, Error>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<i64, sqlx::Error>>,
{
    for _ in 0..VERSION_ATTEMPTS {
        match attempt().await {
            Ok(version) => return Ok(version),
            Err(err) if is_unique_violation(&err) => continue,
            Err(err) => return Err(err.into()),
        }
    }
    Err(Error::Internal(anyhow::anyhow!(
        "no {what} version could be taken after {VERSION_ATTEMPTS} attempts"
    )))
}

/// True when `err` is a unique-constraint violation, on either engine.
pub fn is_unique_violation(err: &sqlx::Error) -> bool {
    matches!(err, sqlx::Error::Database(e) if e.kind() == sqlx::error::ErrorKind::UniqueViolation)
}

/// `url` with any password replaced, for log lines.
pub fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(start), Some(at)) if at > start => match url[start + 3..at].split_once(':') {
            Some((user, _)) => format!("{}://{}:***{}", &url[..start], user, &url[at..]),
            None => url.to_owned(),
        },
        _ => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redacts_passwords() {
        assert_eq!(
            redact_url("postgres://app:hunter2@db:5432/x"),
            "postgres://app:***@db:5432/x"
        );
        assert_eq!(
            redact_url("sqlite://scootfleet.db"),
            "sqlite://scootfleet.db"
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_long_log_is_started_over_from_the_writer() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("log.db").display());
        let db = Db::connect(&url, 2).await.unwrap();
        let Db::Sqlite { read, write, .. } = &db else {
            unreachable!()
        };
        sqlx::query("create table t (n integer)")
            .execute(write)
            .await
            .unwrap();
        let passive = |pool: SqlitePool| async move {
            let (_, log, _): (i64, i64, i64) = sqlx::query_as("pragma wal_checkpoint(passive)")
                .fetch_one(&pool)
                .await
                .unwrap();
            log
        };
        // A reader on an old snapshot keeps checkpoints from copying what came after it,
        // as a steady stream of commits does.
        let mut reader = read.acquire().await.unwrap();
        sqlx::query("begin").execute(&mut *reader).await.unwrap();
        sqlx::query("select count(*) from t")
            .execute(&mut *reader)
            .await
            .unwrap();
        for n in 0..60 {
            sqlx::query("insert into t values ($1)")
                .bind(n)
                .execute(write)
                .await
                .unwrap();
        }
        assert!(
            !checkpoint_once(read, write, 1000).await.unwrap(),
            "short log"
        );
        let before = passive(read.clone()).await;
        assert!(before >= 60, "{before} frames");
        // While the reader is on its old snapshot the writer gives up at once, and then
        // waits for locks as long as before.
        let started = std::time::Instant::now();
        assert!(
            !checkpoint_once(read, write, 50).await.unwrap(),
            "a reader holds it"
        );
        assert!(
            started.elapsed() < BUSY_TIMEOUT / 10,
            "{:?}",
            started.elapsed()
        );
        let wait: i64 = sqlx::query_scalar("pragma busy_timeout")
            .fetch_one(write)
            .await
            .unwrap();
        assert_eq!(wait, BUSY_TIMEOUT.as_millis() as i64);
        sqlx::query("commit").execute(&mut *reader).await.unwrap();
        drop(reader);
        assert!(checkpoint_once(read, write, 50).await.unwrap(), "long log");
        sqlx::query("insert into t values (60)")
            .execute(write)
            .await
            .unwrap();
        let after = passive(read.clone()).await;
        assert!(after < 5, "the log started over: {after} frames");
        db.close().await;
    }

    #[tokio::test]
    async fn refuses_unknown_schemes() {
        let err = Db::connect("mysql://localhost/x", 1).await.unwrap_err();
        assert!(
            err.to_string()
                .contains("unsupported database URL scheme `mysql`"),
            "{err}"
        );
        let err = Db::connect("scootfleet.db", 1).await.unwrap_err();
        assert!(matches!(err, ConnectError::UnknownScheme(_)), "{err}");
    }
}
