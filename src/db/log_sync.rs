//! Group sync of SQLite's write-ahead log: commits return without syncing the log (SQLite's
//! `synchronous = NORMAL`), and whatever answers a client waits for [`LogSync::durable`],
//! which syncs the log once for every commit made before it was called. Many commits, one
//! sync, as PostgreSQL's concurrent commits share a log flush; nothing is acknowledged
//! before it is on disk.
//!
//! The log only grows between checkpoints, and SQLite syncs it before a checkpoint copies
//! it into the database file (and syncs that file before the log starts over), so a sync of
//! the log file covers every commit whose frames were written before the sync began.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use tokio::sync::{watch, Notify};

/// Syncs one SQLite database's log for the commits that wait on it.
pub struct LogSync {
    wal: PathBuf,
    tickets: Mutex<Tickets>,
    wanted: Notify,
    /// The newest ticket whose sync has finished, and whether it succeeded.
    synced: watch::Sender<(u64, bool)>,
    /// How many syncs have run.
    syncs: AtomicU64,
}

impl std::fmt::Debug for LogSync {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LogSync").field("wal", &self.wal).finish()
    }
}

#[derive(Default)]
struct Tickets {
    /// The newest ticket handed out.
    issued: u64,
}

impl LogSync {
    /// Syncs `database`'s log (`database` followed by `-wal`) from a task of its own, which
    /// stops once the returned value is dropped.
    pub fn start(database: PathBuf) -> Arc<Self> {
        let mut wal = database.into_os_string();
        wal.push("-wal");
        let sync = Arc::new(LogSync {
            wal: wal.into(),
            tickets: Mutex::new(Tickets::default()),
            wanted: Notify::new(),
            synced: watch::Sender::new((0, true)),
            syncs: AtomicU64::new(0),
        });
        tokio::spawn(run(Arc::downgrade(&sync)));
        sync
    }

    /// Returns once every commit made before the call is on disk; an error if the sync
    /// failed, in which case the caller must not acknowledge anything.
    pub async fn durable(&self) -> std::io::Result<()> {
        let ticket = {
            let mut tickets = self
                .tickets
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            tickets.issued += 1;
            tickets.issued
        };
        self.wanted.notify_one();
        let mut synced = self.synced.subscribe();
        let (_, ok) = *synced
            .wait_for(|(done, _)| *done >= ticket)
            .await
            .map_err(|_| std::io::Error::other("the log sync has stopped"))?;
        if ok {
            Ok(())
        } else {
            Err(std::io::Error::other("syncing the database log failed"))
        }
    }

    /// How many syncs of the log have run.
    pub fn syncs(&self) -> u64 {
        self.syncs.load(Ordering::Relaxed)
    }

    fn issued(&self) -> u64 {
        self.tickets
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .issued
    }
}

/// One sync at a time, each for every ticket issued before it began.
async fn run(sync: std::sync::Weak<LogSync>) {
    loop {
        let Some(this) = sync.upgrade() else {
            return;
        };
        let covered = this.issued();
        if covered <= this.synced.borrow().0 {
            // Woken by a new ticket; the timeout only lets a dropped `LogSync` end the task.
            let wanted = this.wanted.notified();
            let _ = tokio::time::timeout(std::time::Duration::from_secs(1), wanted).await;
            continue;
        }
        let wal = this.wal.clone();
        let outcome = tokio::task::spawn_blocking(move || sync_file(&wal)).await;
        let ok = match outcome {
            Ok(Ok(())) => true,
            Ok(Err(err)) => {
                tracing::error!(error = %err, "syncing the SQLite log failed");
                false
            }
            Err(err) => {
                tracing::error!(error = %err, "the SQLite log sync panicked");
                false
            }
        };
        this.syncs.fetch_add(1, Ordering::Relaxed);
        metrics::counter!("scootfleet_sqlite_log_syncs_total").increment(1);
        this.synced.send_replace((covered, ok));
    }
}

/// Syncs the file's data; a log that does not exist yet holds no commit to sync.
fn sync_file(path: &std::path::Path) -> std::io::Result<()> {
    match std::fs::File::open(path) {
        Ok(file) => file.sync_data(),
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(err) => Err(err),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn many_waiters_share_few_syncs() {
        let dir = tempfile::tempdir().unwrap();
        let database = dir.path().join("app.db");
        std::fs::write(dir.path().join("app.db-wal"), b"frames").unwrap();
        let sync = LogSync::start(database);
        let waits = (0..200).map(|_| {
            let sync = sync.clone();
            tokio::spawn(async move { sync.durable().await })
        });
        for wait in futures_util::future::join_all(waits).await {
            wait.unwrap().unwrap();
        }
        let syncs = sync.syncs();
        assert!((1..200).contains(&syncs), "{syncs} syncs for 200 waiters");
        // A later call waits for a sync of its own.
        sync.durable().await.unwrap();
        assert!(sync.syncs() > syncs);
    }

    #[tokio::test]
    async fn no_log_yet_is_nothing_to_sync() {
        let dir = tempfile::tempdir().unwrap();
        let sync = LogSync::start(dir.path().join("fresh.db"));
        sync.durable().await.unwrap();
        assert_eq!(sync.syncs(), 1);
    }

    #[tokio::test]
    async fn a_failed_sync_is_an_error_for_its_waiters() {
        let dir = tempfile::tempdir().unwrap();
        let not_a_folder = dir.path().join("file");
        std::fs::write(&not_a_folder, b"").unwrap();
        let sync = LogSync::start(not_a_folder.join("app.db"));
        assert!(sync.durable().await.is_err());
    }
}
