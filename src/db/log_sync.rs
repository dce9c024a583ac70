//! Group sync of SQLite's write-ahead log: commits return without syncing the log (SQLite's
//! `synchronous = NORMAL`), and whatever answers a client waits for [`LogSync::durable`],
//! which returns once a sync of the log has covered every commit made before it was called.
//! Many commits, one sync, as PostgreSQL's concurrent commits share a log flush; nothing is
//! acknowledged before it is on disk.
//!
//! The write connection counts its commits (SQLite's WAL hook, called once a commit's
//! frames are in the log), and each sync notes the count when it begins: a caller waits
//! only for a sync that began after the commits it saw. A group of requests answered by one
//! commit therefore shares one sync, even when some of them ask while it is under way.
//!
//! The log only grows between checkpoints, and SQLite syncs it before a checkpoint copies
//! it into the database file (and syncs that file before the log starts over), so a sync of
//! the log file covers every commit whose frames were written before the sync began.

use std::ffi::{c_char, c_int, c_void};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use tokio::sync::watch;

/// Syncs one SQLite database's log for the commits that wait on it.
pub struct LogSync {
    wal: PathBuf,
    /// Commits written to the log so far, counted by [`count_commits`]'s hook.
    commits: &'static AtomicU64,
    /// The highest commit count a caller waits to see synced.
    wanted: AtomicU64,
    /// Set by a caller that wants a sync, cleared by the sync thread as it wakes.
    woken: Mutex<bool>,
    wake: Condvar,
    /// The commit count when the newest finished sync began, and whether it succeeded.
    synced: watch::Sender<(u64, bool)>,
    /// How many syncs have run.
    syncs: AtomicU64,
}

impl std::fmt::Debug for LogSync {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LogSync").field("wal", &self.wal).finish()
    }
}

/// A count of one database's commits, which [`count_commits`] keeps and [`LogSync::start`]
/// reads. It lives as long as the process: a write connection's hook may run until the
/// connection closes, whenever the pool lets it go.
#[derive(Clone, Copy, Debug)]
pub struct CommitCounter(&'static AtomicU64);

impl CommitCounter {
    pub fn new() -> Self {
        CommitCounter(Box::leak(Box::new(AtomicU64::new(0))))
    }

    /// Counts one commit; the hook calls it, and tests without a database may.
    pub fn count(&self) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }

    pub fn get(&self) -> u64 {
        self.0.load(Ordering::SeqCst)
    }
}

impl Default for CommitCounter {
    fn default() -> Self {
        Self::new()
    }
}

/// Makes `handle` (a write connection, in WAL mode) count each of its commits in `counter`.
/// It takes the place of SQLite's automatic checkpoint, which the write connection has
/// turned off anyway (`wal_autocheckpoint = 0`).
///
/// # Safety
/// `handle` must be an open SQLite connection that no other thread uses during the call.
pub unsafe fn count_commits(handle: *mut rusqlite::ffi::sqlite3, counter: CommitCounter) {
    unsafe extern "C" fn committed(
        counter: *mut c_void,
        _db: *mut rusqlite::ffi::sqlite3,
        _schema: *const c_char,
        _pages: c_int,
    ) -> c_int {
        // SAFETY: the argument is the `&'static AtomicU64` given below.
        let counter = unsafe { &*(counter as *const AtomicU64) };
        counter.fetch_add(1, Ordering::SeqCst);
        rusqlite::ffi::SQLITE_OK
    }
    let arg = counter.0 as *const AtomicU64 as *mut c_void;
    // SAFETY: the caller vouches for the handle; the argument outlives every connection.
    unsafe { rusqlite::ffi::sqlite3_wal_hook(handle, Some(committed), arg) };
}

impl LogSync {
    /// Syncs `database`'s log (`database` followed by `-wal`) from a thread of its own, which
    /// stops within a second once the returned value is dropped; `commits` counts the
    /// commits made on it. A thread rather than a task: each sync blocks for the disk, and a
    /// thread that sleeps until it is wanted costs one wake-up a sync, where a task handing
    /// each sync to the runtime's blocking pool cost a hand-off there and back.
    pub fn start(database: PathBuf, commits: CommitCounter) -> std::io::Result<Arc<Self>> {
        let mut wal = database.into_os_string();
        wal.push("-wal");
        let sync = Arc::new(LogSync {
            wal: wal.into(),
            commits: commits.0,
            wanted: AtomicU64::new(0),
            woken: Mutex::new(false),
            wake: Condvar::new(),
            synced: watch::Sender::new((0, true)),
            syncs: AtomicU64::new(0),
        });
        let weak = Arc::downgrade(&sync);
        std::thread::Builder::new()
            .name("sqlite-log-sync".into())
            .spawn(move || run(weak))?;
        Ok(sync)
    }

    /// Returns once every commit made before the call is on disk; an error if the sync
    /// that should have covered them failed, in which case the caller must not acknowledge
    /// anything. Without a commit since the last sync began, it returns at once.
    pub async fn durable(&self) -> std::io::Result<()> {
        let seen = self.commits.load(Ordering::SeqCst);
        let mut synced = self.synced.subscribe();
        if seen > synced.borrow().0 {
            self.wanted.fetch_max(seen, Ordering::SeqCst);
            *self
                .woken
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner()) = true;
            self.wake.notify_one();
        }
        let (_, ok) = *synced
            .wait_for(|(done, _)| *done >= seen)
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

    /// How many commits the last finished sync covered (each one counted before it began).
    pub fn synced(&self) -> u64 {
        self.synced.borrow().0
    }

    /// How many commits the write connection has made.
    pub fn commits(&self) -> u64 {
        self.commits.load(Ordering::SeqCst)
    }
}

/// One sync at a time, each for every commit counted before it began.
fn run(sync: std::sync::Weak<LogSync>) {
    loop {
        let Some(this) = sync.upgrade() else {
            return;
        };
        if this.wanted.load(Ordering::SeqCst) <= this.synced.borrow().0 {
            // Woken by a caller; the timeout only lets a dropped `LogSync` end the thread.
            let woken = this
                .woken
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            let (mut woken, _) = this
                .wake
                .wait_timeout_while(woken, Duration::from_secs(1), |woken| !*woken)
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            *woken = false;
            continue;
        }
        let covered = this.commits.load(Ordering::SeqCst);
        // A panic must not end the thread: its waiters would wait for ever.
        let ok = match std::panic::catch_unwind(|| sync_file(&this.wal)) {
            Ok(Ok(())) => true,
            Ok(Err(err)) => {
                tracing::error!(error = %err, "syncing the SQLite log failed");
                false
            }
            Err(_) => {
                tracing::error!("the SQLite log sync panicked");
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

    /// A log file with frames in it, its sync and the counter its commits go to.
    fn log_with_frames(dir: &tempfile::TempDir) -> (Arc<LogSync>, CommitCounter) {
        let database = dir.path().join("app.db");
        std::fs::write(dir.path().join("app.db-wal"), b"frames").unwrap();
        let commits = CommitCounter::new();
        (LogSync::start(database, commits).unwrap(), commits)
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn many_waiters_share_few_syncs() {
        let dir = tempfile::tempdir().unwrap();
        let (sync, commits) = log_with_frames(&dir);
        let waits = (0..200).map(|_| {
            let sync = sync.clone();
            tokio::spawn(async move {
                commits.count();
                sync.durable().await
            })
        });
        for wait in futures_util::future::join_all(waits).await {
            wait.unwrap().unwrap();
        }
        let syncs = sync.syncs();
        assert!((1..200).contains(&syncs), "{syncs} syncs for 200 waiters");
        // A later commit waits for a sync of its own.
        commits.count();
        sync.durable().await.unwrap();
        assert!(sync.syncs() > syncs);
    }

    #[tokio::test]
    async fn without_a_commit_since_the_last_sync_nothing_is_synced() {
        let dir = tempfile::tempdir().unwrap();
        let (sync, commits) = log_with_frames(&dir);
        sync.durable().await.unwrap();
        assert_eq!(sync.syncs(), 0, "no commit, no sync");
        commits.count();
        sync.durable().await.unwrap();
        assert_eq!(sync.syncs(), 1);
        // Covered by the sync that began after the commit: answered without another.
        sync.durable().await.unwrap();
        assert_eq!(sync.syncs(), 1);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_caller_during_a_sync_that_began_after_its_commit_shares_it() {
        let dir = tempfile::tempdir().unwrap();
        let (sync, commits) = log_with_frames(&dir);
        commits.count();
        let first = tokio::spawn({
            let sync = sync.clone();
            async move { sync.durable().await }
        });
        // Whether the second call comes before, during or after the first one's sync, the
        // one commit needs one sync.
        sync.durable().await.unwrap();
        first.await.unwrap().unwrap();
        assert_eq!(sync.syncs(), 1);
    }

    #[tokio::test]
    async fn no_log_yet_is_nothing_to_sync() {
        let dir = tempfile::tempdir().unwrap();
        let commits = CommitCounter::new();
        let sync = LogSync::start(dir.path().join("fresh.db"), commits).unwrap();
        commits.count();
        sync.durable().await.unwrap();
        assert_eq!(sync.syncs(), 1);
    }

    #[tokio::test]
    async fn a_failed_sync_is_an_error_for_its_waiters() {
        let dir = tempfile::tempdir().unwrap();
        let not_a_folder = dir.path().join("file");
        std::fs::write(&not_a_folder, b"").unwrap();
        let commits = CommitCounter::new();
        let sync = LogSync::start(not_a_folder.join("app.db"), commits).unwrap();
        commits.count();
        assert!(sync.durable().await.is_err());
    }
}
